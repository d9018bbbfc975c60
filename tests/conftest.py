import os
import pathlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# One persistent XLA compilation cache for the test session, its xdist workers and the processes the
# tests start (they inherit the environment): many tests compile the same tiny models' steps, and a
# CPU compile is most of a tiny test's time (a third less wall time on a cold cache). JAX keys an
# entry on the computation, the compile options and its own version, so a hit is the same
# executable; the size limit turns on JAX's file lock, which concurrent writers need.
for _name, _value in (("JAX_COMPILATION_CACHE_DIR", str(ROOT / ".pytest_cache" / "jax")),
                      ("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0"),
                      ("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0"),
                      ("JAX_COMPILATION_CACHE_MAX_SIZE", str(4 << 30))):
    os.environ.setdefault(_name, _value)

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
