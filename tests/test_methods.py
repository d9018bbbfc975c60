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
    from lkca_jax.reference import build_torch_model

    assert counts["params"] == sum(p.numel() for p in build_torch_model(config).parameters()) > 0


@pytest.mark.parametrize("architecture", sorted(a for a, spec in methods.ARCHITECTURES.items() if spec.torch))
def test_reference_state_dict_names_are_the_converted_names(architecture):
    """The registry's Flax -> PyTorch renames give exactly the reference module's state_dict keys."""
    pytest.importorskip("torch")
    from lkca_jax import convert
    from lkca_jax.reference import build_torch_model

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
    entry = methods.Method("vdsr8", "VDSR-8", "vdsr", model={"vdsr": {"depth": 8}}, train={"grad_clip_norm": 0.4})
    monkeypatch.setitem(methods.METHODS, "vdsr8", entry)
    config = load_config(f"{ROOT}/configs/sample.py:x4,vdsr8")
    assert (config.model.name, config.model.vdsr.depth, config.train.grad_clip_norm) == ("vdsr", 8, 0.4)
    assert methods.method_name(config) == "VDSR-8"
    plain = count_config(load_config(f"{ROOT}/configs/sample.py:x4,vdsr"))
    assert count_config(config)["params"] == plain["params"] - 10 * 64 * 64 * 9  # 18 - 8 fewer 3x3 convs


def test_unknown_method_lists_the_registered_ones():
    with pytest.raises(ValueError) as err:
        load_config(f"{ROOT}/configs/sample.py:x4,edsr")
    assert "edsr" in str(err.value) and all(name in str(err.value) for name in methods.METHODS)


TOY_FLAX = '''
import flax.linen as nn

from lkca_jax import precision
from lkca_jax.models.upsampler import UpsamplerSettings, resolve_groups, upsampler_fields
from lkca_jax.ops.conv import Conv


class Toy(UpsamplerSettings):
    bands: int = 1
    scale: int = 2
    features: int = 8
    bicubic_residual: bool = True

    @property
    def up_groups(self):
        return resolve_groups(self.features, self.bands * self.scale ** 2, self.groups)

    @nn.compact
    def __call__(self, lr, train=False):
        x = nn.relu(Conv(self.features, 3, impl=self.conv_impl, name="head")(precision.network_input(lr, self.dtype)))
        feats = self.make_upsampler(self.features, self.bands * self.scale ** 2, self.scale)(x)
        return precision.head(feats, lr if self.bicubic_residual else None, self.scale), precision.float32(feats)


def build(m):
    return Toy(bands=m.bands, scale=m.scale, features=m.toy.features, bicubic_residual=m.bicubic_residual,
               **upsampler_fields(m))
'''

TOY_TORCH = '''
import torch
from torch import nn

from lkca_jax.reference import up_groups
from lkca_jax.reference.upsampler import MatlabBicubic, Upsampler


class Toy(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.head = nn.Conv2d(m.bands, m.toy.features, 3, padding=1)
        self.up = Upsampler(m.toy.features, m.bands * m.scale ** 2, m.scale, m, up_groups(m))
        self.bicubic = MatlabBicubic(m.scale) if m.bicubic_residual else None

    def forward(self, lr):
        feats = self.up(torch.relu(self.head(lr)))
        return (feats + self.bicubic(lr) if self.bicubic is not None else feats), feats
'''


def test_a_toy_architecture_is_its_module_its_reference_and_its_entry(tmp_path, monkeypatch):
    """A new architecture written outside the library (a Flax module, a PyTorch reference, each in
    its own file) and registered with one architecture entry (its own fields, its residual default,
    its upsampler's place) and one method entry: a config argument with the fields nested under its
    name and overridable, hand-derived counts, SR = Bicubic at init through the shared head, the
    rank path's upsampler, and (with torch) converted weights giving the reference's output."""
    from lkca_jax.ops.imresize import imresize_np

    (tmp_path / "toy_flax.py").write_text(TOY_FLAX)
    (tmp_path / "toy_torch.py").write_text(TOY_TORCH)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(methods.ARCHITECTURES, "toy", methods.Architecture(
        "toy_flax:build", "toy_torch:Toy", fields={"features": 8}, residual=True, upsampler=("up",)))
    monkeypatch.setitem(methods.METHODS, "toy", methods.Method("toy", "Toy", "toy"))

    config = load_config(f"{ROOT}/configs/sample.py:x2,toy", {"model.toy.features": "6"})
    assert (config.model.name, config.model.toy.features, config.model.bicubic_residual) == ("toy", 6, True)
    assert "vdsr" not in config.model and methods.method_name(config) == "Toy"
    c, f, r, side = 102, 6, 2, config.count_lr_size  # head 3x3 C->F with bias, up 3x3 F->C r^2 with bias
    params = 9 * c * f + f + 9 * f * c * r * r + c * r * r
    assert count_config(config) == {"params": params, "macs": side * side * (9 * c * f + 9 * f * c * r * r)}

    lr = np.random.default_rng(0).uniform(0, 1, (1, 8, 7, c)).astype(np.float32)
    model = build_model(config)
    variables = model.init(jax.random.key(0), lr)
    sr, feats = (np.asarray(a) for a in model.apply(variables, lr))
    np.testing.assert_allclose(sr[0], imresize_np(lr[0], r), atol=1e-5)  # the upsampler starts at zero
    assert set(methods.upsampler_parts(variables, config)) == {("up",)}

    torch = pytest.importorskip("torch")
    from lkca_jax import convert

    config.model.up_init_scale = 1.0  # a non-trivial upsampler for the comparison
    model = build_model(config)
    variables = model.init(jax.random.key(1), lr)
    want = np.asarray(model.apply(variables, lr)[0])
    net = convert.torch_model(jax.tree.map(np.array, variables), config).eval()
    with torch.no_grad():
        got = net(torch.from_numpy(lr.transpose(0, 3, 1, 2).copy()))[0].numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_a_run_saved_with_the_flat_fields_loads_in_the_nested_layout():
    """A VDSR run's config.json from before the fields were nested (every architecture's flat fields,
    VDSR's residual switch under its old name) loads as today's: its own values under model.vdsr, the
    residual under model.bicubic_residual, the other architectures' fields gone."""
    import json

    from lkca_jax.checkpoint import config_from_json

    old = {"variant": "vdsr", "model": {"name": "vdsr", "bands": 102, "scale": 4, "vdsr_features": 8,
                                        "vdsr_depth": 3, "vdsr_residual": False, "fcnn_widths": [64, 32, 9],
                                        "sspsr_subs": 8, "essa_features": 256, "bicubic_residual": True}}
    m = config_from_json(json.dumps(old)).model
    assert {k: m[k] for k in m} == {"name": "vdsr", "bands": 102, "scale": 4, "bicubic_residual": False,
                                    "vdsr": m.vdsr}
    assert dict(m.vdsr) == {"features": 8, "depth": 3}
