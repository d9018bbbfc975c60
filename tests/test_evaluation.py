"""evaluate.py on the embedded sample, tiled inference, and the sr command on every format."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import ROOT, shared_data, tiny_config
from lkca_jax import inference, metrics
from lkca_jax.__main__ import main as cli
from lkca_jax.config import load_config
from lkca_jax.data.datasets import load_splits
from lkca_jax.data.io import read, read_cube, write_cube
from lkca_jax.data.spec import DataSpec
from lkca_jax.models import VDSR, build_model
from lkca_jax.ops.imresize import imresize_np


def numpy_metrics(gt, pred, scale):
    """MPSNR, SAM, CC, RMSE and ERGAS of one image, written out in NumPy from their definitions."""
    mse = ((gt - pred) ** 2).mean(axis=(0, 1))
    dot, norms = (gt * pred).sum(-1), np.linalg.norm(gt, axis=-1) * np.linalg.norm(pred, axis=-1)
    keep = norms > 0
    cc = [np.corrcoef(gt[..., b].ravel(), pred[..., b].ravel())[0, 1] for b in range(gt.shape[-1])]
    return {"MPSNR": np.mean(10 * np.log10(1 / mse)),
            "SAM": np.degrees(np.arccos(np.clip(dot[keep] / norms[keep], -1, 1))).mean(),
            "CC": np.mean(cc), "RMSE": np.sqrt(((gt - pred) ** 2).mean()),
            "ERGAS": 100 / scale * np.sqrt(np.mean(mse / gt.mean(axis=(0, 1)) ** 2))}


def test_evaluate_bicubic_on_the_sample_equals_metrics_by_hand(tmp_path):
    out = subprocess.run([sys.executable, "evaluate.py", "--config", "configs/sample.py:bicubic",
                          "--config.eval.per_image=False", "--workdir", str(tmp_path), "--save_images", "--per_image"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "| Method | Param | Flops | MPSNR | MSSIM | SAM | CC | RMSE | ERGAS | s/img |" in out.stdout
    assert "| Bicubic |" in out.stdout
    record = json.loads((tmp_path / "eval" / "test.json").read_text())
    test = load_splits(DataSpec.of(load_config(str(ROOT / "configs/sample.py:bicubic"))), ("test",))["test"]
    by_hand = [numpy_metrics(hr.astype(np.float64), imresize_np(lr, 4), 4) for hr, lr in zip(test.hr, test.lr)]
    for k in by_hand[0]:  # per image, then the mean over images (MSSIM: tests/test_metrics.py, skimage)
        assert record["mean"][k] == pytest.approx(np.mean([m[k] for m in by_hand]), rel=1e-4), k
    # --per_image (over the config's False): each image's MPSNR, SAM and ERGAS under the table
    header, _, *rows = [line.strip("|").split("|") for line in out.stdout.split("Per image:")[1].strip().splitlines()]
    assert [c.strip() for c in header] == ["Image", "Bicubic MPSNR", "Bicubic SAM", "Bicubic ERGAS"]
    assert [r[0].strip() for r in rows] == list(test.ids)
    for r, m in zip(rows, by_hand, strict=True):
        assert [float(c) for c in r[1:]] == pytest.approx([m["MPSNR"], m["SAM"], m["ERGAS"]], abs=2e-4)
    pictures = sorted(p.name for p in (tmp_path / "eval" / "images").iterdir())
    assert len(pictures) == 2 * len(test) and all(p.endswith(".png") for p in pictures)


def test_tiled_equals_untiled_when_overlap_covers_the_receptive_field(rng):
    # VDSR with 3 + 2 convs: receptive radius 5 LR pixels (the bicubic branch's 2 run beside them).
    model = VDSR(bands=5, scale=2, features=8, depth=3, bicubic_residual=True)
    lr = rng.uniform(0, 1, (37, 45, 5)).astype(np.float32)
    variables = model.init(jax.random.key(0), jnp.asarray(lr[None]))
    predict = jax.jit(lambda x: model.apply(variables, x)[0])
    whole = np.asarray(predict(lr[None]))[0]
    tiled = inference.super_resolve(predict, lr, 2, tile=12, overlap=10, batch=3, progress=False)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    rough = inference.super_resolve(predict, lr, 2, tile=12, overlap=2, batch=3, progress=False)
    assert np.abs(rough - whole).max() > 1e-4  # too little context shows


@pytest.mark.parametrize("name", ["lkca", "vdsr", "fcnn3d", "bicubic"])
def test_tiled_evaluation_equals_whole_images(rng, name):
    """predict_tiled (LKCA-Net: global backbone whole, upsampler tiled) against the whole forward,
    and evaluate() with eval.tile against evaluate() without."""
    c = tiny_config(f"sample.py:{ {'lkca': 'net'}.get(name, name)}", depth=2, vdsr=dict(depth=3))
    model = build_model(c)
    lr = rng.uniform(0, 1, (2, 30, 26, 102)).astype(np.float32)
    variables = model.init(jax.random.key(2), jnp.asarray(lr[:1]))
    whole = np.asarray(inference.predictor(model)(variables, lr))
    for i in range(2):
        tiled = inference.predict_tiled(model, variables, lr[i], 4, tile=8)
        np.testing.assert_allclose(tiled, whole[i], atol=1e-5)
    from lkca_jax.data.scenes import Split
    from lkca_jax.evaluation import evaluate

    hr = np.clip(whole + rng.normal(0, 0.01, whole.shape).astype(np.float32), 0, 1)
    split = Split(hr=list(hr), lr=list(lr), ids=["a", "b"], norm={"a": 1.0, "b": 1.0})
    rows = []
    for tile in (0, 8):
        c.eval.tile = tile
        rows.append(evaluate(c, variables, split, echo=lambda *a: None))
    for k in metrics.NAMES:
        assert rows[1][k] == pytest.approx(rows[0][k], rel=1e-5)


# The square's 8 symmetries of an (..., h, w, C) array and their inverses, by slicing and transposing
TURNS = [(lambda a: a, lambda a: a),
         (lambda a: a[..., ::-1, :], lambda a: a[..., ::-1, :]),
         (lambda a: a[..., ::-1, :, :], lambda a: a[..., ::-1, :, :]),
         (lambda a: a[..., ::-1, ::-1, :], lambda a: a[..., ::-1, ::-1, :]),
         (lambda a: np.swapaxes(a, -3, -2), lambda a: np.swapaxes(a, -3, -2)),
         (lambda a: np.swapaxes(a, -3, -2)[..., ::-1, ::-1, :], lambda a: np.swapaxes(a[..., ::-1, ::-1, :], -3, -2)),
         (lambda a: np.swapaxes(a, -3, -2)[..., ::-1, :], lambda a: np.swapaxes(a[..., ::-1, :], -3, -2)),
         (lambda a: np.swapaxes(a, -3, -2)[..., ::-1, :, :], lambda a: np.swapaxes(a[..., ::-1, :, :], -3, -2))]


def by_hand_ensemble(f, x):
    return np.mean([undo(np.asarray(f(np.ascontiguousarray(do(x))))) for do, undo in TURNS], axis=0)


@pytest.mark.parametrize("wrap", [np.asarray, jnp.asarray])
def test_self_ensemble_of_a_ramp_is_its_mean_and_of_a_symmetric_map_itself(rng, wrap):
    """An upsampler that adds a ramp across the width of whatever it is given: over the 8 flips and
    turns the ramp runs left, right, down and up twice each, so the ensemble adds its mean, 0.5, everywhere
    (also on a non-square image). A map that turns with its input (nearest upsampling) is its own ensemble."""
    x = rng.uniform(0, 1, (2, 5, 7, 3)).astype(np.float32)
    up = lambda a: a.repeat(2, axis=-3).repeat(2, axis=-2)
    ramped = lambda a: up(a) + (jnp.linspace(0, 1, a.shape[-2] * 2) if isinstance(a, jax.Array)
                                else np.linspace(0, 1, a.shape[-2] * 2))[:, None]
    got = inference.dihedral_mean(ramped, wrap(x))
    assert type(got) is type(wrap(x))
    np.testing.assert_allclose(np.asarray(got), up(x) + 0.5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(inference.dihedral_mean(up, wrap(x[0]))), up(x[0]), atol=1e-6)
    assert np.abs(np.asarray(ramped(x)) - up(x) - 0.5).max() > 0.4  # one pass alone is far from it


@pytest.mark.parametrize("name", ["lkca", "vdsr"])
def test_self_ensemble_evaluation_and_tiles_match_the_eight_passes_by_hand(rng, name, tmp_path):
    """eval.self_ensemble: the model's mean over the 8 flips and turns of each image (turned and turned
    back here by slicing), whole or in tiles; the row is "<method>+" with 8 passes' Flops, written to
    eval/test+.json beside the plain test.json; Bicubic's row stays plain."""
    from lkca_jax.data.scenes import Split
    from lkca_jax.evaluation import evaluate, score

    c = tiny_config(f"sample.py:{ {'lkca': 'net'}.get(name, name)}", depth=2, vdsr=dict(depth=3))
    model = build_model(c)
    lr = rng.uniform(0, 1, (2, 14, 10, 102)).astype(np.float32)
    variables = model.init(jax.random.key(3), jnp.asarray(lr[:1]))
    plain = inference.predictor(model)
    want = by_hand_ensemble(lambda a: plain(variables, a), lr)
    np.testing.assert_allclose(np.asarray(inference.predictor(model, True)(variables, lr)), want, atol=2e-5)
    assert np.abs(np.asarray(plain(variables, lr)) - want).max() > 1e-3  # the ensemble is not the plain pass
    hr = np.clip(want + rng.normal(0, 0.01, want.shape).astype(np.float32), 0, 1)
    split = Split(hr=list(hr), lr=list(lr), ids=["a", "b"], norm={"a": 1.0, "b": 1.0})
    plain_row, _, _ = score(c, variables, split)
    c.eval.self_ensemble = True
    # 6 < the LR side: every image in tiles, each of its 8 passes tiled (the same wrapper for every
    # model; LKCA-Net's tiles compile several programs, so VDSR's stand for it here)
    for tile in (0, 6) if name == "vdsr" else (0,):
        c.eval.tile = tile
        row, _, images = score(c, variables, split)
        np.testing.assert_allclose(np.stack(images), want, atol=2e-5)
        assert row["Method"] == plain_row["Method"] + "+" and row["Flops"] == 8 * plain_row["Flops"]
    lines = []
    evaluate(c, variables, split, tmp_path / "eval", echo=lines.append)
    assert "| Bicubic |" in lines[0] and f"| {row['Method']} |" in lines[0]
    record = json.loads((tmp_path / "eval" / "test+.json").read_text())
    by_hand = [numpy_metrics(h.astype(np.float64), w.astype(np.float64), 4)["MPSNR"] for h, w in zip(hr, want)]
    assert record["self_ensemble"] and record["mean"]["MPSNR"] == pytest.approx(np.mean(by_hand), abs=1e-3)
    assert not (tmp_path / "eval" / "test.json").exists()  # the plain model's table is not overwritten


