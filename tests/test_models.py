"""Every model builds, runs under jit and honours its interface; bad settings fail early."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import ROOT, tiny_config
from lkca_jax import build_model
from lkca_jax.config import load_config
from lkca_jax.models import LKCANet
from lkca_jax.ops.imresize import imresize_np


def tiny(dataset, arg, **model):
    return tiny_config(f"{dataset}.py:{arg}", **model)


DATASETS = {31: "cave", 48: "houston", 102: "pavia", 128: "chikusei"}


@pytest.mark.parametrize("bands", sorted(DATASETS))
@pytest.mark.parametrize("scale", [2, 3, 4, 8])
@pytest.mark.parametrize("variant", ["net", "lr", "vdsr", "bicubic"])
def test_runs_under_jit(bands, scale, variant, rng):
    model = build_model(tiny(DATASETS[bands], f"x{scale},{variant}"))
    lr = jnp.asarray(rng.random((2, 5, 6, bands)), jnp.float32)
    variables = model.init(jax.random.key(0), lr)
    sr, feats = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, lr)
    assert sr.shape == (2, 5 * scale, 6 * scale, bands) and sr.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(sr)))
    if variant == "bicubic":
        assert feats is None
        np.testing.assert_allclose(np.asarray(sr), imresize_np(np.asarray(lr), scale), atol=1e-6)
    else:
        # sr = features + bicubic(lr): the features are the post-PixelShuffle map KD aligns.
        assert feats.shape == sr.shape
        np.testing.assert_allclose(np.asarray(sr - feats), imresize_np(np.asarray(lr), scale), atol=1e-5)


def test_train_mode_updates_batch_stats_and_drops_paths(rng):
    model = build_model(tiny("pavia", "x4,net", depth=2, drop_path_rate=0.5, norm="batch"))
    lr = jnp.asarray(rng.random((16, 4, 4, 102)), jnp.float32)
    variables = model.init(jax.random.key(0), lr)
    run = lambda key: model.apply(variables, lr, train=True, rngs={"dropout": key}, mutable=["batch_stats"])
    (sr_a, _), upd = run(jax.random.key(1))
    (sr_b, _), _ = run(jax.random.key(2))
    assert not np.allclose(np.asarray(sr_a), np.asarray(sr_b))  # drop path is random in training
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), upd["batch_stats"], variables["batch_stats"])
    assert all(jax.tree.leaves(changed))
    ev1, _ = model.apply(variables, lr)
    ev2, _ = model.apply(variables, lr)
    np.testing.assert_array_equal(np.asarray(ev1), np.asarray(ev2))  # deterministic in eval


def test_channel_norm_is_a_per_pixel_layer_norm_over_channels(rng):
    """model.norm='layer': per pixel, mean and biased variance over the channels (NumPy here), then
    a per-channel scale and bias; no batch statistics; eval and train give the same output."""
    from lkca_jax.models.lkca import ChannelNorm

    x = rng.normal(2.0, 3.0, (2, 5, 4, 16)).astype(np.float32)
    scale, bias = rng.normal(size=16).astype(np.float32), rng.normal(size=16).astype(np.float32)
    got = ChannelNorm(1e-6).apply({"params": {"scale": scale, "bias": bias}}, jnp.asarray(x))
    mu, var = x.astype(np.float64).mean(-1, keepdims=True), x.astype(np.float64).var(-1, keepdims=True)
    np.testing.assert_allclose(np.asarray(got), (x - mu) / np.sqrt(var + 1e-6) * scale + bias, atol=1e-5)
    model = build_model(tiny("pavia", "x4,net", depth=2, drop_path_rate=0.0, norm="layer"))
    lr = jnp.asarray(rng.random((4, 4, 4, 102)), jnp.float32)
    variables = model.init(jax.random.key(0), lr)
    assert "batch_stats" not in variables and "scale" in variables["params"]["block0"]["bn"]
    np.testing.assert_allclose(np.asarray(model.apply(variables, lr, train=True)[0]),
                               np.asarray(model.apply(variables, lr)[0]), atol=1e-6)


def test_svd_upsampler_shapes(rng):
    model = build_model(tiny("chikusei", "x4,net", upsampler="svd", rank=5))
    params = model.init(jax.random.key(0), jnp.ones((1, 4, 4, 128)))["params"]["up"]
    assert params["conv_v"]["kernel"].shape == (3, 3, 16, 5) and "bias" not in params["conv_v"]
    assert params["conv_u"]["kernel"].shape == (1, 1, 5, 128 * 16)


def test_conv_impls_agree(rng):
    lr = jnp.asarray(rng.random((2, 6, 6, 31)), jnp.float32)
    fast, xla = (build_model(tiny("cave", "x4,lr", conv_impl=i)) for i in ("fast", "xla"))
    variables = fast.init(jax.random.key(0), lr)
    np.testing.assert_allclose(np.asarray(fast.apply(variables, lr)[0]), np.asarray(xla.apply(variables, lr)[0]),
                               atol=1e-5)


def test_invalid_groups_name_bands_scale_groups():
    with pytest.raises(ValueError) as err:
        LKCANet(bands=31, scale=2, upsampler="grouped", groups=8)
    assert all(s in str(err.value) for s in ("bands=31", "scale=2", "groups=8"))


@pytest.mark.parametrize("bands,scale,expect", [(31, 2, 4), (128, 4, 8), (102, 3, 2), (31, 3, 1)])
def test_auto_groups(bands, scale, expect):
    # Largest divisor of gcd(F=128, bands*scale^2) not above 8, worked out by hand.
    assert LKCANet(bands=bands, scale=scale, upsampler="grouped", groups="auto").up_groups == expect


def test_unknown_upsampler_and_model():
    with pytest.raises(ValueError, match="upsampler"):
        LKCANet(bands=31, scale=2, upsampler="transposed")
    config = tiny("cave", "x4,net")
    config.model.name = "edsr"
    with pytest.raises(ValueError, match="edsr"):
        build_model(config)


def test_lr_upsampler_is_block_diagonal_dense_conv(rng):
    # LKCA-LR's grouped upsampler equals a dense conv whose kernel, expanded in PyTorch's group
    # order (output block j reads input block j), is zero off the diagonal blocks.
    from lkca_jax.ops.conv import Conv, conv_xla

    model = build_model(tiny("houston", "x4,lr"))  # F = 16, C*r*r = 768, g = 8
    lr = jnp.asarray(rng.random((1, 5, 5, 48)), jnp.float32)
    params = model.init(jax.random.key(0), lr)["params"]["up"]["conv"]
    kernel = np.asarray(params["kernel"])  # (3, 3, F/g, C*r*r)
    g, fin, cout = 8, 16, 768
    dense = np.zeros((3, 3, fin, cout), np.float32)
    for j in range(g):
        dense[:, :, j * fin // g:(j + 1) * fin // g, j * cout // g:(j + 1) * cout // g] = \
            kernel[:, :, :, j * cout // g:(j + 1) * cout // g]
    feat = jnp.asarray(rng.standard_normal((1, 5, 5, fin)), jnp.float32)
    grouped_out = Conv(cout, 3, groups=g, impl="fast").apply({"params": params}, feat)  # the model's layer
    np.testing.assert_allclose(np.asarray(grouped_out), np.asarray(conv_xla(feat, jnp.asarray(dense)) + params["bias"]),
                               atol=1e-5)


def test_zero_init_upsampler_starts_at_bicubic(rng):
    model = build_model(tiny("cave", "x4,lr", up_init_scale=0.0))
    lr = jnp.asarray(rng.random((1, 6, 6, 31)), jnp.float32)
    sr, feats = model.apply(model.init(jax.random.key(0), lr), lr)
    assert not np.any(np.asarray(feats))
    np.testing.assert_allclose(np.asarray(sr), imresize_np(np.asarray(lr), 4), atol=1e-6)


def test_vdsr_starts_at_bicubic_and_its_he_stack_keeps_the_signal():
    """VDSR's last conv starts at zero (SR = bicubic); He initialisation keeps the 20-layer ReLU
    stack's variance, so with the last conv He-initialised too the features start at the input's
    scale (PyTorch's default init left them at ~1e-8, and VDSR never moved off bicubic)."""
    c = load_config(str(ROOT / "configs/cave.py:x4,vdsr"))
    x = np.random.default_rng(0).random((2, 16, 16, 31), np.float32)
    model = build_model(c)
    sr, feats = model.apply(model.init(jax.random.key(0), x), x)
    assert not np.any(np.asarray(feats))
    np.testing.assert_allclose(np.asarray(sr), imresize_np(x, 4), atol=1e-6)
    c.model.up_init_scale = 1.0
    model = build_model(c)
    feats = model.apply(model.init(jax.random.key(0), x), x)[1]
    assert 0.1 * x.std() < float(jnp.std(feats)) < 100 * x.std()


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("batch,side", [(1, 2), (3, 6)])  # 4 pixels (under 9 x 8 / g: columns as they
def test_shuffle_conv_is_conv_then_pixel_shuffle(groups, batch, side, rng):  # are) and 108 (permuted)
    """Both of ShuffleConv's forms (the kernel's columns permuted sub-pixel-major where the outputs
    outnumber the kernel's values, the plain shuffle otherwise) against PixelShuffle of XLA's
    conv with the same kernel and bias (pixel_shuffle is checked against PyTorch's in test_ops)."""
    from lkca_jax.models.upsampler import ShuffleConv
    from lkca_jax.ops.conv import conv_xla
    from lkca_jax.ops.pixel_shuffle import pixel_shuffle

    x = rng.standard_normal((batch, side, side, 8)).astype(np.float32)
    layer = ShuffleConv(32, 3, groups=groups, scale=2)
    v = layer.init(jax.random.key(0), x)
    kernel, bias = v["params"]["kernel"], v["params"]["bias"]
    want = pixel_shuffle(conv_xla(jnp.asarray(x), kernel, groups) + bias, 2)
    np.testing.assert_allclose(np.asarray(layer.apply(v, x)), np.asarray(want), rtol=0, atol=1e-5)
