"""Config -> splits on the embedded sample and on real CAVE scenes."""

import numpy as np
import pytest

from conftest import ROOT, shared_data
from lkca_jax.config import load_config
from lkca_jax.data.datasets import load_splits
from lkca_jax.data.io import DataError, read
from lkca_jax.data.spec import DataSpec


def test_sample_splits_are_real_and_disjoint():
    config = load_config(f"{ROOT}/configs/sample.py:x4,net")
    splits = load_splits(DataSpec.of(config))
    test, train, val = splits["test"], splits["train"], splits["validation"]
    assert [x.shape for x in test.hr] == [(48, 48, 102)] * 2
    # 32 x 32 patches, stride 8, over the 52 rows below the test strip: 3 x 9, 10% (3) to validation.
    assert len(train) + len(val) == 27 and len(val) == 3
    assert all(int(i.split("/")[1].split("_")[0]) >= 48 for i in train.ids + val.ids)
    # HR crops are the shipped data; LR is MATLAB bicubic of the crop.
    with np.load(ROOT / "lkca_jax/data/sample/pavia_rosis_100.npz") as f:
        cube = f["data"]
    np.testing.assert_array_equal(test.hr[1], cube[:48, 48:96])
    # LR = MATLAB bicubic x1/4 with antialiasing; Pillow's bicubic has the same kernel and
    # antialiasing, other borders: compare the pixels whose support lies inside (tests/test_imresize.py).
    from PIL import Image

    hr = cube[:48, 48:96].astype(np.float32)
    for band in (0, 50, 101):
        ref = np.asarray(Image.fromarray(hr[..., band], mode="F").resize((12, 12), Image.BICUBIC), np.float64)
        np.testing.assert_allclose(test.lr[1][3:-3, 3:-3, band], ref[3:-3, 3:-3], atol=1e-5)
    assert test.norm == {"pavia_sample": 1.0}


def test_test_crop_scores_each_test_image_centre_with_its_own_lr():
    """data.test_crop: the centre n x n of each test image, its LR made from the crop (not cut from the
    whole image's LR, whose border pixels see outside the crop); training data unchanged."""
    config = load_config(f"{ROOT}/configs/sample.py:x4,net")
    whole = load_splits(DataSpec.of(config))
    config.data.test_crop = 20  # of 48 x 48: rows and columns 14..33
    cropped = load_splits(DataSpec.of(config))
    test = cropped["test"]
    assert test.ids == ["pavia_sample/14_14_20x20", "pavia_sample/14_62_20x20"]
    from PIL import Image

    for hr, lr, big in zip(test.hr, test.lr, whole["test"].hr):
        np.testing.assert_array_equal(hr, big[14:34, 14:34])
        assert lr.shape == (5, 5, 102)
        ref = np.asarray(Image.fromarray(hr[..., 7].astype(np.float32), mode="F").resize((5, 5), Image.BICUBIC))
        np.testing.assert_allclose(lr[2, 2, 7], ref[2, 2], atol=1e-5)  # the one pixel whose support is inside
    for split in ("train", "validation"):
        assert cropped[split].ids == whole[split].ids
    for size, says in ((18, "not a multiple of the scale 4"), (52, "exceeds test image pavia_sample/0_0_48x48")):
        config.data.test_crop = size
        with pytest.raises(DataError, match=f"config.data.test_crop: a test crop of {size} .*{says}"):
            load_splits(DataSpec.of(config))


def test_a_run_saved_before_a_data_field_existed_loads_with_its_default():
    """A config.json without data.test_crop (every run trained before the field) loads with it at 0 and
    cuts the whole test images it was scored on."""
    import json

    from lkca_jax.checkpoint import config_from_json

    saved = json.loads(load_config(f"{ROOT}/configs/sample.py:x4,net").to_json())
    del saved["data"]["test_crop"]
    loaded = config_from_json(json.dumps(saved))
    assert loaded.data.test_crop == 0
    assert load_splits(DataSpec.of(loaded), ("test",))["test"].ids == ["pavia_sample/0_0_48x48",
                                                                       "pavia_sample/0_48_48x48"]


