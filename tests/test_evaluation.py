"""evaluate.py on the embedded sample, tiled inference, and the sr command on every format."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import ROOT, shared_data
from lkca_jax import checkpoint, inference, metrics
from lkca_jax.__main__ import main as cli
from lkca_jax.config import load_config
from lkca_jax.data.datasets import load_splits
from lkca_jax.data.io import read, read_cube, write_cube
from lkca_jax.models import VDSR, build_model
from lkca_jax.ops.imresize import imresize_np


def test_evaluate_bicubic_on_the_sample_equals_metrics_by_hand(tmp_path):
    out = subprocess.run([sys.executable, "evaluate.py", "--config", "configs/sample.py:bicubic",
                          "--workdir", str(tmp_path), "--save_images"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "| Method | Param | Flops | MPSNR | MSSIM | SAM | CC | RMSE | ERGAS | s/img |" in out.stdout
    assert "| Bicubic |" in out.stdout
    record = json.loads((tmp_path / "eval" / "test.json").read_text())
    test = load_splits(load_config(str(ROOT / "configs/sample.py:bicubic")), ("test",))["test"]
    by_hand = [metrics.quality_assessment(hr, imresize_np(lr, 4), 4) for hr, lr in zip(test.hr, test.lr)]
    for k in metrics.NAMES:
        assert record["mean"][k] == pytest.approx(np.mean([m[k] for m in by_hand]), rel=1e-5)
    pictures = sorted(p.name for p in (tmp_path / "eval" / "images").iterdir())
    assert len(pictures) == 2 * len(test) and all(p.endswith(".png") for p in pictures)


def test_tiled_equals_untiled_when_overlap_covers_the_receptive_field(rng):
    # VDSR with 3 + 2 convs: receptive radius 5 LR pixels (the bicubic branch's 2 run beside them).
    model = VDSR(bands=5, scale=2, features=8, depth=3, residual=True)
    lr = rng.uniform(0, 1, (37, 45, 5)).astype(np.float32)
    variables = model.init(jax.random.key(0), jnp.asarray(lr[None]))
    predict = jax.jit(lambda x: model.apply(variables, x)[0])
    whole = np.asarray(predict(lr[None]))[0]
    tiled = inference.super_resolve(predict, lr, 2, tile=12, overlap=10, batch=3, progress=False)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    rough = inference.super_resolve(predict, lr, 2, tile=12, overlap=2, batch=3, progress=False)
    assert np.abs(rough - whole).max() > 1e-4  # too little context shows


@pytest.mark.parametrize("name", ["lkca", "vdsr", "bicubic"])
def test_tiled_evaluation_equals_whole_images(rng, name):
    """predict_tiled (LKCA-Net: global backbone whole, upsampler tiled) against the whole forward,
    and evaluate() with eval.tile against evaluate() without."""
    c = load_config(str(ROOT / f"configs/sample.py:{ {'lkca': 'net'}.get(name, name)}"))
    c.model.update(features=16, depth=2, se_reduction=4, up_init_scale=1.0, vdsr_features=8, vdsr_depth=3)
    model = build_model(c)
    lr = rng.uniform(0, 1, (2, 30, 26, 102)).astype(np.float32)
    variables = model.init(jax.random.key(2), jnp.asarray(lr[:1]))
    whole = np.asarray(inference.predictor(model)(variables, lr))
    for i in range(2):
        tiled = inference.predict_tiled(model, variables, lr[i], 4, tile=8)
        np.testing.assert_allclose(tiled, whole[i], atol=1e-5)
    from lkca_jax.data.datasets import Split
    from lkca_jax.evaluation import evaluate

    hr = np.clip(whole + rng.normal(0, 0.01, whole.shape).astype(np.float32), 0, 1)
    split = Split(hr=list(hr), lr=list(lr), ids=["a", "b"], norm={"a": 1.0, "b": 1.0})
    rows = []
    for tile in (0, 8):
        c.eval.tile = tile
        rows.append(evaluate(c, variables, split, echo=lambda *a: None))
    for k in metrics.NAMES:
        assert rows[1][k] == pytest.approx(rows[0][k], rel=1e-5)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny VDSR run on the sample: config.json and a checkpoint, as train.py writes them."""
    workdir = tmp_path_factory.mktemp("run")
    c = load_config(str(ROOT / "configs/sample.py:vdsr"))
    c.model.vdsr_features, c.model.vdsr_depth = 8, 3
    c.data.normalisation, c.data.norm_value = "constant", 2.0
    model = build_model(c)
    variables = model.init(jax.random.key(1), jnp.zeros((1, 8, 8, 102)))
    checkpoint.save_run(workdir, c, jax.tree.map(np.asarray, variables))
    return workdir, model, variables


@pytest.mark.parametrize("suffix,v73", [(".mat", False), (".mat", True), (".npy", None), (".tif", None),
                                       (".hdr", None)])
def test_sr_command_round_trips_formats(trained_run, tmp_path, suffix, v73, capsys):
    workdir, model, variables = trained_run
    cube = read(shared_data("remote", "pavia_rosis_100.mat"))[:40, :36]
    wl = np.linspace(430, 860, 102)
    src = tmp_path / f"in{suffix}"
    write_cube(src, cube, wavelengths=wl, mat_v73=v73)
    dst = tmp_path / f"out{suffix}"
    assert cli(["sr", "--workdir", str(workdir), "--input", str(src), "--output", str(dst), "--tile", "16",
                "--overlap", "10"]) == 0  # VDSR with 3 + 2 convs: receptive radius 5 <= overlap / 2
    got = read_cube(dst)
    want = np.asarray(model.apply(variables, jnp.asarray(cube[None] / 2.0))[0][0]) * 2.0
    assert got.data.shape == (160, 144, 102)
    np.testing.assert_allclose(got.data, want, atol=1e-4)
    if suffix in (".mat", ".hdr"):  # formats with a place for band wavelengths
        np.testing.assert_allclose(got.wavelengths, wl, rtol=1e-6)


def test_sr_refuses_bad_inputs(trained_run, tmp_path, capsys):
    workdir, _, _ = trained_run
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((20, 20, 7), np.float32))
    out = tmp_path / "out.npy"
    assert cli(["sr", "--workdir", str(workdir), "--input", str(wrong), "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "wrong.npy" in err and "7 bands" in err and "\n" not in err
    assert not out.exists()
    assert cli(["sr", "--workdir", str(workdir), "--input", str(tmp_path / "none.mat"), "--output", str(out)]) == 2
    assert "none.mat" in capsys.readouterr().err and not out.exists()
