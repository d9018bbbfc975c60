"""MATLAB imresize against Pillow's bicubic (same kernel and antialiasing, other border) on
interior pixels, and against hand-derived border weights."""

import jax
import numpy as np
import pytest
from PIL import Image

from lkca_jax.ops.imresize import imresize, imresize_np, output_size


def pillow_resize(band: np.ndarray, out_hw) -> np.ndarray:
    img = Image.fromarray(band.astype(np.float32), mode="F")
    return np.asarray(img.resize((out_hw[1], out_hw[0]), Image.BICUBIC), np.float64)


@pytest.mark.parametrize("factor", [2, 3, 4, 8])
@pytest.mark.parametrize("shrink", [True, False])
def test_interior_matches_pillow(factor, shrink, rng):
    h, w = (96, 72) if shrink else (13, 11)
    x = rng.random((h, w, 3)).astype(np.float32)
    scale = 1 / factor if shrink else factor
    y = imresize_np(x, scale)
    assert y.shape == (output_size(h, scale), output_size(w, scale), 3)
    # Pixels whose kernel support (2 input pixels each side, stretched when shrinking) lies inside.
    m = 3 if shrink else 3 * factor
    for c in range(3):
        ref = pillow_resize(x[..., c], y.shape[:2])
        np.testing.assert_allclose(y[m:-m, m:-m, c], ref[m:-m, m:-m], atol=1e-5)


def test_border_hand_derived():
    # Upscaling by 2, first output pixel: u = 0.75, taps at 1-based positions -1, 0, 1, 2 at distances
    # 1.75, 0.75, -0.25, -1.25 -> Keys(a=-0.5) weights -0.0234375, 0.2265625, 0.8671875, -0.0703125.
    # The mirror border maps -1 -> 2 and 0 -> 1, so out[0] = 1.09375 x[0] - 0.09375 x[1].
    x = np.zeros((4, 4, 1), np.float64)
    x[0, :, 0] = 1.0  # a first row of ones: resize along H only changes the first rows
    y = imresize_np(x, 2)
    assert y.shape == (8, 8, 1)
    np.testing.assert_allclose(y[0, :, 0], 1.09375, atol=1e-12)
    # Second row: taps at 0 (-> 1) and 1 carry -0.0703125 + 0.8671875 of the ones.
    np.testing.assert_allclose(y[1, :, 0], 0.796875, atol=1e-12)
    # Constant images stay constant (weights sum to one, also at the mirrored border).
    np.testing.assert_allclose(imresize_np(np.full((9, 7, 2), 0.3), 1 / 3), 0.3, atol=1e-12)


def test_second_row_by_hand():
    # Second output row: u = 1.25, taps 0..3 at distances 1.25, 0.25, -0.75, -1.75:
    # weights -0.0703125, 0.8671875, 0.2265625, -0.0234375 on positions 0(->1), 1, 2, 3.
    x = np.zeros((4, 1, 1))
    x[:, 0, 0] = [1.0, 2.0, 4.0, 8.0]
    expect = (-0.0703125 + 0.8671875) * 1 + 0.2265625 * 2 - 0.0234375 * 4
    assert abs(imresize_np(x, 2)[1, 0, 0] - expect) < 1e-12


def test_output_size_is_exact_ceil():
    assert output_size(63, 1 / 3) == 21 and output_size(64, 1 / 3) == 22 and output_size(5, 4) == 20


@pytest.mark.parametrize("scale, shape", [(1 / 4, (2, 24, 18, 5)), (1 / 3, (2, 24, 18, 5)),
                                          *((s, shape) for s in (2, 3, 4, 8)
                                            for shape in ((2, 24, 18, 5), (1, 2, 3, 4), (1, 1, 5, 2)))])
def test_jax_matches_numpy(scale, shape, rng):
    # integer upscaling runs the polyphase form (down to 1-pixel lines, where the 4 taps mirror
    # more than once), shrinking the dense matrices; both against float64 NumPy
    x = rng.random(shape).astype(np.float32)
    got = np.asarray(jax.jit(lambda a: imresize(a, scale))(x))
    np.testing.assert_allclose(got, imresize_np(x, scale), atol=1e-6)
