"""TFDS builders: stand-ins with the real file and variable names, and the real CAVE scenes."""

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")
h5py = pytest.importorskip("h5py")

import lkca_jax.data.tfds as builders  # noqa: E402  (registers the builders)
from conftest import shared_data  # noqa: E402
from lkca_jax.data.io import read, write_cube  # noqa: E402
from lkca_jax.ops.imresize import imresize_np  # noqa: E402


def prepare(cls, scale, data_dir, manual_dir, per_split=3):
    b = cls(config=f"x{scale}", data_dir=str(data_dir), file_format="array_record")
    b.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(manual_dir), max_examples_per_split=per_split))
    return b


def by_id(source):
    return {item["id"].decode(): item for item in (source[i] for i in range(len(source)))}


def test_registered_names_and_configs():
    for name, cls in [("chikusei", builders.Chikusei), ("houston2018", builders.Houston2018),
                      ("pavia_centre", builders.PaviaCentre), ("cave", builders.Cave),
                      ("hsi_folder", builders.HsiFolder)]:
        assert tfds.builder_cls(name) is cls
    assert [c.name for c in builders.Chikusei.BUILDER_CONFIGS] == ["x2", "x3", "x4", "x8"]


def test_cave_builder_on_real_scenes(tmp_path):
    cave = shared_data("cave")
    b = prepare(builders.Cave, 4, tmp_path, cave)
    assert set(b.info.splits) == {"train", "validation", "test"}
    # Read back through tfds.data_source, no TensorFlow.
    test = by_id(tfds.data_source("cave/x4", data_dir=str(tmp_path), split="test"))
    item = test["pompoms/0_0_512x512"]
    gt = read(cave / "pompoms_ms") / 65535.0
    np.testing.assert_allclose(item["hr"], gt, rtol=0, atol=1e-7)
    np.testing.assert_allclose(item["lr"], imresize_np(gt, 0.25), atol=1e-6)
    assert item["scale"] == 4 and item["norm"] == 65535.0
    train = by_id(b.as_data_source(split="train"))
    name, item = next(iter(train.items()))
    scene, window = name.split("/")
    top, left = (int(v) for v in window.split("_")[:2])
    assert scene == "balloons" and item["hr"].shape == (64, 64, 31) and item["lr"].shape == (16, 16, 31)
    np.testing.assert_allclose(item["hr"], read(cave / "balloons_ms")[top:top + 64, left:left + 64]
                               / 65535.0, atol=1e-7)


def test_chikusei_builder_on_a_full_size_standin(tmp_path):
    """A 2517 x 2335 x 128 MATLAB v7.3 file (uint16; chunked, mostly unwritten) named as the real one."""
    manual = tmp_path / "manual"
    manual.mkdir()
    rng = np.random.default_rng(0)
    block = rng.integers(1, 5000, size=(700, 96, 128)).astype(np.uint16)  # raw rows 106..805, cols 143..238
    path = manual / "HyperspecVNIR_Chikusei_20140729.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        ds = f.create_dataset("chikusei", shape=(128, 2335, 2517), dtype=np.uint16, chunks=(128, 32, 32),
                              fillvalue=0)  # MATLAB stores column-major: HDF5 sees (C, W, H)
        ds.attrs["MATLAB_class"] = np.bytes_("uint16")
        ds[:, 143:239, 106:806] = block.transpose(2, 1, 0)
    with open(path, "r+b") as fh:  # MATLAB's 128-byte text header in the user block
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(116) + bytes(8) + b"\x00\x02IM")
    b = prepare(builders.Chikusei, 4, tmp_path / "data", manual, per_split=2)
    peak = float(block.max())
    test = by_id(b.as_data_source(split="test"))
    first = test["chikusei/0_0_512x512"]
    np.testing.assert_allclose(first["hr"][:, :96], block[:512] / peak, atol=1e-7)
    assert first["norm"] == peak and not first["hr"][:, 96:].any()
    for name, item in by_id(b.as_data_source(split="train")).items():
        top, left = (int(v) for v in name.split("/")[1].split("_")[:2])
        assert top >= 512  # below the test strip
        np.testing.assert_allclose(item["hr"][:, :max(0, 96 - left)],
                                   block[top:top + 64, left:96][:, :64] / peak, atol=1e-7)


def test_pavia_and_houston_standins(tmp_path):
    rng = np.random.default_rng(1)
    pavia = rng.uniform(0, 8000, (300, 715, 102)).astype(np.float32)
    (tmp_path / "pm").mkdir()
    write_cube(tmp_path / "pm" / "Pavia.mat", pavia, key="pavia")
    b = prepare(builders.PaviaCentre, 4, tmp_path / "pd", tmp_path / "pm", per_split=1)
    test = by_id(b.as_data_source(split="test"))
    assert set(test) == {"pavia/0_0_224x224"}
    np.testing.assert_allclose(test["pavia/0_0_224x224"]["hr"], pavia[:224, :224] / 8000, rtol=1e-6)

    houston = rng.uniform(0, 1, (300, 2100, 48)).astype(np.float32)
    (tmp_path / "hm").mkdir()
    write_cube(tmp_path / "hm" / "20170218_UH_CASI_S4_NAD83.hdr", houston)  # ENVI, as the contest ships it
    (tmp_path / "hm" / "20170218_UH_CASI_S4_NAD83.img").rename(tmp_path / "hm" / "20170218_UH_CASI_S4_NAD83.pix")
    b = prepare(builders.Houston2018, 8, tmp_path / "hd", tmp_path / "hm", per_split=1)
    item = next(iter(by_id(b.as_data_source(split="test")).values()))
    assert item["hr"].shape == (256, 256, 48) and item["lr"].shape == (32, 32, 48)


def test_folder_builder_and_missing_files(tmp_path):
    rng = np.random.default_rng(2)
    (tmp_path / "m").mkdir()
    for i in range(5):
        write_cube(tmp_path / "m" / f"scene{i}.npy", rng.uniform(0, 1, (40, 40, 9)).astype(np.float32))
    b = prepare(builders.HsiFolder, 2, tmp_path / "d", tmp_path / "m", per_split=2)
    assert b.as_data_source(split="test")[0]["hr"].shape == (40, 40, 9)
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception, match="Pavia.mat"):
        prepare(builders.PaviaCentre, 4, tmp_path / "d2", tmp_path / "empty")
