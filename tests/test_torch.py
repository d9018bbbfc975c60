"""Cross-framework checks against the independent PyTorch reference (lkca_jax/reference/):
outputs, gradients and an Adam step agree; weights convert both ways bitwise; exported StableHLO
and ONNX artifacts agree with Flax."""

import subprocess
import sys

import jax
import numpy as np
import optax
import pytest

from conftest import shared_data, tiny_config

torch = pytest.importorskip("torch", reason="torch is not installed (pip install -r requirements-dev.txt)")

from lkca_jax import checkpoint, convert, losses  # noqa: E402
from lkca_jax.__main__ import main as cli  # noqa: E402
from lkca_jax.data.io import read  # noqa: E402
from lkca_jax.models import build_model  # noqa: E402
from lkca_jax.ops.imresize import imresize_np  # noqa: E402
from lkca_jax.reference.losses import hloss  # noqa: E402
from lkca_jax.reference.upsampler import bicubic_matrix  # noqa: E402

torch.set_num_threads(2)


def tiny(bands=102, scale=4, variant="net", **model):
    return tiny_config(f"sample.py:x{scale},{variant}", **{"bands": bands, "depth": 2, "drop_path_rate": 0.0,
                                                             "vdsr": dict(depth=3), **model})


def random_variables(c, rng):
    """Initialised weights plus non-trivial BatchNorm statistics, norm scales, gammas and layer scales."""
    model = build_model(c)
    v = jax.device_get(model.init(jax.random.key(0), np.zeros((1, 8, 8, c.model.bands), np.float32)))
    v = jax.tree.map(np.array, v)
    if "batch_stats" in v:
        v["batch_stats"] = jax.tree.map(lambda x: rng.normal(0, 0.3, x.shape).astype(np.float32), v["batch_stats"])
        v["batch_stats"] = jax.tree_util.tree_map_with_path(
            lambda p, x: np.abs(x) + 0.5 if p[-1].key == "var" else x, v["batch_stats"])
    if c.model.name == "lkca":  # every vector that starts constant (up_extra's too: each channel its own)
        v["params"] = jax.tree_util.tree_map_with_path(
            lambda p, x: rng.uniform(0.5, 1.5, x.shape).astype(np.float32)
            if p[-1].key in ("gamma", "layer_scale", "scale", "out_scale", "out_prelu") else
            rng.normal(0, 0.1, x.shape).astype(np.float32) if p[-1].key == "out_bias" else x, v["params"])
    return model, v


def to_torch(c, v, train=False):
    return convert.torch_model(v, c).train(train)


def nchw(x):
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def test_matlab_bicubic_matrix_matches_the_numpy_imresize(rng):
    x = rng.random((9, 7, 3))
    for r in (2, 3, 4, 8):
        m_h, m_w = bicubic_matrix(9, r), bicubic_matrix(7, r)
        np.testing.assert_allclose(np.einsum("Hh,hwc,Ww->HWc", m_h, x, m_w), imresize_np(x, r), atol=1e-12)


@pytest.mark.parametrize("bands", [31, 102, 128])
@pytest.mark.parametrize("scale", [2, 4, 8])
@pytest.mark.parametrize("variant", ["net", "lr"])
@pytest.mark.parametrize("norm", ["layer", "batch"])
def test_eval_outputs_agree(rng, bands, scale, variant, norm):
    c = tiny(bands, scale, variant, norm=norm)
    model, v = random_variables(c, rng)
    lr = rng.random((2, 10, 9, bands), dtype=np.float32)
    sr, feats = (np.asarray(a) for a in model.apply(v, lr, train=False))
    with torch.no_grad():
        tsr, tfeats = to_torch(c, v)(nchw(lr))
    assert np.abs(sr).max() > 0.1 and np.abs(feats).max() > 0.01  # a non-trivial comparison
    # 1e-5 of the output's scale: float32 sums over 128 bands in another order (1.06e-5 seen at |sr| 1.45)
    np.testing.assert_allclose(tsr.numpy().transpose(0, 2, 3, 1), sr, atol=1e-5 * max(1.0, np.abs(sr).max()),
                               rtol=0)
    np.testing.assert_allclose(tfeats.numpy().transpose(0, 2, 3, 1), feats, atol=1e-5 * max(1.0, np.abs(feats).max()),
                               rtol=0)


