import os
import pathlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# The tests check what is computed, not how fast: XLA:CPU's LLVM backend at -O0 compiles the tiny
# test models' steps in about half the time (most of a test's time is compiling), which keeps CI
# within its budget. The processes the tests start inherit it (tests that set XLA_FLAGS for
# simulated devices add theirs to it: XLA_TEST_FLAGS). Entry points and benchmarks keep XLA's default.
OPT_FLAG = "--xla_backend_optimization_level=0"
if OPT_FLAG.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {OPT_FLAG}".strip()
XLA_TEST_FLAGS = os.environ["XLA_FLAGS"]

from lkca_jax import hostmem  # noqa: E402  (after the environment JAX reads at import)

hostmem.keep_freed_memory()  # as the entry points do, before JAX starts its threads

SHARED_DATA = ROOT.parent / "shared" / "data"


# A model small enough for unit tests (seconds on a CPU), any method; tests override what they vary.
TINY_MODEL = dict(features=16, depth=1, se_reduction=4, up_init_scale=1.0, vdsr_features=8, vdsr_depth=1)


def tiny_config(spec: str = "sample.py:x4,net", **model):
    """``configs/<spec>`` with a tiny model (:data:`TINY_MODEL`, then ``model``); ``up_init_scale=1``
    gives the SR branch random weights, so tests see a non-trivial upsampler."""
    from lkca_jax.config import load_config

    config = load_config(str(ROOT / "configs" / spec))
    config.model.update({**TINY_MODEL, **model})
    return config


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def shared_data(*parts):
    """A path under ../shared/data, or skip when this checkout has none beside it."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI"):
            raise FileNotFoundError(f"{path} is missing; CI is expected to have ../shared/data")
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny VDSR run on the sample: config.json and a checkpoint, as train.py writes them."""
    import jax
    import jax.numpy as jnp

    from lkca_jax import checkpoint
    from lkca_jax.models import build_model

    workdir = tmp_path_factory.mktemp("run")
    c = tiny_config("sample.py:vdsr", vdsr_depth=3)
    c.data.normalisation, c.data.norm_value = "constant", 2.0
    model = build_model(c)
    variables = model.init(jax.random.key(1), jnp.zeros((1, 8, 8, 102)))
    checkpoint.save_run(workdir, c, jax.tree.map(np.asarray, variables))
    return workdir, model, variables
