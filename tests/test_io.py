"""Readers, writers and the inspect command, on real files and on each kind of bad input."""

import json
import pathlib

import numpy as np
import pytest
import scipy.io
from PIL import Image

from conftest import ROOT, shared_data
from lkca_jax.__main__ import main
from lkca_jax.data.io import DataError, Georef, open_writer, read, read_cube, require_finite, write_cube

# ../shared/data/README.md, typed: shape, dtype, and the stated value range (lo, hi).
REMOTE = {
    "pavia_rosis_100.mat": ((100, 100, 102), "float64", (0, 1)),
    "muufl_gulfport_100.mat": ((100, 100, 64), "float32", (0, 1)),
    "samson.mat": ((95, 95, 156), "float64", (0, 1)),
    "hydice_urban_100x80.mat": ((100, 80, 162), "uint16", (0, 592)),
    "aviris_texas_coast_100.mat": ((100, 100, 198), "int16", (-50, 14060)),
    "aviris224_90.mat": ((90, 90, 224), "int16", (-12, 8143)),
    "muufl_gulfport_51x88.mat": ((51, 88, 72), "float32", (-0.18, 0.85)),
}
CAVE_SCENES = ["balloons", "cd", "clay", "egyptian_statue", "fake_and_real_beers", "fake_and_real_lemon_slices",
               "fake_and_real_peppers", "fake_and_real_sushi", "feathers", "glass_tiles", "jelly_beans", "paints",
               "pompoms", "real_and_fake_peppers", "stuffed_toys", "thread_spools"]


