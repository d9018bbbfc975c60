"""VDSR, 3D-FCNN and SSPSR (docs/design.md section 8): the Flax models against their PyTorch
references on a real cube (outputs, gradients, both conversions), SSPSR's public state-dict layout,
its loss against a NumPy computation, and ``rank``/``lowrank`` on each one's upsampler."""

import json

import jax
import numpy as np
import pytest

from conftest import ROOT, tiny_config
from lkca_jax import checkpoint, losses, lowrank, methods
from lkca_jax.__main__ import main as cli
from lkca_jax.data.io import read
from lkca_jax.models import build_model
from lkca_jax.models.sspsr import band_counts, group_starts
from lkca_jax.ops.imresize import imresize_np

SMALL = {"vdsr": dict(vdsr=dict(depth=3, features=8)), "fcnn3d": dict(fcnn3d=dict(widths=(12, 6, 9))),
         "sspsr": dict(sspsr=dict(features=16, blocks=1, reduction=4)),
         # two DCTMs: middle1 runs, middle0 is allocated and never called
         # 16-band groups overlapping by 4 (the paper's: 8 and 2): 4, 9 and 11 groups at 48, 102 and 128
         # bands instead of 8, 17 and 21, each its own attention block, which XLA compiles apart; 48 bands
         # still end in a group shifted back over its neighbour
         "msdformer": dict(msdformer=dict(features=12, heads=2, blocks=2, mlp_ratio=2.0, reduction=4, subs=16,
                                          overlap=4)),
         # no dropout, so PyTorch's training mode (the gradient check) computes the same function; width 32:
         # at 16 the gradient check's random weights (seed 3, x8, 128 bands) are ill-conditioned, JAX's own
         # float32 gradients 1.8e-4 from its float64 ones (1e-6 for other seeds and at 32)
         "essaformer": dict(essaformer=dict(features=32, dropout=0.0))}
SAMPLE = ROOT / "lkca_jax" / "data" / "sample" / "pavia_rosis_100.npz"
METHOD_ROWS = {"vdsr": "| VDSR |", "fcnn3d": "| 3D-FCNN |", "sspsr": "| SSPSR |", "msdformer": "| MSDformer |",
               "essaformer": "| ESSAformer |"}
METHODS = tuple(SMALL)


def small(method, bands=102, scale=4, **model):
    c = tiny_config(f"sample.py:x{scale},{method}", bands=bands, **SMALL[method])
    c.model.update(model)  # recursive: essaformer=dict(dropout=...) keeps the block's other fields
    return c


def real_lr(bands, scale, size=10):
    """An LR crop of the embedded real Pavia cube (102 bands; 48 = its first 48, 128 = all 102 then
    its first 26 again), made as the protocols make LR images (MATLAB bicubic of the HR crop)."""
    cube = np.asarray(read(SAMPLE), np.float64)
    cube = np.concatenate([cube, cube[..., :26]], axis=-1)[..., :bands] / cube.max()
    hr = cube[:size * scale, :size * scale]
    return imresize_np(hr, 1 / scale)[None].astype(np.float32), hr[None].astype(np.float32)


def test_group_starts_are_sspsr_s():
    # docs/design.md section 8.0: Chikusei G = 21 ending at 120, Houston 8 and Pavia 17 shifted back.
    assert group_starts(128) == list(range(0, 121, 6))
    assert group_starts(48) == [0, 6, 12, 18, 24, 30, 36, 40]
    assert len(group_starts(102)) == 17 and group_starts(102)[-1] == 94
    with pytest.raises(ValueError, match="bands >= subs"):
        group_starts(6)
    # Houston's overlaps: two bands between neighbours, and four where the shifted last group [40, 48)
    # meets [36, 44); the average divides by these
    twice = {6, 7, 12, 13, 18, 19, 24, 25, 30, 31, 36, 37, 40, 41, 42, 43}
    np.testing.assert_array_equal(band_counts(48, group_starts(48)), [2 if b in twice else 1 for b in range(48)])


