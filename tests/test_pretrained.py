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
from lkca_jax.data.io import read
from lkca_jax.ops.imresize import imresize_np
from lkca_jax.pretrained import HERE, _flatten, available

NAMES = [f"cave-x{r}-lkca-{v}" for r in (4, 8) for v in ("net", "lr", "kd")]
PROMISE = {4: 1.0, 8: 0.5}  # dB MPSNR over Bicubic, mean over the test scenes: what the README says they gain


def scale_of(name: str) -> int:
    return int(name.split("-")[1][1:])  # cave-x<r>-...


def _sr(tmp_path, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "lkca_jax", "sr", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)


def test_the_six_models_are_shipped_small():
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
    """Every test scene's MPSNR and SAM within 0.01 (dB, degrees) of the shipped table, and the mean gain
    over Bicubic (a NumPy bicubic and NumPy metrics, not the project's) that the README promises."""
    from lkca_jax.data.datasets import load_splits
    from lkca_jax.data.spec import DataSpec

    model, variables, config = load_pretrained(name)
    r = scale_of(name)
    assert config.model.scale == r
    config.data.path = str(shared_data("cave"))
    split = load_splits(DataSpec.of(config), ("test",))["test"]
    per_image, _, _ = inference.predict_split(model, variables, split, 1, r)
    shipped = json.loads((HERE / name / "test.json").read_text())["per_image"]
    assert sorted(shipped) == sorted(split.ids)
    gains = []
    for i, scene in enumerate(split.ids):
        assert per_image["MPSNR"][i] == pytest.approx(shipped[scene]["MPSNR"], abs=0.01), scene
        assert per_image["SAM"][i] == pytest.approx(shipped[scene]["SAM"], abs=0.01), scene
        bicubic = numpy_metrics(split.hr[i].astype(np.float64), imresize_np(split.lr[i], r), r)["MPSNR"]
        gains.append(per_image["MPSNR"][i] - bicubic)
    assert np.mean(gains) >= PROMISE[r], gains


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
    # the held-out protocol of centre crops (data.test_crop): the model on the crop's own LR, scored in NumPy
    out = _evaluate(tmp_path, "--pretrained", name, "--config", str(ROOT / "configs" / "cave.py") + ":x4,net",
                    "--config.data.path", str(cave), "--config.data.test_scenes", '["thread_spools"]',
                    "--config.data.test_crop", "256", "--per_image")
    assert out.returncode == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if line.startswith("| thread_spools/128_128_256x256 |"))
    hr = read(cave / "thread_spools_ms").astype(np.float64)[128:384, 128:384] / 65535
    lr = imresize_np(hr.astype(np.float32), 1 / 4)
    model, variables, _ = load_pretrained(name)
    sr = np.asarray(model.apply(variables, lr[None], train=False)[0])[0].astype(np.float64)
    assert abs(float(row.split("|")[3]) - numpy_metrics(hr, sr, 4)["MPSNR"]) < 1e-3
    assert list(tmp_path.iterdir()) == []
    for wrong, says in ((["--save_images"], "needs --out DIR"), (["--which", "last"], "need --workdir"),
                        (["--config", str(ROOT / "configs" / "cave.py") + ":x4,bicubic"], "not :bicubic")):
        out = _evaluate(tmp_path, "--pretrained", name, *wrong)
        assert out.returncode == 2 and says in out.stderr and list(tmp_path.iterdir()) == []


def _band_pngs(folder, bands: np.ndarray):
    """One PNG per band as CAVE stores them: 16-bit grey, or (uint8 data) 8-bit RGBA with R = G = B."""
    from PIL import Image

    folder.mkdir(parents=True)
    for i in range(bands.shape[-1]):
        b = bands[..., i]
        image = Image.fromarray(np.stack([b, b, b, np.full_like(b, 255)], -1), "RGBA") if b.dtype == np.uint8 \
            else Image.fromarray(b)
        image.save(folder / f"{folder.name}_{i + 1:02d}.png")


