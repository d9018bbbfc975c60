"""PixelShuffle and PixelUnshuffle in PyTorch's channel order, on NHWC arrays."""

import jax
import jax.numpy as jnp


def pixel_shuffle(x: jax.Array, r: int) -> jax.Array:
    """(N, h, w, C*r*r) -> (N, h*r, w*r, C) with out[n, h*r+i, w*r+j, c] = x[n, h, w, c*r*r + i*r + j]."""
    n, h, w, crr = x.shape
    if crr % (r * r):
        raise ValueError(f"pixel_shuffle: {crr} channels are not a multiple of r*r = {r * r}")
    c = crr // (r * r)
    x = x.reshape(n, h, w, c, r, r)
    return jnp.transpose(x, (0, 1, 4, 2, 5, 3)).reshape(n, h * r, w * r, c)


def pixel_unshuffle(x: jax.Array, r: int) -> jax.Array:
    """The inverse of :func:`pixel_shuffle`: (N, h*r, w*r, C) -> (N, h, w, C*r*r)."""
    n, hr, wr, c = x.shape
    if hr % r or wr % r:
        raise ValueError(f"pixel_unshuffle: spatial size {hr}x{wr} is not a multiple of r = {r}")
    x = x.reshape(n, hr // r, r, wr // r, r, c)
    return jnp.transpose(x, (0, 1, 3, 5, 2, 4)).reshape(n, hr // r, wr // r, c * r * r)