@pytest.mark.parametrize("extra", ["scale", "prelu", "bias"])
@pytest.mark.parametrize("scale", [2, 4])
def test_the_upsampler_extra_vector_agrees(rng, extra, scale):
    """model.up_extra: each of the C r^2 values acts on PyTorch's pre-shuffle channel c r^2 + i r + j
    (a per-channel random vector, so a wrong order shows), dense and grouped."""
    for variant in ("net", "lr"):
        c = tiny(31, scale, variant, up_extra=extra, up_init_scale=1.0)
        model, v = random_variables(c, rng)
        assert np.ptp(v["params"]["up"][f"out_{extra}"]) > 0.05
        lr = rng.random((2, 10, 9, 31), dtype=np.float32) - (0.5 if extra == "prelu" else 0)  # PReLU's negative side
        sr, feats = (np.asarray(a) for a in model.apply(v, lr, train=False))
        with torch.no_grad():
            tsr, tfeats = to_torch(c, v)(nchw(lr))
        np.testing.assert_allclose(tfeats.numpy().transpose(0, 2, 3, 1), feats,
                                   atol=1e-5 * max(1.0, np.abs(feats).max()), rtol=0)
        # 1e-5 of the output's scale: float32 sums over 128 bands in another order (1.06e-5 seen at |sr| 1.45)
        np.testing.assert_allclose(tsr.numpy().transpose(0, 2, 3, 1), sr, atol=1e-5 * max(1.0, np.abs(sr).max()),
                                   rtol=0)
        assert convert.flax_to_torch(v, c)["up.out_" + extra].shape == (31 * scale * scale,)


def test_vdsr_and_a_real_cave_cube_agree(rng):
    cube = read(shared_data("cave", "balloons_ms"))[200:232, 200:232] / 65535.0
    lr = imresize_np(cube, 1 / 4)[None].astype(np.float32)
    for variant in ("net", "vdsr"):
        c = tiny(31, 4, variant)
        model, v = random_variables(c, rng)
        sr = np.asarray(model.apply(v, lr, train=False)[0])
        with torch.no_grad():
            tsr = to_torch(c, v)(nchw(lr))[0].numpy().transpose(0, 2, 3, 1)
        np.testing.assert_allclose(tsr, sr, atol=1e-5, rtol=0)


def _flax_loss_and_grads(model, v, lr, hr):
    def loss_fn(params):
        (sr, _), _ = model.apply({**v, "params": params}, lr, train=True, mutable=["batch_stats"])
        return losses.supervised(sr, hr)["loss"]
    return jax.value_and_grad(loss_fn)(v["params"])


@pytest.mark.parametrize("norm", ["layer", "batch"])
def test_train_mode_gradients_and_one_adam_step_agree(rng, norm):
    c = tiny(31, 4, "lr", norm=norm)
    model, v = random_variables(c, rng)
    lr = rng.random((3, 8, 8, 31), dtype=np.float32)
    hr = rng.random((3, 32, 32, 31), dtype=np.float32)
    loss, grads = _flax_loss_and_grads(model, v, lr, hr)
    net = to_torch(c, v, train=True)
    tloss = hloss(net(nchw(lr))[0], nchw(hr))
    tloss.backward()
    assert tloss.item() == pytest.approx(float(loss), rel=1e-5)
    tgrads = convert.torch_to_flax({k: p.grad for k, p in net.named_parameters()}
                                   | {k: b for k, b in net.state_dict().items() if "running" in k}, c)["params"]
    # Relative to each leaf's norm; biases feeding a training-mode BatchNorm have gradients that
    # nearly cancel (float32 rounding), so each leaf also gets a floor of 1e-6 of the whole norm.
    total = np.sqrt(sum(np.sum(np.square(g)) for g in jax.tree.leaves(grads)))
    diff = 0.0
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        tg = tgrads
        for key in path:
            tg = tg[key.key]
        err = np.linalg.norm(tg - g)
        diff += err ** 2
        assert err <= 1e-4 * np.linalg.norm(g) + 1e-6 * total, (jax.tree_util.keystr(path), err, np.linalg.norm(g))
    assert np.sqrt(diff) <= 1e-5 * total

    # One Adam step from the same point, on the same batch.
    opt = optax.adam(1e-3)
    updates, _ = opt.update(grads, opt.init(v["params"]), v["params"])
    stepped = optax.apply_updates(v["params"], updates)
    net = to_torch(c, v, train=True)
    torch_opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    hloss(net(nchw(lr))[0], nchw(hr)).backward()
    torch_opt.step()
    back = convert.torch_to_flax(net.state_dict(), c)["params"]
    # Adam's first step is lr * g / (|g| + eps). The bias of the conv feeding a training-mode
    # BatchNorm ('fuse') has a true gradient of zero (the BatchNorm subtracts it again): its float
    # noise, normalised so, is a random fraction of lr in either framework; it is held to Adam's
    # bound |step| <= lr. Every other parameter must agree within 1e-5.
    flat_back = {jax.tree_util.keystr(k): x for k, x in jax.tree_util.tree_leaves_with_path(back)}
    flat_start = {jax.tree_util.keystr(k): x for k, x in jax.tree_util.tree_leaves_with_path(v["params"])}
    for path, a in jax.tree_util.tree_leaves_with_path(stepped):
        name = jax.tree_util.keystr(path)
        b = flat_back[name]
        if "['fuse']['bias']" in name:
            assert np.all(np.abs(b - flat_start[name]) <= 1.001e-3) and np.all(np.abs(a - flat_start[name]) <= 1.001e-3)
        else:
            np.testing.assert_allclose(b, a, atol=1e-5, rtol=0, err_msg=name)
    assert any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(stepped), jax.tree.leaves(v["params"])))