@pytest.mark.parametrize("method", ["sspsr", "msdformer"])
def test_a_width_under_the_attention_reduction_is_refused_by_name(method):
    """12 features with the reduction of 16 would give a channel attention of 0 channels (a division
    by zero deep in the initialiser before this check): a ValueError that says what to change."""
    from lkca_jax.config import base_config
    from lkca_jax.models import build_model

    c = base_config("sample", f"x4,{method}")
    c.model[method].features, c.model[method].subs, c.model[method].overlap = 12, 8, 2
    if method == "msdformer":
        c.model.msdformer.heads = 2
    with pytest.raises(ValueError, match="12 features, fewer than its reduction 16"):
        build_model(c).init(jax.random.key(0), np.zeros((1, 8, 8, c.model.bands), np.float32), train=False)


def test_sspsr_loss_is_l1_plus_its_tv_terms(rng):
    y, gt = rng.random((2, 5, 6, 7)), rng.random((2, 5, 6, 7))
    tv = np.mean((y[:, 1:] - y[:, :-1]) ** 2) + np.mean((y[:, :, 1:] - y[:, :, :-1]) ** 2)
    spectral = np.mean((y[..., 1:] - y[..., :-1]) ** 2)
    got = losses.sspsr(y, gt)
    assert float(got["loss"]) == pytest.approx(np.mean(np.abs(y - gt)) + 1e-3 * tv + 2e-3 * spectral, rel=1e-6)
    masked = losses.sspsr(np.concatenate([y, 9 + y]), np.concatenate([gt, gt]), mask=np.array([1, 1, 0, 0.0]))
    assert float(masked["loss"]) == pytest.approx(float(got["loss"]), rel=1e-6)


def test_mse_loss_and_the_loss_choice(rng):
    import ml_collections

    y, gt = rng.random((3, 4, 5, 6)), rng.random((3, 4, 5, 6))
    t = ml_collections.ConfigDict({"loss": "mse"})
    assert float(losses.training_loss(t, y, gt)["loss"]) == pytest.approx(np.mean((y - gt) ** 2), rel=1e-6)
    t.loss = "l2"
    with pytest.raises(ValueError, match="train.loss must be one of"):
        losses.training_loss(t, y, gt)


def test_fcnn3d_outer_spectral_taps_never_change_the_output(rng):
    c = small("fcnn3d", bands=48)
    model = build_model(c)
    lr, _ = real_lr(48, 4)
    v = jax.tree.map(np.array, model.init(jax.random.key(0), lr))
    assert v["params"]["conv1"]["kernel"].shape == (3, 9, 9, 48, 12)
    assert v["params"]["up"]["conv"]["kernel"].shape == (3, 5, 5, 9, 48 * 16)
    before = np.asarray(model.apply(v, lr)[0])
    v["params"]["conv1"]["kernel"][[0, 2]] = rng.normal(size=(2, 9, 9, 48, 12))
    v["params"]["up"]["conv"]["kernel"][[0, 2]] = 0
    np.testing.assert_array_equal(np.asarray(model.apply(v, lr)[0]), before)