def test_cave_scene_splits():
    path = shared_data("cave")
    config = load_config(f"{ROOT}/configs/cave.py:x4,net")
    config.data.path = str(path)
    config.data.train_scenes = ("balloons",)
    config.data.val_scenes = ()
    config.data.test_scenes = ("feathers",)
    splits = load_splits(DataSpec.of(config))
    assert len(splits["train"]) == 15 * 15  # 64 x 64 patches, stride 32, over 512 x 512
    assert splits["train"].lr[0].shape == (16, 16, 31)
    raw = read(path / "feathers_ms")
    np.testing.assert_allclose(splits["test"].hr[0], raw / 65535.0, rtol=1e-6)
    assert splits["test"].norm == {"feathers": 65535.0}


@pytest.mark.parametrize("factor,warned", [(10000.0, "values span 0 .. 1e+04"), (1 / 1000, "values span 0 .. 0.001"),
                                           (1.0, None)])
def test_data_far_from_0_to_1_after_normalising_is_flagged(tmp_path, factor, warned, recwarn):
    """The sample config (a constant of 1) pointed at raw counts (or at data scaled far down) warns,
    naming the file; the sample itself does not."""
    with np.load(ROOT / "lkca_jax/data/sample/pavia_rosis_100.npz") as f:
        cube = f["data"] * factor  # its max is 1
    np.save(tmp_path / "mine.npy", cube)
    config = load_config(f"{ROOT}/configs/sample.py:x4,net")
    config.data.path = str(tmp_path / "mine.npy")
    load_splits(DataSpec.of(config), ("test",))
    said = [str(w.message) for w in recwarn if "after dividing by" in str(w.message)]
    if warned is None:
        assert said == []
    else:
        assert len(said) == 1 and said[0].startswith(f"{tmp_path / 'mine.npy'}: {warned} after dividing by 1 ")
        assert "config.data.normalisation global_max" in said[0]
    split = load_splits(DataSpec.of(config), ("test",))["test"]  # images named after the user's file
    assert split.ids == ["mine/0_0_48x48", "mine/0_48_48x48"] and list(split.norm) == ["mine"]


def test_folder_missing_configured_scenes_names_them(tmp_path):
    import pytest

    from lkca_jax.data.io import DataError, write_cube

    data = tmp_path / "scenes"
    for name in ("balloons", "feathers"):
        write_cube(data / f"{name}.npy", np.ones((32, 32, 31), np.float32))
    config = load_config(f"{ROOT}/configs/cave.py:x4,net")
    config.data.path = str(data)
    with pytest.raises(DataError) as err:
        load_splits(DataSpec.of(config))
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(data))
    assert "lacks 14 configured scene(s): cd, clay," in message  # the 16 of the split, less the two found
    assert "found 2: balloons, feathers" in message
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "train.py", "--config", "configs/cave.py", "--workdir", str(tmp_path / "run"),
                          "--config.data.path", str(data)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [f"error: {message}"]
    assert not (tmp_path / "run").exists()  # nothing written


def test_own_scores_every_scene_of_a_folder_and_still_names_missing_ones(tmp_path):
    """configs/cave.py:...,own: every scene of the folder is a test scene, whatever its name; a scene
    named for another split must still be there (refused naming the folder), and is not tested."""
    from lkca_jax.data.io import write_cube

    for name in ("zebra", "apple", "moon"):
        write_cube(tmp_path / f"{name}.npy", np.full((32, 32, 31), 30000.0, np.float32))  # 16-bit counts
    config = load_config(f"{ROOT}/configs/cave.py:x4,net,own")
    config.data.path = str(tmp_path)
    assert load_splits(DataSpec.of(config), ("test",))["test"].ids == ["apple/0_0_32x32", "moon/0_0_32x32",
                                                                        "zebra/0_0_32x32"]
    config.data.val_scenes = ("moon",)
    assert [i.split("/")[0] for i in load_splits(DataSpec.of(config), ("test",))["test"].ids] == ["apple", "zebra"]
    config.data.train_scenes = ("balloons",)
    with pytest.raises(DataError, match=f"^{tmp_path}: lacks 1 configured scene\\(s\\): balloons; found 3"):
        load_splits(DataSpec.of(config), ("test",))


