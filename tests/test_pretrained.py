"""The models shipped in lkca_jax/pretrained: they load and run without ../shared, sr refuses what
they cannot take, and on CAVE they reproduce the test table they were shipped with."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from test_evaluation import numpy_metrics

from conftest import ROOT, shared_data
from lkca_jax import inference, load_pretrained
from lkca_jax.ops.imresize import imresize_np
from lkca_jax.pretrained import HERE, available

NAMES = ["cave-x4-lkca-net", "cave-x4-lkca-lr", "cave-x4-lkca-kd"]


def scale_of(name: str) -> int:
    return int(name.split("-")[1][1:])  # cave-x<r>-...


def _sr(tmp_path, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "lkca_jax", "sr", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)


def test_the_three_models_are_shipped_small():
    assert set(NAMES) <= set(available())
    for name in NAMES:
        assert (HERE / name / "variables.npz").stat().st_size < 5e6
        assert "Yasuma" in (HERE / name / "README.md").read_text()


@pytest.mark.parametrize("name", NAMES)
def test_sr_pretrained_runs_in_a_folder_without_shared(name, tmp_path):
    # a smooth 31-band cube in 0..1: the trained residual is small on it, but not zero (a model whose
    # upsampler is still at its zero initialisation gives the bicubic image exactly)
    y, x, b = np.meshgrid(np.linspace(0, 1, 20), np.linspace(0, 1, 24), np.linspace(0, 1, 31), indexing="ij")
    cube = (0.2 + 0.3 * np.sin(2 * y + x) * (0.5 + b)).astype(np.float32)
    np.save(tmp_path / "in.npy", cube)
    out = _sr(tmp_path, "--pretrained", name, "--input", "in.npy", "--output", "out.npy", "--norm", "1")
    assert out.returncode == 0, out.stderr
    sr = np.load(tmp_path / "out.npy")
    r = scale_of(name)
    assert sr.shape == (20 * r, 24 * r, 31) and np.isfinite(sr).all()
    model, variables, _ = load_pretrained(name)  # the same model in this process, without the CLI's file path
    np.testing.assert_allclose(sr, np.asarray(model.apply(variables, cube[None], train=False)[0])[0], atol=1e-5)
    assert 1e-4 < np.abs(sr - imresize_np(cube, r)).mean() < 0.01


def test_sr_pretrained_refuses_a_band_count_it_cannot_take(tmp_path):
    np.save(tmp_path / "pavia.npy", np.random.default_rng(0).uniform(0, 1, (16, 16, 102)).astype(np.float32))
    out = _sr(tmp_path, "--pretrained", NAMES[0], "--input", "pavia.npy", "--output", "out.npy")
    assert out.returncode == 2 and not (tmp_path / "out.npy").exists()
    err = out.stderr.strip()
    assert "\n" not in err and "pavia.npy" in err and "102 bands" in err and "expects 31" in err
    out = _sr(tmp_path, "--pretrained", "nope", "--input", "pavia.npy", "--output", "out.npy")
    assert out.returncode == 2 and "no pretrained model 'nope'" in out.stderr


@pytest.mark.parametrize("name", NAMES)
def test_a_shipped_model_reproduces_its_test_table_on_cave(name):
    from lkca_jax.data.datasets import load_splits
    from lkca_jax.data.spec import DataSpec

    model, variables, config = load_pretrained(name)
    config.data.path = str(shared_data("cave"))
    config.data.test_scenes = config.data.test_scenes[:1]  # one scene keeps the test short
    split = load_splits(DataSpec.of(config), ("test",))["test"]
    per_image, _, _ = inference.predict_split(model, variables, split, 1, config.model.scale)
    shipped = json.loads((HERE / name / "test.json").read_text())
    assert per_image["MPSNR"][0] == pytest.approx(shipped["per_image"][split.ids[0]]["MPSNR"], abs=1e-3)
    r = scale_of(name)
    assert config.model.scale == r
    bicubic = numpy_metrics(split.hr[0].astype(np.float64), imresize_np(split.lr[0], r), r)["MPSNR"]
    assert per_image["MPSNR"][0] >= bicubic + 0.3  # the shipped models' promise, on this scene


def _evaluate(tmp_path, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "evaluate.py"), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)


def test_evaluate_scores_a_shipped_model_on_other_data_and_writes_nothing(tmp_path):
    """evaluate --pretrained on a config's data (here one CAVE test scene, as a user would point it at
    scenes of their own): the shipped model's row for that scene, Bicubic's beside it, no file written."""
    cave = shared_data("cave")
    name = NAMES[0]
    listing = lambda: sorted(p.relative_to(HERE) for p in HERE.rglob("*") if "__pycache__" not in p.parts)
    shipped_files = listing()
    out = _evaluate(tmp_path, "--pretrained", name, "--config", str(ROOT / "configs" / "cave.py") + ":x4,net",
                    "--config.data.path", str(cave), "--config.data.test_scenes", '["thread_spools"]', "--per_image")
    assert out.returncode == 0, out.stderr
    shipped = json.loads((HERE / name / "test.json").read_text())["per_image"]["thread_spools/0_0_512x512"]
    row = next(line for line in out.stdout.splitlines() if line.startswith("| thread_spools/0_0_512x512 |"))
    assert abs(float(row.split("|")[3]) - shipped["MPSNR"]) < 1e-3
    assert list(tmp_path.iterdir()) == [] and listing() == shipped_files
    for wrong, says in ((["--save_images"], "need --workdir"), (["--which", "last"], "need --workdir"),
                        (["--config", str(ROOT / "configs" / "cave.py") + ":x4,bicubic"], "not :bicubic")):
        out = _evaluate(tmp_path, "--pretrained", name, *wrong)
        assert out.returncode == 2 and says in out.stderr and list(tmp_path.iterdir()) == []