@pytest.mark.parametrize("method", METHODS)
def test_tiny_trained_runs_rank_and_lowrank(method, tmp_path, capsys):
    """`rank` and `lowrank convert --to grouped:8` on a short real training run of each method (3D-FCNN's
    upsampler has 9 input features, so 8 becomes the largest divisor below it, 3)."""
    from lkca_jax.training import train_and_evaluate

    c = small(method, bands=102)
    c.train.num_steps, c.train.batch_size, c.train.eval_every_steps = 3, 8, 3
    c.train.checkpoint_every_steps, c.train.log_every_steps = 3, 3
    run = tmp_path / "run"
    train_and_evaluate(c, run, echo=lambda *a: None)
    assert cli(["rank", "--workdir", str(run)]) == 0
    assert (run / "rank" / "rank.png").exists()
    assert cli(["lowrank", "convert", "--workdir", str(run), "--to", "grouped:8", "--out", str(tmp_path / "g")]) == 0
    out = capsys.readouterr().out
    model, v, config = checkpoint.load_run(tmp_path / "g")
    expected = {"vdsr": 8, "fcnn3d": 3, "msdformer": 6}.get(method, 8)  # MSDformer's tiny F is 12
    assert config.model.upsampler == "grouped" and model.up_groups == expected and f"grouped:{expected}" in out
    dense_model, dense_v, _ = checkpoint.load_run(run)
    parts, dense_parts = methods.upsampler_parts(v, config), methods.upsampler_parts(dense_v, config)
    # one upsampler, or one per x2 stage (MSDformer's and ESSAformer's at x4: two, both converted)
    assert len(parts) == (2 if method in ("msdformer", "essaformer") else 1) and parts.keys() == dense_parts.keys()
    for path, up in parts.items():
        kernel = np.asarray(lowrank.live(dense_parts[path]["conv"]["kernel"]), np.float64)
        # the converted run computes the block-diagonal part of the trained kernel: input feature f
        # reaches output o where both lie in the same of the `expected` groups, nothing else
        f, o = kernel.shape[2:]
        same = (np.arange(f)[:, None] // (f // expected)) == (np.arange(o)[None, :] // (o // expected))
        np.testing.assert_allclose(lowrank.dense_equivalent(up, expected), kernel * same, atol=1e-7)
    lr, _ = real_lr(102, 4, 6)
    assert np.isfinite(np.asarray(model.apply(v, lr)[0])).all()
    assert cli(["lowrank", "convert", "--workdir", str(run), "--to", "svd:4", "--out", str(tmp_path / "s")]) == 0
    assert cli(["rank", "--workdir", str(run), str(tmp_path / "s"), "--out", str(tmp_path / "both")]) == 0
    spectra = json.loads((tmp_path / "both" / "rank.json").read_text())
    assert len(spectra) == 2 * len(parts) and {sp["rank99"] for sp in spectra.values()} >= {4}  # the SVD run: rank 4
    assert cli(["table", "--workdir", str(run)]) == 0 and METHOD_ROWS[method] in capsys.readouterr().out


def _torch():
    return pytest.importorskip("torch", reason="torch is not installed (pip install -r requirements-dev.txt)")


# each scale and each band layout for every method; 128 bands (a third layout of the band groups) for
# SSPSR, whose grouping MSDformer's head shares, not again for MSDformer and ESSAformer (CI time)
AGREE = [(m, s, b) for m in METHODS for s, b in [(4, 48), (8, 102), (4, 128)]
         if (s, b) != (4, 128) or m not in ("msdformer", "essaformer")]


@pytest.mark.parametrize("method, scale, bands", AGREE)
def test_flax_and_the_pytorch_reference_agree(method, bands, scale):
    """Outputs within 1e-5 and the gradients of the method's own loss within 1e-4 (relative to each
    tensor's norm, against the reference's float64 gradients) on a real cube, with random (non-zero)
    weights everywhere."""
    torch = _torch()
    from lkca_jax import convert
    from lkca_jax.reference.losses import training_loss

    torch.set_num_threads(2)
    c = small(method, bands, scale, up_init_scale=1.0)
    model = build_model(c)
    lr, hr = real_lr(bands, scale, 8 if scale == 8 else 10)
    v = jax.tree.map(np.array, jax.device_get(model.init(jax.random.key(3), lr)))
    net = convert.torch_model(v, c)
    nchw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))
    sr, feats = (np.asarray(a) for a in model.apply(v, lr))
    with torch.no_grad():
        tsr, tfeats = (a.numpy().transpose(0, 2, 3, 1) for a in net(nchw(lr)))
    assert np.abs(sr - imresize_np(lr[0], scale)).max() > 1e-3  # the network's part is not trivial
    np.testing.assert_allclose(tsr, sr, atol=1e-5, rtol=0)
    np.testing.assert_allclose(tfeats, feats, atol=1e-5, rtol=0)

    loss = losses.training_loss(c.train, jax.numpy.asarray(sr), hr)["loss"]
    grads = jax.grad(lambda p: losses.training_loss(c.train, model.apply({"params": p}, lr)[0], hr)["loss"])(
        v["params"])
    # The reference gradients in float64: PyTorch's float32 CPU kernels accumulate less exactly than
    # XLA's (ESSAformer at 128 bands: up to 5e-4 relative in float32, 7e-7 for JAX, both against float64).
    torch_loss = training_loss(c.train)
    net = net.double().train()
    tl = torch_loss(net(nchw(lr).double())[0], nchw(hr).double())
    tl.backward()
    assert tl.item() == pytest.approx(float(loss), rel=1e-5)
    # parameters that never run (MSDformer's middle.0) have no gradient in PyTorch and a zero one in JAX
    tgrads = convert.torch_to_flax({k: torch.zeros_like(p).float() if p.grad is None else p.grad.float()
                                    for k, p in net.named_parameters()}, c)["params"]
    for (path, g), tg in zip(jax.tree_util.tree_leaves_with_path(grads), jax.tree.leaves(tgrads), strict=True):
        g = np.asarray(g)
        assert np.linalg.norm(tg - g) <= 1e-4 * np.linalg.norm(g) + 1e-9, jax.tree_util.keystr(path)
    if method == "fcnn3d":  # the dead spectral taps get no gradient in either framework
        dead = [np.asarray(grads["conv1"]["kernel"])[[0, 2]], tgrads["conv1"]["kernel"][[0, 2]]]
        assert not np.any(dead[0]) and not np.any(dead[1])