def test_sr_and_evaluate_take_self_ensemble(trained_run, tmp_path):
    """sr --self_ensemble, whole and in tiles (VDSR's receptive radius 5 <= overlap / 2: tiles are
    exact, so each tile's ensemble is the whole image's), and evaluate.py --self_ensemble."""
    workdir, model, variables = trained_run
    cube = read(shared_data("remote", "pavia_rosis_100.mat"))[:20, :16]
    src = tmp_path / "in.npy"
    np.save(src, cube)
    want = by_hand_ensemble(lambda a: model.apply(variables, jnp.asarray(a))[0], cube[None] / 2.0)[0] * 2.0
    for tiles in (["--tile", "0"], ["--tile", "10", "--overlap", "10", "--batch", "2"]):
        dst = tmp_path / f"out{tiles[1]}.npy"
        assert cli(["sr", "--workdir", str(workdir), "--input", str(src), "--output", str(dst), *tiles,
                    "--self_ensemble"]) == 0
        np.testing.assert_allclose(np.load(dst), want, atol=1e-4)
    out = subprocess.run([sys.executable, "evaluate.py", "--workdir", str(workdir), "--self_ensemble"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "| VDSR+ |" in out.stdout and "| Bicubic |" in out.stdout
    assert (workdir / "eval" / "test+.json").is_file()


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
    if suffix != ".npy":  # formats with a place for band wavelengths
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
    good = tmp_path / "good.npy"
    np.save(good, np.zeros((8, 8, 102), np.float32))
    assert cli(["sr", "--workdir", str(workdir), "--input", str(good), "--output", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert "o.png: cannot write .png" in err and "\n" not in err and not (tmp_path / "o.png").exists()


# ---------------------------------------------------------------- georeferenced scenes

PAVIA_UTM = "EPSG:32632"  # the sample is a ROSIS crop of Pavia (UTM zone 32 N), 1.3 m pixels


def _write_with_gdal(path, cube, driver, transform, nodata=None):
    """The input file, written by rasterio itself (not by the code under test)."""
    import rasterio

    h, w, c = cube.shape
    with rasterio.open(path, "w", driver=driver, width=w, height=h, count=c, dtype="float32", crs=PAVIA_UTM,
                       transform=transform, nodata=nodata) as dst:
        dst.write(cube.transpose(2, 0, 1))


@pytest.mark.parametrize("src_suffix,dst_suffix", [(".tif", ".tif"), (".img", ".hdr"), (".tif", ".hdr"),
                                                   (".img", ".tif")])
def test_sr_keeps_the_georeference(trained_run, tmp_path, src_suffix, dst_suffix):
    """A real cube as a projected GeoTIFF or an ENVI file with map info, super-resolved x4: GDAL
    opens the output with the same CRS and origin and a quarter of the pixel size."""
    import rasterio
    from rasterio.transform import from_origin

    workdir, model, variables = trained_run
    cube = read(ROOT / "lkca_jax/data/sample/pavia_rosis_100.npz")[:24, :20]
    transform = from_origin(513_027.5, 5_005_102.1, 1.3, 1.3)
    src = tmp_path / f"scene{src_suffix}"
    _write_with_gdal(src, cube, "GTiff" if src_suffix == ".tif" else "ENVI", transform)
    dst = tmp_path / f"sr{dst_suffix}"
    assert cli(["sr", "--workdir", str(workdir), "--input", str(src), "--output", str(dst), "--tile", "0"]) == 0
    with rasterio.open(dst.with_suffix(".img") if dst_suffix == ".hdr" else dst) as out:
        assert out.crs == rasterio.crs.CRS.from_string(PAVIA_UTM)
        assert (out.transform.c, out.transform.f) == (transform.c, transform.f)
        assert out.transform.a == pytest.approx(1.3 / 4) and out.transform.e == pytest.approx(-1.3 / 4)
        assert (out.height, out.width, out.count) == (96, 80, 102)
        got = out.read().transpose(1, 2, 0)
    want = np.asarray(model.apply(variables, jnp.asarray(cube[None] / 2.0))[0][0]) * 2.0
    np.testing.assert_allclose(got, want, atol=1e-4)
    if dst_suffix == ".hdr":
        header = dst.read_text()
        assert "map info = {UTM, 1, 1, 513027.5, 5005102.1, 0.325, 0.325, 32, North" in header
        assert "sr.img, written by lkca-jax" in header and ".sr." not in header  # no temporary name


def test_sr_keeps_nodata_pixels_as_nodata(trained_run, tmp_path):
    """Nodata pixels are filled with each band's valid mean before the model (checked against that
    fill done here in NumPy) and come out as nodata over the 4 x 4 HR pixels each one covers."""
    import rasterio
    from rasterio.transform import from_origin

    workdir, model, variables = trained_run
    cube = read(ROOT / "lkca_jax/data/sample/pavia_rosis_100.npz")[40:64, 40:60].copy()
    hole = np.zeros(cube.shape[:2], bool)
    hole[5:9, 3:12] = True
    hole[0, 0] = True
    filled = cube.copy()
    filled[hole] = cube[~hole].mean(axis=0)
    cube[hole] = -9999.0
    src, dst = tmp_path / "holes.tif", tmp_path / "holes_sr.tif"
    _write_with_gdal(src, cube, "GTiff", from_origin(0, 0, 2, 2), nodata=-9999.0)
    assert cli(["sr", "--workdir", str(workdir), "--input", str(src), "--output", str(dst), "--tile", "0"]) == 0
    with rasterio.open(dst) as out:
        assert out.nodata == -9999.0
        got = out.read().transpose(1, 2, 0)
    hr_hole = np.repeat(np.repeat(hole, 4, 0), 4, 1)
    assert (got[hr_hole] == -9999.0).all() and not (got[~hr_hole] == -9999.0).any()
    want = np.asarray(model.apply(variables, jnp.asarray(filled[None] / 2.0))[0][0]) * 2.0
    np.testing.assert_allclose(got[~hr_hole], want[~hr_hole], atol=1e-4)
    _write_with_gdal(src, np.full_like(cube, -9999.0), "GTiff", from_origin(0, 0, 2, 2), nodata=-9999.0)
    before = dst.read_bytes()
    assert cli(["sr", "--workdir", str(workdir), "--input", str(src), "--output", str(dst)]) == 2
    assert dst.read_bytes() == before and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_sr_warns_of_raw_counts_and_drops_georeference_only_with_a_note(trained_run, tmp_path, capsys):
    from rasterio.transform import from_origin

    workdir, _, _ = trained_run  # trained on data / 2
    counts = read(ROOT / "lkca_jax/data/sample/pavia_rosis_100.npz")[:16, :16] * 14000
    src = tmp_path / "counts.tif"
    _write_with_gdal(src, counts, "GTiff", from_origin(0, 0, 30, 30))
    out = tmp_path / "counts_sr.mat"
    assert cli(["sr", "--workdir", str(workdir), "--input", str(src), "--output", str(out)]) == 0
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "counts.tif" in warning[0] and "--norm" in warning[0]
    assert any(line.startswith("note:") and "georeference" in line for line in err.splitlines())
    assert out.exists()
    assert cli(["sr", "--workdir", str(workdir), "--input", str(src), "--output", str(tmp_path / "n.tif"),
                "--norm", "14000"]) == 0
    assert "warning:" not in capsys.readouterr().err


def test_load_run_is_public_and_runs_the_trained_model(trained_run, rng):
    import lkca_jax

    workdir, model, variables = trained_run
    loaded, loaded_variables, config = lkca_jax.load_run(workdir)
    assert config.model.name == "vdsr" and config.data.norm_value == 2.0
    lr = rng.random((2, 8, 8, 102), dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(loaded.apply(loaded_variables, lr, train=False)[0]),
                                  np.asarray(model.apply(variables, lr, train=False)[0]))


def test_sr_and_evaluate_print_no_orbax_or_absl_warnings(trained_run, tmp_path):
    workdir, _, _ = trained_run
    src = tmp_path / "in.npy"
    np.save(src, read(ROOT / "lkca_jax/data/sample/pavia_rosis_100.npz")[:16, :16])
    for args in (["-m", "lkca_jax", "sr", "--workdir", str(workdir), "--input", str(src), "--output",
                  str(tmp_path / "out.npy")], ["evaluate.py", "--workdir", str(workdir)]):
        out = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr
        for noise in ("read only", "read_only", "max_to_keep", "WARNING", "absl"):
            assert noise not in out.stderr and noise not in out.stdout, (args[0], noise, out.stderr[-500:])


def test_a_short_split_is_not_padded_to_a_whole_batch(rng, monkeypatch):
    """Validation on one scene with validation_batch_size 32 must run one image, not 32 copies."""
    from lkca_jax.data.scenes import Split

    seen = []
    real = inference.predictor

    def recording(model, *args):
        predict = real(model, *args)
        return lambda variables, lr: seen.append(lr.shape) or predict(variables, lr)

    monkeypatch.setattr(inference, "predictor", recording)
    hr = rng.uniform(0, 1, (16, 16, 3)).astype(np.float32)
    split = Split([hr], [imresize_np(hr, 0.25).astype(np.float32)], ["one"], {"one": 1.0})
    c = tiny_config("sample.py:bicubic")
    c.model.bands = 3
    per_image, _, _ = inference.predict_split(build_model(c), {}, split, 32, 4)
    assert {s[0] for s in seen} == {1} and per_image["MPSNR"].shape == (1,)


def test_per_image_table_columns_gain_and_legacy_label():
    from lkca_jax.evaluation import per_image_table

    bicubic = {"MPSNR": [30.0, 40.0], "SAM": [3.0, 2.0], "ERGAS": [5.0, 4.0]}
    model = {"MPSNR": [31.5, 39.25], "SAM": [2.5, 2.25], "ERGAS": [4.5, 4.25]}
    header, _, *rows = per_image_table(["a", "b"], [("Bicubic", bicubic), ("LKCA-Net", model)], True).splitlines()
    assert header == ("| Image | Bicubic MPSNR | LKCA-Net MPSNR | Bicubic SAM | LKCA-Net SAM | "
                      "Bicubic ERGAS (ratio 4, legacy) | LKCA-Net ERGAS (ratio 4, legacy) | MPSNR gain (dB) |")
    assert rows == ["| a | 30.0000 | 31.5000 | 3.0000 | 2.5000 | 5.0000 | 4.5000 | +1.5000 |",
                    "| b | 40.0000 | 39.2500 | 2.0000 | 2.2500 | 4.0000 | 4.2500 | -0.7500 |"]


def test_scoring_progress_shows_only_for_a_slow_split(monkeypatch, capsys):
    """Nothing in the first 2 s; in a log (not a terminal) a line at most every 10 s, and the last."""
    from lkca_jax import inference

    clock = iter([0.0, 1.0, 3.0, 4.0, 15.0])
    monkeypatch.setattr(inference.time, "perf_counter", lambda: next(clock))
    progress = inference._Progress("LKCA-Net", 4)  # starts at 0 s
    for done in (1, 2, 3, 4):  # at 1, 3, 4 and 15 s
        progress(done)
    progress.close()
    assert capsys.readouterr().err.splitlines() == ["LKCA-Net: images 2/4, 0.67 images/s, ETA 3s",
                                                    "LKCA-Net: images 4/4, 0.27 images/s, ETA 0s"]