@pytest.mark.parametrize("variant,norm", [("net", "layer"), ("net", "batch"), ("lr", "layer"), ("vdsr", "layer"),
                                          ("fcnn3d", "layer"), ("sspsr", "layer")])
def test_flax_torch_flax_is_bitwise(rng, variant, norm, tmp_path):
    c = tiny(variant=variant, norm=norm, sspsr=dict(features=16, blocks=1, reduction=4))
    _, v = random_variables(c, rng)
    back = convert.torch_to_flax(to_torch(c, v).state_dict(), c)
    assert jax.tree.structure(back) == jax.tree.structure(v)
    for a, b in zip(jax.tree.leaves(v), jax.tree.leaves(back), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    # and through a .pt file with the CLI, into a new run
    run = tmp_path / "run"
    checkpoint.save_run(run, c, v)
    assert cli(["convert", "--workdir", str(run), "--to", str(tmp_path / "m.pt")]) == 0
    assert cli(["convert", "--from", str(tmp_path / "m.pt"), "--workdir", str(tmp_path / "new")]) == 0
    _, again, meta = checkpoint.restore_variables(tmp_path / "new")
    for a, b in zip(jax.tree.leaves(v), jax.tree.leaves(again), strict=True):
        assert np.array_equal(a, b)
    assert meta["converted_from"] == str(tmp_path / "m.pt")


def test_bad_pt_files_are_refused(tmp_path, capsys, rng):
    c = tiny()
    _, v = random_variables(c, rng)
    good = {k: torch.from_numpy(x) for k, x in convert.flax_to_torch(v, c).items()}
    for name, sd, said in [("misshapen", {**good, "head.weight": torch.zeros(3)}, "head.weight: shape (3,)"),
                           ("missing", {k: x for k, x in good.items() if k != "up.conv.bias"}, "no 'up.conv.bias'"),
                           ("extra", {**good, "tail.weight": torch.zeros(1)}, "tail.weight")]:
        torch.save({"state_dict": sd, "config": c.to_json_best_effort()}, tmp_path / f"{name}.pt")
        assert cli(["convert", "--from", str(tmp_path / f"{name}.pt"), "--workdir", str(tmp_path / "new")]) == 2
        assert said in capsys.readouterr().err
    torch.save({"state_dict": {}, "obj": object()}, tmp_path / "b.pt")  # needs unpickling arbitrary objects
    assert cli(["convert", "--from", str(tmp_path / "b.pt"), "--workdir", str(tmp_path / "new")]) == 2
    assert "weights-only" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


EXPORT_CHECK = """
import sys, numpy as np, jax
exported = jax.export.deserialize(open(sys.argv[1], "rb").read())
x = np.load(sys.argv[2])
np.save(sys.argv[3], np.asarray(exported.call(x)))
"""


@pytest.mark.parametrize("norm", ["layer", "batch"])
def test_exported_artifacts_agree_with_flax(rng, tmp_path, norm):
    c = tiny(31, 4, "net", norm=norm)
    model, v = random_variables(c, rng)
    run = tmp_path / "run"
    checkpoint.save_run(run, c, v)
    x = rng.random((3, 12, 10, 31), dtype=np.float32)  # batch 3: the exported batch is symbolic
    want = np.asarray(model.apply(v, x, train=False)[0])
    np.save(tmp_path / "x.npy", x)

    assert cli(["export", "--workdir", str(run), "--format", "stablehlo", "--lr_size", "12,10",
                "--out", str(tmp_path / "m.stablehlo")]) == 0
    out = subprocess.run([sys.executable, "-c", EXPORT_CHECK, str(tmp_path / "m.stablehlo"), str(tmp_path / "x.npy"),
                          str(tmp_path / "y.npy")], capture_output=True, text=True, timeout=300)  # no lkca_jax
    assert out.returncode == 0, out.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, atol=1e-4, rtol=0)

    import onnxruntime

    assert cli(["export", "--workdir", str(run), "--format", "onnx", "--lr_size", "12,10",
                "--out", str(tmp_path / "m.onnx")]) == 0
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(["sr"], {"lr": x.transpose(0, 3, 1, 2)})[0].transpose(0, 2, 3, 1)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