CAVE_ALL = ["balloons", "beads", "cd", "chart_and_stuffed_toy", "clay", "cloth", "egyptian_statue", "face",
            "fake_and_real_beers", "fake_and_real_food", "fake_and_real_lemon_slices", "fake_and_real_lemons",
            "fake_and_real_peppers", "fake_and_real_strawberries", "fake_and_real_sushi", "fake_and_real_tomatoes",
            "feathers", "flowers", "glass_tiles", "hairs", "jelly_beans", "oil_painting", "paints", "photo_and_face",
            "pompoms", "real_and_fake_apples", "real_and_fake_peppers", "sponges", "stuffed_toys", "superballs",
            "thread_spools", "watercolors"]  # the 32 folders of the official complete_ms_data.zip


def test_all_32_cave_scenes_split_as_configured_and_the_16_are_its_restriction(tmp_path):
    import pytest

    from lkca_jax.data.io import DataError, write_cube

    data = tmp_path / "complete_ms_data"
    for i, name in enumerate(CAVE_ALL):
        write_cube(data / f"{name}.npy", np.full((64, 64, 31), i + 1, np.float32))
    full = load_config(f"{ROOT}/configs/cave.py:x4,net,full")
    full.data.path = str(data)
    splits = load_splits(DataSpec.of(full))
    scenes = {k: {i.split("/")[0] for i in v.ids} for k, v in splits.items()}
    assert len(scenes["train"]) == 19 and scenes["validation"] == {"paints"} and len(scenes["test"]) == 12
    assert set().union(*scenes.values()) == set(CAVE_ALL)  # every scene used exactly once
    assert sum(map(len, scenes.values())) == 32
    small = load_config(f"{ROOT}/configs/cave.py:x4,net")
    held = set(small.data.train_scenes + small.data.val_scenes + small.data.test_scenes)  # ../shared/data/cave
    for name, field in (("train", "train_scenes"), ("validation", "val_scenes"), ("test", "test_scenes")):
        assert set(small.data[field]) == scenes[name] & held
    small.data.path = str(data)
    with pytest.warns(UserWarning, match="16 scene\\(s\\) outside the configured split are not used"):
        load_splits(DataSpec.of(small))
    (data / "oil_painting.npy").unlink()
    with pytest.raises(DataError, match="lacks 1 configured scene\\(s\\): oil_painting;"):
        load_splits(DataSpec.of(full))
    full.data.path = ""
    with pytest.raises(DataError, match="config.data.path is empty"):
        load_splits(DataSpec.of(full))


def test_plots_label_bands_in_nanometres_where_the_dataset_states_its_range():
    from lkca_jax.figures import band_wavelengths

    cave = load_config(str(ROOT / "configs/cave.py"))
    np.testing.assert_allclose(band_wavelengths(cave), np.arange(400, 701, 10))  # CAVE: 31 bands, 10 nm apart
    chikusei = load_config(str(ROOT / "configs/chikusei.py"))
    nm = band_wavelengths(chikusei)
    assert len(nm) == 128 and nm[0] == 363 and nm[-1] == 1018
    assert band_wavelengths(load_config(str(ROOT / "configs/sample.py"))) is None  # Pavia: not stated


def test_a_protocol_that_does_not_fit_the_file_names_it():
    """Pavia Centre's protocol (test images of 224) on a 100 x 100 crop: one line naming the file and
    the fields that set the windows."""
    config = load_config(f"{ROOT}/configs/pavia.py:x4,net")
    config.data.path, config.data.key = str(ROOT / "lkca_jax/data/sample/pavia_rosis_100.npz"), "data"
    with pytest.raises(DataError, match=r"pavia_rosis_100\.npz: 3 test images of 224 do not fit a 100x100 scene "
                                        r"\(config\.data\.test_size"):
        load_splits(DataSpec.of(config))