def test_evaluate_scores_a_folder_of_own_scenes_and_writes_where_asked(tmp_path):
    """configs/cave.py:...,own scores every scene of a folder (any names, the official double nesting or
    not); an 8-bit scene (CAVE's watercolors in some copies) is scored on the same 0..1 scale as a
    16-bit one (checked against NumPy on values / 255); --out takes the table and pictures; a scene the
    model trained on is flagged; a config of another scale or method is refused."""
    rng = np.random.default_rng(0)
    smooth = lambda: (lambda s: s / s.max())(np.cumsum(np.cumsum(rng.random((32, 32, 31)), 0), 1))
    deep = smooth() * 0.9
    shallow = np.round(smooth() * 255).astype(np.uint8)
    _band_pngs(tmp_path / "own" / "balloons_ms" / "balloons_ms", np.round(deep * 65535).astype(np.uint16))
    _band_pngs(tmp_path / "own" / "paper_ms", shallow)
    name, cfg = NAMES[0], str(ROOT / "configs" / "cave.py") + ":x4,net,own"
    out = _evaluate(tmp_path, "--pretrained", name, "--config", cfg, "--config.data.path", "own", "--per_image",
                    "--out", "scored", "--save_images")
    assert out.returncode == 0, out.stderr
    record = json.loads((tmp_path / "scored" / "test.json").read_text())
    assert sorted(record["per_image"]) == ["balloons/0_0_32x32", "paper/0_0_32x32"]
    assert sorted(p.name for p in (tmp_path / "scored" / "images").iterdir() if p.suffix == ".png")
    assert "balloons: scene(s) the model trained" in out.stderr and "paper" not in out.stderr
    hr = shallow.astype(np.float64) / 255
    model, variables, _ = load_pretrained(name)
    lr = imresize_np(hr.astype(np.float32), 1 / 4)
    sr = np.asarray(model.apply(variables, lr[None], train=False)[0])[0].astype(np.float64)
    assert record["per_image"]["paper/0_0_32x32"]["MPSNR"] == pytest.approx(numpy_metrics(hr, sr, 4)["MPSNR"],
                                                                            abs=1e-3)
    for arg, says in ((":x8,net,own", "--config is x8,net but cave-x4-lkca-net is an x4,net model"),
                      (":x4,kd,own", "--config is x4,kd but")):
        out = _evaluate(tmp_path, "--pretrained", name, "--config", str(ROOT / "configs" / "cave.py") + arg,
                        "--config.data.path", "own", "--out", "refused")
        assert out.returncode == 2 and says in out.stderr and not (tmp_path / "refused").exists()


def _shipped_arrays(name: str) -> dict:
    with np.load(HERE / name / "variables.npz") as npz:
        return {k: npz[k] for k in npz.files}


def test_a_run_can_start_from_a_shipped_model_by_its_name():
    """train.init_from names a shipped model (no run folder of that name): every array of its
    variables.npz comes over, the EMA starting from them; a name that is neither says so."""
    from lkca_jax import training
    from lkca_jax.models import build_model

    _, _, config = load_pretrained("cave-x4-lkca-lr")
    config.train.update(init_from="cave-x4-lkca-lr", ema_decay=0.9)
    schedule = training.optax.constant_schedule(1e-4)
    state = training.init_from_run(training.create_state(config, build_model(config), schedule), config.train)
    shipped = _shipped_arrays("cave-x4-lkca-lr")
    got = _flatten({"params": state.params, "batch_stats": state.batch_stats})
    assert set(got) == set(shipped)
    for key, value in shipped.items():
        np.testing.assert_array_equal(got[key], value)
    np.testing.assert_array_equal(state.ema["params"]["up"]["conv"]["kernel"], shipped["params/up/conv/kernel"])
    config.train.init_from = "cave-x4-lkca-nope"
    with pytest.raises(ValueError, match="cave-x4-lkca-nope: neither a run folder nor a shipped model"):
        training.init_from_run(training.create_state(config, build_model(config), schedule), config.train)


def test_a_kd_student_can_learn_from_a_shipped_teacher():
    """teacher.workdir names a shipped LKCA-Net: the distiller's teacher is that model, its variables
    the shipped arrays; one of another scale is refused, naming the field."""
    from lkca_jax.distillation import Distiller

    _, _, config = load_pretrained("cave-x4-lkca-kd")
    config.teacher.workdir = "cave-x4-lkca-net"
    kd, variables = Distiller.from_config(config)
    shipped = _shipped_arrays("cave-x4-lkca-net")
    got = _flatten({k: v for k, v in variables.items() if v})
    assert set(got) == set(shipped)
    for key, value in shipped.items():
        np.testing.assert_array_equal(got[key], value)
    assert kd.teacher_model.features == 96 and kd.teacher_model.depth == 4
    config.teacher.workdir = "cave-x8-lkca-net"
    with pytest.raises(ValueError, match="teacher cave-x8-lkca-net has scale=8"):
        Distiller.from_config(config)


def test_a_run_folder_of_a_shipped_models_name_wins_and_a_bare_folder_does_not(tmp_path, monkeypatch):
    """is_shipped looks from the current directory: a folder with a config.json is a run, one without
    (say a workdir just made) is not, and the shipped model of that name is meant."""
    from lkca_jax.pretrained import is_shipped

    monkeypatch.chdir(tmp_path)
    assert is_shipped("cave-x4-lkca-net")
    (tmp_path / "cave-x4-lkca-net").mkdir()
    assert is_shipped("cave-x4-lkca-net")
    (tmp_path / "cave-x4-lkca-net" / "config.json").write_text("{}")
    assert not is_shipped("cave-x4-lkca-net")
    (tmp_path / "runs").mkdir()
    with pytest.raises(ValueError, match="^teacher.workdir runs: neither a run folder nor a shipped model"):
        is_shipped("runs", "teacher.workdir")