def inspect_json(capsys, *args):
    assert main(["inspect", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def inspect_error(capsys, *args):
    code = main(["inspect", *map(str, args)])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


@pytest.mark.parametrize("name", sorted(REMOTE))
def test_remote_crops(name, capsys):
    shape, dtype, (lo, hi) = REMOTE[name]
    info = inspect_json(capsys, shared_data("remote", name))
    assert info["shape"] == list(shape) and info["dtype"] == dtype
    # Integer ranges are stated exactly; float ones to two decimals.
    tol = 0 if dtype.startswith(("int", "uint")) else 0.005
    assert abs(info["min"] - lo) <= tol and abs(info["max"] - hi) <= tol, info


@pytest.mark.parametrize("scene", CAVE_SCENES)
def test_cave_scenes(scene, capsys):
    info = inspect_json(capsys, shared_data("cave", f"{scene}_ms"))
    assert info["shape"] == [512, 512, 31] and info["dtype"] == "uint16"
    assert 0 <= info["min"] < info["max"] <= 65535


def test_samson_is_column_major():
    # V is bands x pixels in MATLAB's column-major pixel order: pixel (r, c) is column r + 95 c.
    path = shared_data("remote", "samson.mat")
    v = scipy.io.loadmat(path)["V"]
    cube = read_cube(path).data
    for r, c in [(0, 0), (3, 0), (0, 5), (94, 17)]:
        np.testing.assert_allclose(cube[r, c], v[:, r + 95 * c].astype(np.float32))


def test_v73_is_transposed_to_matlab_order():
    import h5py

    path = shared_data("remote", "pavia_rosis_100.mat")
    with h5py.File(path) as f:
        raw = f["data"][()]  # (C, W, H) as HDF5 sees it
    np.testing.assert_array_equal(read_cube(path).data, raw.transpose(2, 1, 0).astype(np.float32))


# ---------------------------------------------------------------- bad inputs


def test_missing_and_empty(tmp_path, capsys):
    code, err = inspect_error(capsys, tmp_path / "absent.mat")
    assert code == 2 and len(err) == 1 and "absent.mat" in err[0] and "no such file" in err[0]
    (tmp_path / "empty.mat").write_bytes(b"")
    code, err = inspect_error(capsys, tmp_path / "empty.mat")
    assert code == 2 and len(err) == 1 and "empty" in err[0]


def test_truncated_mat(tmp_path, capsys):
    good = tmp_path / "good.mat"
    scipy.io.savemat(good, {"data": np.random.rand(20, 20, 8)})
    bad = tmp_path / "cut.mat"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    code, err = inspect_error(capsys, bad)
    assert code == 2 and len(err) == 1 and "cut.mat" in err[0]


def test_mat_without_numeric_array(tmp_path, capsys):
    path = tmp_path / "text.mat"
    scipy.io.savemat(path, {"note": "no image here"})
    code, err = inspect_error(capsys, path)
    assert code == 2 and len(err) == 1 and "no 3-D numeric image" in err[0] and "note" in err[0]


def test_ambiguous_candidates_need_key(tmp_path, capsys):
    path = tmp_path / "two.mat"
    scipy.io.savemat(path, {"a": np.zeros((4, 5, 6)), "b": np.ones((4, 5, 6))})
    code, err = inspect_error(capsys, path)
    assert code == 2 and len(err) == 1 and "a, b" in err[0] and "--key" in err[0]
    assert inspect_json(capsys, path, "--key", "b")["min"] == 1.0


def test_envi_size_mismatch(tmp_path, capsys):
    write_cube(tmp_path / "scene.hdr", np.random.rand(6, 7, 3).astype(np.float32))
    data = tmp_path / "scene.img"
    data.write_bytes(data.read_bytes()[:-4])
    code, err = inspect_error(capsys, tmp_path / "scene.hdr")
    assert code == 2 and len(err) == 1 and "scene.img" in err[0] and "bytes" in err[0]


def _png_folder(folder: pathlib.Path, bands: np.ndarray, rgba=False, skip=()):
    folder.mkdir()
    for i in range(bands.shape[-1]):
        if i + 1 in skip:
            continue
        band = bands[..., i]
        img = Image.fromarray(np.stack([band] * 3 + [np.full_like(band, 255)], -1), "RGBA") if rgba \
            else Image.fromarray(band.astype(np.uint16))
        img.save(folder / f"scene_ms_{i + 1:02d}.png")


def test_png_folder_missing_band(tmp_path, capsys):
    _png_folder(tmp_path / "scene_ms", np.random.randint(0, 65535, (8, 9, 5)).astype(np.uint16), skip=(3,))
    code, err = inspect_error(capsys, tmp_path / "scene_ms")
    assert code == 2 and len(err) == 1 and "band(s) 3 missing" in err[0]


def test_png_folder_rgba_grey_variant(tmp_path):
    """An 8-bit scene (CAVE's watercolors in some copies: RGBA with R = G = B) reads on the 16-bit scale,
    255 -> 65535, so dividing by 65535 puts it in 0..1 as it does a 16-bit scene."""
    bands = np.random.randint(0, 256, (8, 9, 4)).astype(np.uint8)
    bands[0, 0, 0], bands[0, 1, 0] = 255, 0
    _png_folder(tmp_path / "water_ms", bands, rgba=True)
    cube = read_cube(tmp_path / "water_ms")
    assert cube.source_dtype == "uint8" and cube.scaled == 257
    np.testing.assert_array_equal(cube.data, bands.astype(np.float32) * 257)
    assert cube.data.max() == 65535 and cube.data.min() == 0
    for mode in ("L", "LA"):  # 8-bit grey, with or without alpha: the same scale
        folder = tmp_path / f"{mode}_ms"
        folder.mkdir()
        for i in range(bands.shape[-1]):
            b = bands[..., i]
            Image.fromarray(np.stack([b, np.full_like(b, 255)], -1) if mode == "LA" else b, mode).save(
                folder / f"s_{i + 1:02d}.png")
        np.testing.assert_array_equal(read_cube(folder).data, bands.astype(np.float32) * 257)


def test_png_folder_refuses_mixed_depth_palette_and_16_bit_colour(tmp_path, capsys):
    """One line naming the band: 8-bit among 16-bit, a palette, and a 16-bit RGB PNG (which Pillow
    would read as 8-bit, its low byte dropped: the header, not Pillow, tells)."""
    bands = np.random.randint(0, 65535, (8, 9, 3)).astype(np.uint16)
    _png_folder(tmp_path / "mixed_ms", bands)
    Image.fromarray((bands[..., 1] // 257).astype(np.uint8)).save(tmp_path / "mixed_ms" / "scene_ms_02.png")
    code, err = inspect_error(capsys, tmp_path / "mixed_ms")
    assert code == 2 and len(err) == 1 and "scene_ms_02.png" in err[0] and "8-bit band among 16-bit" in err[0]
    _png_folder(tmp_path / "pal_ms", bands)
    Image.fromarray((bands[..., 0] // 257).astype(np.uint8)).convert("P").save(tmp_path / "pal_ms" / "scene_ms_01.png")
    code, err = inspect_error(capsys, tmp_path / "pal_ms")
    assert code == 2 and len(err) == 1 and "scene_ms_01.png" in err[0] and "8-bit palette PNG" in err[0]
    import zlib  # a 16-bit RGB PNG by hand (Pillow cannot write one): signature, IHDR, IDAT, IEND
    chunk = lambda kind, data: (len(data).to_bytes(4, "big") + kind + data
                                + zlib.crc32(kind + data).to_bytes(4, "big"))
    rows = b"".join(b"\x00" + np.repeat(bands[r, :, 2:3], 3, 1).astype(">u2").tobytes() for r in range(8))
    header = (9).to_bytes(4, "big") + (8).to_bytes(4, "big") + bytes([16, 2, 0, 0, 0])  # 9 x 8, 16-bit RGB
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
           + chunk(b"IEND", b""))
    _png_folder(tmp_path / "rgb16_ms", bands)
    (tmp_path / "rgb16_ms" / "scene_ms_03.png").write_bytes(png)
    with Image.open(tmp_path / "rgb16_ms" / "scene_ms_03.png") as im:  # what Pillow makes of it: 8 bits
        assert np.asarray(im).dtype == np.uint8
    code, err = inspect_error(capsys, tmp_path / "rgb16_ms")
    assert code == 2 and len(err) == 1 and "scene_ms_03.png: 16-bit RGB PNG" in err[0]


def test_png_bands_sorted_by_number(tmp_path):
    bands = np.random.randint(0, 65535, (4, 4, 12)).astype(np.uint16)
    _png_folder(tmp_path / "s", bands)  # _02 < _10 < _11 only if sorted numerically
    np.testing.assert_array_equal(read_cube(tmp_path / "s").data, bands.astype(np.float32))


def test_nonfinite_values_warn_and_refuse(tmp_path, capsys):
    data = np.random.rand(5, 5, 3)
    data[0, 0, 0], data[1, 2, 1] = np.nan, np.inf
    path = tmp_path / "nan.npy"
    np.save(path, data)
    assert main(["inspect", str(path)]) == 0
    err = capsys.readouterr().err
    assert "2 NaN or Inf" in err and "nan.npy" in err
    with pytest.raises(DataError, match="2 NaN or Inf"):
        require_finite(read_cube(path), path)


def test_not_an_image(tmp_path, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    code, err = inspect_error(capsys, path)
    assert code == 2 and len(err) == 1 and "unknown format" in err[0]


# ---------------------------------------------------------------- writers


def test_an_output_whose_folder_cannot_be_made_is_named(tmp_path, capsys):
    """A file where the output's folder should be: one line naming the output (not a hidden temporary),
    exit 2, nothing written; the same for a workdir."""
    np.save(tmp_path / "lr.npy", np.random.rand(8, 8, 31).astype(np.float32))
    (tmp_path / "afile").write_text("not a folder")
    with pytest.raises(OSError, match=r"afile/x\.npy: cannot make its folder"):
        write_cube(tmp_path / "afile" / "x.npy", np.zeros((2, 2, 2), np.float32))
    code = main(["sr", "--pretrained", "cave-x4-lkca-net", "--norm", "1", "--input", str(tmp_path / "lr.npy"),
                 "--output", str(tmp_path / "afile" / "sr.npy")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"error: {tmp_path / 'afile' / 'sr.npy'}: cannot make its folder (File exists)"]
    code = main(["train", "--config", str(ROOT / "configs" / "sample.py"), "--workdir",
                 str(tmp_path / "afile" / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith(f"error: {tmp_path / 'afile' / 'run'}: cannot make or write the workdir")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "lr.npy"]


@pytest.mark.parametrize("name,kwargs", [("a.mat", {}), ("b.mat", {"mat_v73": True}), ("c.npy", {}),
                                         ("d.tif", {}), ("e.hdr", {})])
def test_round_trip(tmp_path, name, kwargs):
    data = (np.random.rand(7, 9, 5) * 2 - 0.5).astype(np.float32)  # negative values survive
    wl = np.linspace(400, 700, 5)
    write_cube(tmp_path / name, data, wavelengths=wl, **kwargs)
    cube = read_cube(tmp_path / name)
    np.testing.assert_array_equal(cube.data, data)
    if not name.endswith(".npy"):  # .npy has no place for wavelengths
        np.testing.assert_allclose(cube.wavelengths, wl)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_v73_file_is_hdf5_with_matlab_header(tmp_path):
    import h5py

    data = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    write_cube(tmp_path / "big.mat", data, mat_v73=True)
    assert (tmp_path / "big.mat").read_bytes()[:10] == b"MATLAB 7.3"
    with h5py.File(tmp_path / "big.mat") as f:
        assert f["data"].shape == (4, 3, 2)  # stored transposed, as MATLAB does


@pytest.mark.parametrize("interleave,order", [("bsq", (2, 0, 1)), ("bil", (0, 2, 1)), ("bip", (0, 1, 2))])
@pytest.mark.parametrize("big_endian", [False, True])
def test_envi_interleaves(tmp_path, interleave, order, big_endian):
    cube = np.random.randint(-500, 500, (4, 6, 3)).astype(np.int16)
    dtype = ">i2" if big_endian else "<i2"
    cube.transpose(order).astype(dtype).tofile(tmp_path / "r.raw")
    (tmp_path / "r.hdr").write_text(f"ENVI\nsamples = 6\nlines = 4\nbands = 3\nheader offset = 0\n"
                                    f"data type = 2\ninterleave = {interleave}\nbyte order = {int(big_endian)}\n")
    got = read_cube(tmp_path / "r.raw")
    assert got.source_dtype == "int16"
    np.testing.assert_array_equal(got.data, cube.astype(np.float32))


@pytest.mark.parametrize("suffix", [".npy", ".tif", ".hdr", ".mat"])
def test_failed_write_keeps_existing_file(tmp_path, suffix):
    path = tmp_path / f"keep{suffix}"
    write_cube(path, np.ones((4, 3, 2), np.float32))
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(OSError, match="disk full"):
        with open_writer(path, (4, 3, 2)) as writer:
            writer.write_rows(0, np.zeros((2, 3, 2)))
            raise OSError("disk full")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    np.testing.assert_array_equal(read(path), np.ones((4, 3, 2)))


@pytest.mark.parametrize("name,v73", [("a.npy", None), ("a.tif", None), ("a.hdr", None), ("a.mat", None),
                                      ("a.mat", True)])
def test_row_blocks_in_any_order_give_the_whole_cube(tmp_path, rng, name, v73):
    """Independent check: the file read back equals the NumPy array the blocks were cut from."""
    cube = rng.normal(size=(11, 7, 5)).astype(np.float32)
    wavelengths = np.linspace(400, 700, 5)
    options = {} if v73 is None else {"mat_v73": v73}
    with open_writer(tmp_path / name, cube.shape, wavelengths=wavelengths, **options) as writer:
        for rows in (slice(6, 11), slice(0, 2), slice(2, 6)):
            writer.write_rows(rows.start, cube[rows])
    got = read_cube(tmp_path / name)
    np.testing.assert_array_equal(got.data, cube)
    if name != "a.npy":  # .npy has no place for wavelengths
        np.testing.assert_allclose(got.wavelengths, wavelengths)
    with pytest.raises(ValueError, match="do not fit"):
        with open_writer(tmp_path / f"b{pathlib.Path(name).suffix}", cube.shape) as writer:
            writer.write_rows(9, cube[:5])
    assert not list(tmp_path.glob("b*")) and not list(tmp_path.glob(".b*"))


def test_inspect_reports_crs_and_pixel_size(tmp_path, capsys):
    import rasterio
    from rasterio.transform import from_origin

    path = tmp_path / "geo.tif"
    with rasterio.open(path, "w", driver="GTiff", width=5, height=4, count=3, dtype="uint16", crs="EPSG:32615",
                       transform=from_origin(300000, 3300000, 2.5, 2.5), nodata=0) as dst:
        dst.write(np.arange(60, dtype=np.uint16).reshape(3, 4, 5) + 1)
    info = inspect_json(capsys, path)
    assert info["crs"] == "EPSG:32615" and info["pixel_size"] == [2.5, 2.5]
    assert info["origin"] == [300000, 3300000] and info["nodata"] == 0 and info["dtype"] == "uint16"
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "CRS EPSG:32615, pixel size 2.5 x 2.5" in out
    plain = inspect_json(capsys, shared_data("remote", "samson.mat"))
    assert "crs" not in plain


def test_georeference_round_trips_through_our_writers(tmp_path):
    """Written by write_cube, read back by GDAL directly and by read_cube."""
    import rasterio
    from rasterio.transform import from_origin

    from lkca_jax.data.io.gdal import open_dataset

    crs = rasterio.crs.CRS.from_epsg(32650)
    geo = Georef(crs.to_wkt(), from_origin(440000, 4420000, 5, 5), -1.0)
    data = np.random.rand(6, 7, 4).astype(np.float32)
    for name in ("g.tif", "g.hdr"):
        write_cube(tmp_path / name, data, np.array([450, 550, 650, 750.5]), geo)
        with rasterio.open(tmp_path / name.replace(".hdr", ".img")) as src:
            assert src.crs == crs and src.transform == geo.transform and src.nodata == -1.0
        cube = read_cube(tmp_path / name)
        assert cube.georef.transform == geo.transform and cube.georef.crs_name == "EPSG:32650"
        np.testing.assert_array_equal(cube.data, data)
        np.testing.assert_allclose(cube.wavelengths, [450, 550, 650, 750.5])
    assert open_dataset(tmp_path / "g.img", "ENVI file").tags(ns="ENVI")["wavelength"] == "{450, 550, 650, 750.5}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.hdr", "g.img", "g.tif"]  # no .aux.xml, no temporaries


def test_the_command_lines_own_warnings_print_on_one_line():
    """The CLI's warning format: this package's UserWarnings as one 'warning: ...' line; a NumPy
    RuntimeWarning at one of its lines, or any library's warning, as Python prints them."""
    import warnings

    from lkca_jax import __main__ as cli
    from lkca_jax.data import scenes

    assert cli._one_line("x.npy: values reach 1e+04", UserWarning, scenes.__file__, 101) == \
        "warning: x.npy: values reach 1e+04\n"
    for category, filename in ((RuntimeWarning, scenes.__file__), (UserWarning, np.__file__)):
        assert cli._one_line("divide by zero", category, filename, 7) == \
            warnings.formatwarning("divide by zero", category, filename, 7)
