"""Split protocols: counts as the paper's, pixel-disjoint test and training sets, seeded determinism."""

import numpy as np
import pytest

from conftest import ROOT
from lkca_jax.config import load_config
from lkca_jax.data import protocols as P
from lkca_jax.data.registry import DATASETS
from lkca_jax.data.scenes import windows
from lkca_jax.data.spec import DataSpec


def strip(dataset, scale, shape=None, seed=0):
    """The splits configs/<dataset>.py gives a scene of ``shape`` (default: Chikusei's crop)."""
    config = load_config(f"{ROOT}/configs/{dataset}.py:x{scale}")
    config.data.seed = seed
    r0, r1, c0, c1 = DATASETS["chikusei"].crop
    return windows(DataSpec.of(config), {dataset: shape or (r1 - r0, c1 - c0)})


def covered(windows, shape):
    mask = np.zeros(shape, bool)
    for w in windows:
        mask[w.top:w.top + w.height, w.left:w.left + w.width] = True
    return mask


def test_chikusei_counts_and_geometry():
    s4 = strip("chikusei", 4)
    # SSPSR: 3465 x4 training patches (64, stride 32) before the 10% validation split.
    assert len(s4["train"]) + len(s4["validation"]) == 3465
    assert len(s4["validation"]) == 346  # round(346.5) to even
    assert [(w.top, w.left, w.height) for w in s4["test"]] == [(0, 0, 512), (0, 512, 512), (0, 1024, 512),
                                                               (0, 1536, 512)]
    s8 = strip("chikusei", 8)
    assert len(s8["train"]) + len(s8["validation"]) == 27 * 31  # 128 stride 64 over 1792 x 2048
    assert {w.height for w in s8["train"]} == {128}


def test_chikusei_crop_shape():
    entry = DATASETS["chikusei"]
    raw = np.zeros((2517, 2335, 1), np.float32)
    raw[106, 143], raw[2409, 2190] = 1, 2  # the first and last pixel of the 1-based range 107:2410, 144:2191
    cropped = P.crop_region(raw, entry.crop, entry.raw_shape)
    assert cropped.shape == (2304, 2048, 1) and cropped[0, 0, 0] == 1 and cropped[-1, -1, 0] == 2
    with pytest.raises(ValueError, match="2517x2335"):
        P.crop_region(raw[:-1], entry.crop, entry.raw_shape)


@pytest.mark.parametrize("make", [lambda: strip("chikusei", 4), lambda: strip("houston", 4, (1202, 4172)),
                                  lambda: strip("pavia", 8, (1096, 715))])
def test_test_pixels_never_in_training(make):
    splits = make()
    h = max(w.top + w.height for ws in splits.values() for w in ws)
    wd = max(w.left + w.width for ws in splits.values() for w in ws)
    test = covered(splits["test"], (h, wd))
    assert not np.any(test & covered(splits["train"] + splits["validation"], (h, wd)))
    # Test images do not overlap each other.
    assert test.sum() == sum(w.height * w.width for w in splits["test"])


def test_houston_and_pavia_tests():
    assert [w.left for w in strip("houston", 4, (1202, 4172))["test"]] == [256 * i for i in range(8)]
    pv = strip("pavia", 4, (1096, 715))
    assert [(w.left, w.height) for w in pv["test"]] == [(0, 224), (224, 224), (448, 224)]
    assert max(w.left + w.width for w in pv["train"]) <= 715


def test_validation_is_seeded():
    a, b, c = strip("chikusei", 4, seed=1), strip("chikusei", 4, seed=1), strip("chikusei", 4, seed=2)
    assert a == b and a["validation"] != c["validation"]
    assert not set(a["train"]) & set(a["validation"])


def test_scene_protocol_rejects_overlap_and_unknown():
    shapes = {"a": (64, 64), "b": (64, 64), "c": (50, 70)}
    splits = P.scenes(shapes, 4, train=["a"], validation=["b"], test=["c"])
    assert splits["test"] == [P.Window("c", 0, 0, 48, 68)]  # cropped to a multiple of 4
    assert len(splits["train"]) == 1  # default patch 16 r = 64 fits a 64 x 64 scene once
    assert len(P.scenes(shapes, 4, ["a"], ["b"], ["c"], patch_size=32, stride=16)["train"]) == 3 * 3
    with pytest.raises(ValueError, match="more than one split"):
        P.scenes(shapes, 4, train=["a"], validation=["a"], test=["c"])
    with pytest.raises(ValueError, match="zzz"):
        P.scenes(shapes, 4, train=["zzz"], validation=[], test=["c"])


def test_folder_protocol_deterministic():
    shapes = {f"s{i}": (80, 80) for i in range(10)}
    a = P.folder(shapes, 2, seed=3)
    assert a == P.folder(shapes, 2, seed=3)
    assert len(a["test"]) == 2 and len(a["validation"]) == 1
    assert {w.scene for w in a["train"]}.isdisjoint({w.scene for w in a["test"] + a["validation"]})


def test_normalise_keeps_negatives():
    cube = np.array([[[-50.0, 100.0], [200.0, 400.0]]])
    out, c = P.normalise(cube, "global_max")
    assert c == 400.0 and out.min() == -0.125
    out, c = P.normalise(cube, "constant", 8000)
    assert c == 8000.0 and np.isclose(out.max(), 0.05)
    with pytest.raises(ValueError):
        P.normalise(cube, "constant")


def test_degrade_is_antialiased_bicubic():
    """Against Pillow's bicubic (the same Keys kernel, stretched by r when shrinking) on the pixels whose
    support lies inside the image; a constant image stays that constant everywhere, borders included."""
    from PIL import Image

    hr = np.random.default_rng(0).random((64, 48, 3)).astype(np.float32)
    lr = P.degrade(hr, 4)
    assert lr.shape == (16, 12, 3) and lr.dtype == np.float32
    for c in range(3):
        ref = np.asarray(Image.fromarray(hr[..., c], mode="F").resize((12, 16), Image.BICUBIC), np.float64)
        np.testing.assert_allclose(lr[3:-3, 3:-3, c], ref[3:-3, 3:-3], atol=1e-5)
    np.testing.assert_allclose(P.degrade(np.full((32, 32, 2), 0.25, np.float32), 8), 0.25, atol=1e-6)
    with pytest.raises(ValueError, match="multiple"):
        P.degrade(hr[:30], 4)
