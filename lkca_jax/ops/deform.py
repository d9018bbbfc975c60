"""Deformable convolution v1 (Dai et al. 2017) as MSDformer's ``DeformConv2d`` computes it.

For an (N, H, W, C) input, a k x k kernel (MSDformer: 3 x 3) and offsets (N, H, W, 2 k^2) from its
``p_conv`` (channels ``0..k^2-1`` are row offsets and ``k^2..2k^2-1`` column offsets, of the taps
in row-major (i, j) order), tap (i, j) of output pixel (y, x) reads the input at

    (y + i - (k-1)/2 + dy, x + j - (k-1)/2 + dx)

by bilinear interpolation (docs/design.md section 8.2). The public code works in the coordinates of
the input zero-padded by (k-1)/2, clamps the point and its floor/floor+1 neighbours to that padded
extent and bilinearly weights the four neighbours. Because the padding ring is zero, that equals
bilinear sampling with zeros everywhere outside the image, values and gradients (a clamped point
only ever meets zero neighbours, whose interpolation has zero slope): that is what is computed here.

The samples are gathered as whole channel vectors (NHWC: one row of the flattened image per
neighbour), weighted, and contracted with the (k, k, C, O) kernel as one matrix product: the
public code's stride-k convolution over the (kH, kW) tiling of the samples is the same sum.
``bench/deform.py`` measures this against the alternatives (docs/benchmarks.md).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


def deform_sample(x: jax.Array, offsets: jax.Array, k: int = 3) -> jax.Array:
    """(N, H, W, C), (N, H, W, 2 k^2) -> the k^2 bilinear samples per pixel, (N, H, W, k^2, C)."""
    n, h, w, c = x.shape
    kk = k * k
    if offsets.shape != (n, h, w, 2 * kk):
        raise ValueError(f"deform_sample: offsets {offsets.shape} must be (N, H, W, 2*k*k) = {(n, h, w, 2 * kk)}")
    ti, tj = np.divmod(np.arange(kk), k)
    r = (k - 1) // 2
    # positions and bilinear weights in float32 whatever x's dtype: a bfloat16 position past 256 pixels
    # would be rounded to an even pixel; the samples come back in x's dtype
    offsets = offsets.astype(jnp.float32)
    py = (np.arange(h)[:, None, None] + (ti - r)).astype(np.float32) + offsets[..., :kk]  # (N, H, W, k^2)
    px = (np.arange(w)[None, :, None] + (tj - r)).astype(np.float32) + offsets[..., kk:]
    y0, x0 = lax.stop_gradient(jnp.floor(py)), lax.stop_gradient(jnp.floor(px))
    fy, fx = py - y0, px - x0
    # one zero row/column around the image: every neighbour outside it is read from there
    flat = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))).reshape(n, (h + 2) * (w + 2), c)
    iy0 = jnp.clip(y0.astype(jnp.int32) + 1, 0, h + 1)
    iy1 = jnp.clip(y0.astype(jnp.int32) + 2, 0, h + 1)
    ix0 = jnp.clip(x0.astype(jnp.int32) + 1, 0, w + 1)
    ix1 = jnp.clip(x0.astype(jnp.int32) + 2, 0, w + 1)

    def at(iy, ix):
        idx = (iy * (w + 2) + ix).reshape(n, h * w * kk)
        return jax.vmap(lambda img, i: img[i])(flat, idx).reshape(n, h, w, kk, c)

    wy0, wx0 = (1 - fy)[..., None], (1 - fx)[..., None]
    wy1, wx1 = fy[..., None], fx[..., None]
    out = wy0 * (wx0 * at(iy0, ix0) + wx1 * at(iy0, ix1)) + wy1 * (wx0 * at(iy1, ix0) + wx1 * at(iy1, ix1))
    return out.astype(x.dtype)


def deform_conv(x: jax.Array, offsets: jax.Array, kernel: jax.Array) -> jax.Array:
    """Deformable conv with a (k, k, C, O) kernel, no bias: sum over taps of kernel[i, j] . sample_ij."""
    k, _, c, o = kernel.shape
    samples = deform_sample(x, offsets, k)
    return jnp.einsum("nhwtc,tco->nhwo", samples, kernel.reshape(k * k, c, o))