def public_sspsr_keys(c) -> set[str]:
    """The state-dict names of SSPSR's public code (SSPSR.py and common.py at the commit in
    docs/design.md section 8.0), written out from its module structure."""
    m = c.model
    keys = {"skip_conv", "final", "branch.head", "branch.tail", "trunk.head", "trunk.upsample.0"}
    keys |= {f"branch.upsample.{2 * j}" for j in range(int(np.log2(m.scale // 2)))}
    for part in ("branch", "trunk"):
        for i in range(m.sspsr.blocks):
            block = f"{part}.body.net.{i}"
            keys |= {f"{block}.spa.body.0", f"{block}.spa.body.2", f"{block}.spc.body.0", f"{block}.spc.body.2",
                     f"{block}.spc.body.3.conv_du.0", f"{block}.spc.body.3.conv_du.2"}
    return {f"{k}.{leaf}" for k in keys for leaf in ("weight", "bias")}


def public_msdformer_keys(c) -> set[str]:
    """MSDformer.py and common.py (the commit of docs/design.md section 8.0): MSAMG ``head`` (shared DCAM ``IG``,
    per-group ``spc``/``middle``, ``tail``), ``body`` DCTMs, ``middle`` convs, ``skip_conv``,
    ``upsample``, ``tail``."""
    m = c.model
    with_bias = {"head.tail", "skip_conv", "tail", "head.IG.spa.body.0", "head.IG.spa.body.2"}
    with_bias |= {f"head.IG.dcb.dconv{i}" for i in (1, 2, 3)}
    with_bias |= {f"upsample.{2 * j}" for j in range(int(np.log2(m.scale)))}
    for g in range(len(group_starts(m.bands, m.msdformer.subs, m.msdformer.overlap))):
        with_bias |= {f"head.middle.{g}", *(f"head.spc.{g}.body.{i}" for i in (0, 2)),
                      *(f"head.spc.{g}.body.3.conv_du.{i}" for i in (0, 2))}
    keys = {"head.IG.dcb.act.weight"}
    for i in range(m.msdformer.blocks):
        with_bias |= {f"middle.{i}", f"body.{i}.norm1", f"body.{i}.norm2", f"body.{i}.mlp.fc1", f"body.{i}.mlp.fc2",
                      f"body.{i}.global_attn.deformconv.p_conv"}
        keys |= {f"body.{i}.global_attn.{k}" for k in ("temperature", "qkv.weight", "deformconv.conv.weight",
                                                         "project_out.weight")}
    return keys | {f"{k}.{leaf}" for k in with_bias for leaf in ("weight", "bias")}


def public_essaformer_keys(c) -> set[str]:
    """ESSA.py (the commit of docs/design.md section 8.0): ``conv_first``, ``blockup`` (``convup``/``convdown`` with
    ``norm``, ``attn.lnqkv``, ``attn.ln`` and their conv Sequential, ``convupsample``,
    ``convdownsample``), ``conv_last``."""
    stages = int(np.log2(c.model.scale))
    keys = {"conv_first", "conv_last"}
    for part, body in (("convup", "convu"), ("convdown", "convd")):
        keys |= {f"blockup.{part}.{k}" for k in ("norm", "attn.lnqkv", "attn.ln", f"{body}.0", f"{body}.3",
                                                   f"{body}.6")}
    keys |= {f"blockup.conv{kind}sample.{2 * j}" for kind in ("up", "down") for j in range(stages)}
    return {f"{k}.{leaf}" for k in keys for leaf in ("weight", "bias")}


PUBLIC_KEYS = {"sspsr": public_sspsr_keys, "msdformer": public_msdformer_keys, "essaformer": public_essaformer_keys}


@pytest.mark.parametrize("method", sorted(PUBLIC_KEYS))
@pytest.mark.parametrize("scale", [4, 8])
def test_a_state_dict_in_the_public_layout_converts(method, scale, tmp_path, rng, capsys):
    """A bare state dict with the public code's names (as its training script saves
    `net.state_dict()`) converts with `convert --from --config`, and the run reproduces the
    reference's output (SSPSR and MSDformer given the bicubic image as the public code is)."""
    torch = _torch()
    from lkca_jax.reference import build_torch_model

    two_blocks = {"sspsr": {"sspsr": {"blocks": 2}}}.get(method, {})  # SSPN blocks 0 and 1 in the layout
    c = small(method, 48, scale, **two_blocks)
    net = build_torch_model(c).eval()
    assert set(net.state_dict()) == PUBLIC_KEYS[method](c)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.from_numpy(rng.normal(0, 0.05, tuple(p.shape)).astype(np.float32)))
    # bare, as the public training scripts save it; ESSAformer's also inside a BasicSR-style checkpoint dict
    payload = {"params": net.state_dict(), "iter": 1} if method == "essaformer" else net.state_dict()
    torch.save(payload, tmp_path / "public.pth")
    block = {**c.model[method]}  # the small model's own fields, as command-line overrides
    args = ["convert", "--from", str(tmp_path / "public.pth"),
            "--config", f"{ROOT}/configs/houston.py:x{scale},{method}",
            *(a for k, v in block.items() for a in (f"--config.model.{method}.{k}", str(v))),
            "--workdir", str(tmp_path / "run")]
    assert cli(args) == 0
    model, v, _ = checkpoint.load_run(tmp_path / "run")
    lr, _ = real_lr(48, scale, 6)
    inputs = [torch.from_numpy(lr.transpose(0, 3, 1, 2))]
    if method != "essaformer":
        inputs.append(torch.from_numpy(imresize_np(lr[0], scale)[None].astype(np.float32).transpose(0, 3, 1, 2)))
    with torch.no_grad():
        want = net(*inputs)[0]
    np.testing.assert_allclose(np.asarray(model.apply(v, lr)[0]), want.numpy().transpose(0, 2, 3, 1), atol=1e-5)
    # a missing or misshapen tensor is named, exit 2, no run written
    sd = net.state_dict()
    last = next(reversed(sd))
    for broken, said in ((dict(list(sd.items())[1:]), next(iter(sd))), ({**sd, last: torch.zeros(3)}, last)):
        torch.save(broken, tmp_path / "bad.pth")
        assert cli([*args[:2], str(tmp_path / "bad.pth"), *args[3:-1], str(tmp_path / "bad")]) == 2
        assert said in capsys.readouterr().err and not (tmp_path / "bad").exists()


@pytest.mark.parametrize("method", METHODS)
def test_sr_and_export_through_the_registry(method, tmp_path):
    """`sr` on the embedded real scene and both deployment artifacts (each verified against Flax by
    `export` itself before it is kept) for a run of each method."""
    c = small(method, bands=102, up_init_scale=1.0)
    model = build_model(c)
    v = jax.device_get(model.init(jax.random.key(0), np.zeros((1, 8, 8, 102), np.float32)))
    run = tmp_path / "run"
    checkpoint.save_run(run, c, v)
    out = tmp_path / "sr.npy"
    assert cli(["sr", "--workdir", str(run), "--input", str(SAMPLE), "--output", str(out), "--tile", "0"]) == 0
    sr = np.load(out)
    lr = np.asarray(read(SAMPLE), np.float32)
    assert sr.shape == (400, 400, 102)
    np.testing.assert_allclose(sr, np.asarray(model.apply(v, lr[None] / lr.max())[0])[0] * lr.max(), atol=1e-4)
    x = np.random.default_rng(0).random((2, 12, 10, 102), dtype=np.float32)
    want = np.asarray(model.apply(v, x)[0])
    assert cli(["export", "--workdir", str(run), "--format", "stablehlo", "--lr_size", "12,10",
                "--out", str(tmp_path / "m.stablehlo")]) == 0
    exported = jax.export.deserialize((tmp_path / "m.stablehlo").read_bytes())
    np.testing.assert_allclose(np.asarray(exported.call(x)), want, atol=1e-4, rtol=0)
    onnxruntime = pytest.importorskip("onnxruntime")  # ONNX goes through the PyTorch reference: a dev requirement
    assert cli(["export", "--workdir", str(run), "--format", "onnx", "--lr_size", "12,10",
                "--out", str(tmp_path / "m.onnx")]) == 0
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(["sr"], {"lr": x.transpose(0, 3, 1, 2)})[0].transpose(0, 2, 3, 1)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_essaformer_dropout2d_acts_in_training_only():
    """Dropout2d(0.2) in Convup/Convdown: training outputs depend on the dropout key, inference and
    rate 0 do not (rate 0 in training is inference)."""
    lr, _ = real_lr(48, 4, 6)
    outs = {}
    for rate in (0.2, 0.0):
        c = small("essaformer", 48, 4, essaformer=dict(dropout=rate))
        model = build_model(c)
        v = model.init(jax.random.key(0), lr)
        train = [np.asarray(model.apply(v, lr, train=True, rngs={"dropout": jax.random.key(k)})[0]) for k in (1, 2)]
        outs[rate] = (*train, np.asarray(model.apply(v, lr)[0]))
    a, b, infer = outs[0.2]
    assert np.abs(a - b).max() > 1e-3 and np.abs(a - infer).max() > 1e-3
    np.testing.assert_allclose(outs[0.0][0], outs[0.0][2], atol=1e-6)
    np.testing.assert_array_equal(outs[0.0][2], infer)  # same weights, inference ignores the rate



@pytest.mark.parametrize("method", ["msdformer", "essaformer"])
def test_bicubic_residual_starts_at_bicubic_learns_and_matches_the_reference(method):
    """model.bicubic_residual: SR = bicubic at init (the last conv starts at zero) while every other
    layer is random, the last conv's kernel has a gradient, and with random weights the PyTorch
    reference built from the same config adds the same bicubic image."""
    torch = _torch()
    from lkca_jax import convert

    lr, hr = real_lr(20, 4, 6)
    c = small(method, 20, 4, bicubic_residual=True, up_init_scale=1.0)
    model = build_model(c)
    v = jax.tree.map(np.array, jax.device_get(model.init(jax.random.key(0), lr)))
    sr, feats = (np.asarray(a) for a in model.apply(v, lr))
    np.testing.assert_allclose(sr, imresize_np(lr[0], 4)[None], atol=1e-6)
    assert np.abs(feats).max() > 1e-3
    last = "tail" if method == "msdformer" else "conv_last"
    grads = jax.grad(lambda p: losses.training_loss(c.train, model.apply({"params": p}, lr)[0], hr)["loss"])(
        v["params"])
    assert np.abs(np.asarray(grads[last]["kernel"])).max() > 1e-6

    v["params"][last]["kernel"] = np.random.default_rng(1).normal(0, 0.05, v["params"][last]["kernel"].shape
                                                                    ).astype(np.float32)
    sr = np.asarray(model.apply(v, lr)[0])
    assert np.abs(sr - imresize_np(lr[0], 4)[None]).max() > 1e-3
    with torch.no_grad():
        tsr = convert.torch_model(v, c)(torch.from_numpy(np.ascontiguousarray(lr.transpose(0, 3, 1, 2))))[0]
    np.testing.assert_allclose(tsr.numpy().transpose(0, 2, 3, 1), sr, atol=1e-5, rtol=0)


def test_several_upsampler_stages_start_with_only_the_last_at_zero():
    """up_init_scale 0 on a two-stage (x4) upsampler zeroes the last stage only: the first keeps its
    random kernel, so the last one's kernel gets a gradient from the first step (zero in both, it got none)."""
    lr, hr = real_lr(20, 4, 6)
    c = small("msdformer", 20, 4, up_init_scale=0.0)
    model = build_model(c)
    v = model.init(jax.random.key(0), lr)
    up = v["params"]["upsample"]
    assert not np.any(np.asarray(up["stage2"]["conv"]["kernel"]))
    assert np.abs(np.asarray(up["stage0"]["conv"]["kernel"])).max() > 0
    assert not np.any(np.asarray(model.apply(v, lr)[1]))
    grads = jax.grad(lambda p: losses.training_loss(c.train, model.apply({"params": p}, lr)[0], hr)["loss"])(
        v["params"])
    assert np.abs(np.asarray(grads["upsample"]["stage2"]["conv"]["kernel"])).max() > 1e-6
