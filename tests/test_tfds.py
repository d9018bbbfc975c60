"""TFDS builders: stand-ins with the real file and variable names, and the real CAVE scenes."""

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")
h5py = pytest.importorskip("h5py")

import lkca_jax.data.tfds as builders  # noqa: E402  (registers the builders)
from conftest import shared_data  # noqa: E402
from lkca_jax.data.io import read, write_cube  # noqa: E402
from lkca_jax.ops.imresize import imresize_np  # noqa: E402


def prepare(cls, scale, data_dir, manual_dir, per_split: int | None = 3):
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


def test_cave_builder_prepares_all_16_scenes_without_tensorflow(tmp_path):
    """No example cap: the whole of CAVE x4 (2475 patches, ~1.3 GB of float32) goes past TFDS's 1 GB
    in-memory shuffle, which needs TensorFlow past it; the builder generates the training split in
    parts and makes them one split, "train", read with TFDS's own data_source: no TensorFlow."""
    import sys

    cave = shared_data("cave")
    b = prepare(builders.Cave, 4, tmp_path, cave, per_split=None)
    assert set(b.info.splits) == {"train", "validation", "test"}
    train_info = b.info.splits["train"]
    assert train_info.num_examples == 2475 and train_info.num_bytes > 1 << 30 and train_info.num_shards >= 2
    assert not list(b.data_path.glob("*train_*"))  # no part left beside the split
    assert "tensorflow" not in sys.modules
    # Read back through tfds.data_source, no TensorFlow.
    test = by_id(tfds.data_source("cave/x4", data_dir=str(tmp_path), split="test"))
    item = test["pompoms/0_0_512x512"]
    gt = read(cave / "pompoms_ms") / 65535.0
    np.testing.assert_allclose(item["hr"], gt, rtol=0, atol=1e-7)
    np.testing.assert_allclose(item["lr"], imresize_np(gt, 0.25), atol=1e-6)
    assert item["scale"] == 4 and item["norm"] == 65535.0
    # A fresh reader of split="train", as a TFDS user would open it: every patch, in window order
    # (the ids the metadata records), the first and the last (past the first part) as cut from
    # their scenes.
    train = tfds.data_source("cave/x4", data_dir=str(tmp_path), split="train")
    ids = b.info.metadata["splits"]["train"]["ids"]
    assert len(train) == 2475 == len(ids)
    for i in (0, len(train) - 1):
        item = train[i]
        assert item["id"].decode() == ids[i]
        scene, window = ids[i].split("/")
        top, left = (int(v) for v in window.split("_")[:2])
        assert item["hr"].shape == (64, 64, 31) and item["lr"].shape == (16, 16, 31)
        np.testing.assert_allclose(item["hr"], read(cave / f"{scene}_ms")[top:top + 64, left:left + 64]
                                   / 65535.0, atol=1e-7)
    assert ids[0].startswith("balloons/") and not ids[-1].startswith("balloons/")
    assert "tensorflow" not in sys.modules


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
    # ~7 GB of patches, generated in parts (each capped at 2 examples here), read as one split
    assert set(b.info.splits) == {"train", "validation", "test"} and b.info.splits["train"].num_shards > 1
    train = by_id(b.as_data_source(split="train"))
    for name, item in train.items():
        top, left = (int(v) for v in name.split("/")[1].split("_")[:2])
        assert top >= 512  # below the test strip
        want = np.zeros((64, min(64, max(0, 96 - left)), 128))  # the stand-in's data ends at crop row 700
        rows = block[top:top + 64, left:96][:, :64]
        want[:len(rows)] = rows
        np.testing.assert_allclose(item["hr"][:, :want.shape[1]], want / peak, atol=1e-7)
    assert max(int(n.split("/")[1].split("_")[0]) for n in train) > 1024  # windows from later parts


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


