"""MSDformer's deformable convolution (lkca_jax.ops.deform) against an independent NumPy bilinear
sampler written point by point: values, the input gradient and the offset gradient, with offsets
large enough that many sample points leave the image (where the public code clamps)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lkca_jax.ops.deform import deform_conv, deform_sample


def numpy_sample(img, y, x):
    """Bilinear value of img (H, W, C) at real (y, x), zero outside, and d/dy, d/dx, and the four
    (row, col, weight) neighbours it reads."""
    h, w, c = img.shape
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    fy, fx = y - y0, x - x0
    val = lambda r, q: img[r, q] if 0 <= r < h and 0 <= q < w else np.zeros(c)
    a, b, cc, d = val(y0, x0), val(y0, x0 + 1), val(y0 + 1, x0), val(y0 + 1, x0 + 1)
    value = (1 - fy) * (1 - fx) * a + (1 - fy) * fx * b + fy * (1 - fx) * cc + fy * fx * d
    dy = -(1 - fx) * a - fx * b + (1 - fx) * cc + fx * d
    dx = -(1 - fy) * a + (1 - fy) * b - fy * cc + fy * d
    corners = [(y0, x0, (1 - fy) * (1 - fx)), (y0, x0 + 1, (1 - fy) * fx), (y0 + 1, x0, fy * (1 - fx)),
               (y0 + 1, x0 + 1, fy * fx)]
    return value, dy, dx, [(r, q, wt) for r, q, wt in corners if 0 <= r < h and 0 <= q < w]


def numpy_reference(x, offsets, cot):
    """Samples (N, H, W, 9, C) and the VJP of <cot, samples> w.r.t. x and offsets."""
    n, h, w, c = x.shape
    out, gx, goff = np.zeros((n, h, w, 9, c)), np.zeros_like(x), np.zeros_like(offsets)
    for b in range(n):
        for i in range(h):
            for j in range(w):
                for t in range(9):
                    py = i + t // 3 - 1 + offsets[b, i, j, t]
                    px = j + t % 3 - 1 + offsets[b, i, j, 9 + t]
                    value, dy, dx, corners = numpy_sample(x[b], py, px)
                    out[b, i, j, t] = value
                    g = cot[b, i, j, t]
                    goff[b, i, j, t], goff[b, i, j, 9 + t] = g @ dy, g @ dx
                    for r, q, wt in corners:
                        gx[b, r, q] += wt * g
    return out, gx, goff


@pytest.fixture
def case(rng):
    n, h, w, c = 2, 5, 6, 3
    x = rng.normal(size=(n, h, w, c))
    offsets = rng.uniform(-3, 3, size=(n, h, w, 18))  # many points outside the 5 x 6 image
    frac = np.abs(offsets - np.round(offsets))
    offsets = np.where(frac < 1e-2, offsets + 0.1, offsets)  # away from the floor's kinks
    return x, offsets, rng.normal(size=(n, h, w, 9, c))


def test_samples_and_both_gradients_match_numpy(case):
    x, offsets, cot = case
    want, want_gx, want_goff = numpy_reference(x, offsets, cot)
    outside = [(i + t // 3 - 1 + offsets[..., i, :, t]) for i in range(5) for t in range(9)]
    assert np.mean(np.concatenate(outside) < -1) > 0.05  # the clamped region is exercised
    got, vjp = jax.vjp(lambda a, o: deform_sample(a, o), jnp.asarray(x, jnp.float32), jnp.asarray(offsets, jnp.float32))
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-5)
    gx, goff = vjp(jnp.asarray(cot, jnp.float32))
    np.testing.assert_allclose(np.asarray(gx), want_gx, atol=1e-4)
    np.testing.assert_allclose(np.asarray(goff), want_goff, atol=1e-4)


def test_zero_offsets_make_an_ordinary_3x3_conv(rng):
    x = rng.normal(size=(1, 7, 6, 4)).astype(np.float32)
    kernel = rng.normal(size=(3, 3, 4, 5)).astype(np.float32)
    got = deform_conv(x, np.zeros((1, 7, 6, 18), np.float32), kernel)
    want = jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)


def test_deform_conv_is_the_kernel_sum_over_samples(case, rng):
    x, offsets, _ = case
    kernel = rng.normal(size=(3, 3, 3, 4))
    samples, _, _ = numpy_reference(x, offsets, np.zeros((*x.shape[:3], 9, 3)))
    want = np.einsum("nhwtc,tco->nhwo", samples, kernel.reshape(9, 3, 4))
    got = deform_conv(jnp.asarray(x, jnp.float32), jnp.asarray(offsets, jnp.float32), jnp.asarray(kernel, jnp.float32))
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-4)
    with pytest.raises(ValueError, match="offsets"):
        deform_sample(jnp.zeros((1, 4, 4, 2)), jnp.zeros((1, 4, 4, 9)))
