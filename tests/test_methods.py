"""The method registry: every entry builds through every path, and a new entry is all a method needs."""

import jax
import numpy as np
import pytest

from conftest import ROOT, tiny_config
from lkca_jax import methods
from lkca_jax.accounting import count_config
from lkca_jax.config import load_config
from lkca_jax.models import build_model


@pytest.mark.parametrize("name", sorted(methods.METHODS))
def test_every_method_builds_counts_and_names_itself(name):
    config = tiny_config(f"sample.py:x4,{name}")
    method = methods.METHODS[name]
    assert config.model.name == method.architecture and methods.method_name(config) == method.display
    assert all(config.model[k] == v for k, v in method.model.items())
    counts = count_config(config)
    model, lr = build_model(config), np.zeros((1, 8, 8, 102), np.float32)
    sr, _ = model.apply(model.init(jax.random.key(0), lr), lr, train=False)
    assert sr.shape == (1, 32, 32, 102)
    if method.architecture == "bicubic":
        assert counts == {"params": 0, "macs": 0}
        return
    assert counts["macs"] > 0
    pytest.importorskip("torch")  # an independent count: the PyTorch reference's parameters
    from lkca_jax.torch_ref import build_torch_model

    assert counts["params"] == sum(p.numel() for p in build_torch_model(config).parameters()) > 0


@pytest.mark.parametrize("architecture", sorted(a for a, spec in methods.ARCHITECTURES.items() if spec.torch))
def test_reference_state_dict_names_are_the_converted_names(architecture):
    """The registry's Flax -> PyTorch renames give exactly the reference module's state_dict keys."""
    pytest.importorskip("torch")
    from lkca_jax import convert
    from lkca_jax.torch_ref import build_torch_model

    name = next(m.name for m in methods.METHODS.values() if m.architecture == architecture)
    config = tiny_config(f"sample.py:x4,{name}", norm="batch")
    variables = jax.device_get(build_model(config).init(jax.random.key(0), np.zeros((1, 8, 8, 102), np.float32)))
    names = set(convert.flax_to_torch(variables, config))
    wanted = {k for k in build_torch_model(config).state_dict() if not k.endswith("num_batches_tracked")}
    assert names == wanted


def test_a_new_method_is_one_registry_entry(monkeypatch):
    """Registered at run time, a method reusing VDSR's architecture with its own fields and recipe
    is a config argument, builds, counts, trains with its recipe (a default: the dataset file and
    the command line still override it) and has its table name."""
    entry = methods.Method("vdsr8", "VDSR-8", "vdsr", model={"vdsr_depth": 8}, train={"grad_clip_norm": 0.4})
    monkeypatch.setitem(methods.METHODS, "vdsr8", entry)
    config = load_config(f"{ROOT}/configs/sample.py:x4,vdsr8")
    assert (config.model.name, config.model.vdsr_depth, config.train.grad_clip_norm) == ("vdsr", 8, 0.4)
    assert methods.method_name(config) == "VDSR-8"
    plain = count_config(load_config(f"{ROOT}/configs/sample.py:x4,vdsr"))
    assert count_config(config)["params"] == plain["params"] - 10 * 64 * 64 * 9  # 18 - 8 fewer 3x3 convs


def test_unknown_method_lists_the_registered_ones():
    with pytest.raises(ValueError) as err:
        load_config(f"{ROOT}/configs/sample.py:x4,edsr")
    assert "edsr" in str(err.value) and all(name in str(err.value) for name in methods.METHODS)