@pytest.fixture(scope="module")
def prepared_sample(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("tfds")
    b = builders.LkcaSample(config="x4", data_dir=str(data_dir), file_format="array_record")
    b.download_and_prepare()
    return data_dir


def _sources(data_dir, spec="sample.py"):
    from test_training import tiny

    from lkca_jax.data.datasets import load_splits
    from lkca_jax.data.spec import DataSpec

    files = tiny(spec)
    prepared = tiny(spec)
    prepared.data.update(source="tfds", tfds_dir=str(data_dir))
    return files, prepared, load_splits(DataSpec.of(files)), load_splits(DataSpec.of(prepared))


def test_prepared_splits_equal_the_files_splits(prepared_sample):
    _, _, files, prepared = _sources(prepared_sample)
    for name in ("train", "validation", "test"):
        assert prepared[name].ids == files[name].ids and prepared[name].norm == files[name].norm
        for a, b in zip(files[name].hr, prepared[name].hr, strict=True):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(files[name].lr, prepared[name].lr, strict=True):
            np.testing.assert_array_equal(a, b)


def test_training_from_tfds_gives_the_same_batches_and_table(prepared_sample, tmp_path):
    import json

    from lkca_jax import training
    from lkca_jax.data.pipeline import SplitSource, train_batches

    files_config, tfds_config, files, prepared = _sources(prepared_sample)
    for epoch in range(2):
        pairs = zip(train_batches(SplitSource(files["train"]), 4, 1, epoch, 0, "all8"),
                    train_batches(SplitSource(prepared["train"]), 4, 1, epoch, 0, "all8"), strict=True)
        for a, b in pairs:
            np.testing.assert_array_equal(a.lr, b.lr)
            np.testing.assert_array_equal(a.hr, b.hr)
    for name, config in (("files", files_config), ("tfds", tfds_config)):
        config.train.num_steps = 6
        training.train_and_evaluate(config, tmp_path / name, echo=lambda *a: None)
    logs = [[json.loads(line) for line in (tmp_path / n / "metrics.jsonl").read_text().splitlines()]
            for n in ("files", "tfds")]
    assert [r["loss"] for r in logs[0]] == [r["loss"] for r in logs[1]]
    tables = [json.loads((tmp_path / n / "eval" / "test.json").read_text()) for n in ("files", "tfds")]
    assert tables[0]["per_image"] == tables[1]["per_image"] and tables[0]["norm"] == tables[1]["norm"]


def test_two_processes_read_disjoint_shards_of_each_global_batch(prepared_sample, monkeypatch):
    from lkca_jax.data.pipeline import SplitSource, epoch_order, train_batches
    from lkca_jax.data.tfds import Records

    reads = {}
    real = Records.__getitem__

    def logged(self, i):
        reads.setdefault(id(self), set()).add(int(i))
        return real(self, i)

    monkeypatch.setattr(Records, "__getitem__", logged)
    seen, opened = [], []
    for process in range(2):  # each process opens the prepared dataset itself
        _, _, _, prepared = _sources(prepared_sample)
        opened.append(prepared)  # alive, so that the two Records never share an id()
        records = prepared["train"].hr.records
        batches = list(train_batches(SplitSource(prepared["train"]), 2, 1, 0, 0, "random", process, 2))
        seen.append(reads.get(id(records), set()))
        assert len(batches) == len(prepared["train"]) // 4
    assert seen[0] and seen[1] and not seen[0] & seen[1]
    pairs = epoch_order(len(prepared["train"]), 0, 0, "random")
    assert seen[0] | seen[1] == {i for i, _ in pairs[:len(pairs) // 4 * 4]}  # together: every global batch


def test_a_prepared_dataset_cut_otherwise_is_refused(prepared_sample):
    from lkca_jax.data.datasets import load_splits
    from lkca_jax.data.io import DataError
    from lkca_jax.data.spec import DataSpec

    _, prepared, _, _ = _sources(prepared_sample)
    prepared.data.stride = 4
    with pytest.raises(DataError, match="prepared with other data fields than the config's: stride 8 there, 4 here"):
        load_splits(DataSpec.of(prepared))
    prepared.data.update(stride=8, test_crop=20)  # centre crops are cut before the LR is made: prepare again
    with pytest.raises(DataError, match="other data fields than the config's: test_crop 0 there, 20 here"):
        load_splits(DataSpec.of(prepared))
    prepared.data.update(test_crop=0, tfds_dir=str(prepared_sample / "nothing"))
    with pytest.raises(DataError, match="no prepared lkca_sample/x4 here"):
        load_splits(DataSpec.of(prepared))
