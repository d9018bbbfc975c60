"""The comparison figures (python -m lkca_jax compare) on tiny trained runs of the sample."""

import json
import shutil

import numpy as np
import pytest
from test_evaluation import numpy_metrics
from test_training import tiny

from conftest import ROOT
from lkca_jax import training
from lkca_jax.__main__ import main as cli
from lkca_jax.config import load_config
from lkca_jax.data.datasets import load_splits
from lkca_jax.data.spec import DataSpec
from lkca_jax.figures import compare_runs, default_box, worst_pixels
from lkca_jax.ops.imresize import imresize_np


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for name, spec in (("net", "sample.py:x4,net"), ("vdsr", "sample.py:x4,vdsr")):
        training.train_and_evaluate(tiny(spec, steps=4), root / name, echo=lambda *a: None)
    return root


def test_compare_draws_every_run_with_the_tables_numbers(runs, tmp_path):
    test = load_splits(DataSpec.of(load_config(str(ROOT / "configs/sample.py"))), ("test",))["test"]
    image = test.ids[1]
    result = compare_runs([runs / "net", runs / "vdsr"], tmp_path, image, which="last")
    for f in result["files"]:
        assert f.endswith(".png") and (tmp_path / f.split("/")[-1]).stat().st_size > 10_000
    assert len(result["columns"]) == 2 + 2  # ground truth, Bicubic, one per run
    assert result["columns"][0] == "Ground truth" and result["columns"][1].startswith("Bicubic\n")
    hand = numpy_metrics(test.hr[1].astype(np.float64), imresize_np(test.lr[1], 4), 4)
    bicubic = result["panels"][0]
    assert bicubic["psnr"] == pytest.approx(hand["MPSNR"], abs=1e-3)
    assert bicubic["sam"] == pytest.approx(hand["SAM"], abs=1e-3)
    for run, panel, title in zip(("net", "vdsr"), result["panels"][1:], result["columns"][2:]):
        table = json.loads((runs / run / "eval" / "test.json").read_text())["per_image"][image]
        assert panel["psnr"] == pytest.approx(table["MPSNR"], abs=1e-4)
        assert panel["sam"] == pytest.approx(table["SAM"], abs=1e-4)
        assert f"{table['MPSNR']:.2f} dB" in title and f"SAM {table['SAM']:.2f}" in title and f"({run})" in title


def test_compare_names_a_self_ensemble_run_as_its_table_does(runs, tmp_path):
    """A run whose config asks for the self-ensemble is drawn and scored as "<method>+", the row name
    of its eval/test+.json, with the ensemble's numbers (the mean of 8 passes, not the plain pass)."""
    ensemble = tmp_path / "net"
    shutil.copytree(runs / "net", ensemble)
    config = json.loads((ensemble / "config.json").read_text())
    config["eval"]["self_ensemble"] = True
    (ensemble / "config.json").write_text(json.dumps(config))
    image = load_splits(DataSpec.of(load_config(str(ROOT / "configs/sample.py"))), ("test",))["test"].ids[0]
    plain = json.loads((runs / "net" / "eval" / "test.json").read_text())["per_image"][image]
    result = compare_runs([ensemble], tmp_path / "f", image, which="last")
    assert result["columns"][2].startswith("LKCA-Net+ (net)")
    assert abs(result["panels"][1]["psnr"] - plain["MPSNR"]) > 1e-4


def test_the_default_box_lands_on_texture_not_on_a_step_edge_and_the_worst_pixels():
    gt = np.zeros((40, 50, 4))
    gt[:, 25:] = 1.0  # a straight step edge of height 1 (a colour chart's): the strongest gradients
    gt[21:29, 5:13] += np.random.default_rng(0).uniform(0, 0.2, (8, 8, 1))  # weak texture, 8 x 8
    y, x = default_box(gt, 8)
    assert abs(y - 21) <= 1 and abs(x - 5) <= 1 and x + 8 <= 24  # on the texture, clear of the edge
    gt = np.zeros((40, 50, 4))
    bic = gt.copy()
    bic[5, 6] = 3.0
    bic[5, 7] = 2.0  # next to the worst: skipped for the spread
    bic[30, 40] = 1.0
    assert worst_pixels(gt, bic, 2) == [(5, 6), (30, 40)]


def test_compare_cli_refuses_mixed_scales_and_unknown_images(runs, tmp_path, capsys):
    other = tmp_path / "x2"
    shutil.copytree(runs / "vdsr", other)
    config = json.loads((other / "config.json").read_text())
    config["model"]["scale"] = 2
    (other / "config.json").write_text(json.dumps(config))
    assert cli(["compare", "--workdir", str(runs / "net"), str(other), "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "differ in dataset or scale" in err and "x2" in err
    assert cli(["compare", "--workdir", str(runs / "net"), "--out", str(tmp_path / "f"), "--image", "nope"]) == 2
    assert "'nope' is not in the test split" in capsys.readouterr().err
    assert cli(["compare", "--workdir", str(runs / "net"), "--out", str(tmp_path / "f"), "--box", "40,40,20"]) == 2
    assert "does not fit" in capsys.readouterr().err
    assert not (tmp_path / "f").exists() or not any((tmp_path / "f").iterdir())


def test_compare_cli_takes_a_box_and_pixels(runs, tmp_path, capsys):
    assert cli(["compare", "--workdir", str(runs / "net"), "--out", str(tmp_path), "--box", "4,6,10",
                "--pixel", "3,4", "--pixel", "20,30", "--which", "last"]) == 0
    out = capsys.readouterr().out
    assert "box (y, x, size) (4, 6, 10); pixels [(3, 4), (20, 30)]" in out
    assert len(list(tmp_path.glob("*.png"))) == 2
