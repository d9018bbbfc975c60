"""Convolutions with a CPU-fast path for depthwise and grouped kernels.

XLA's CPU backend runs ``feature_group_count`` convolutions at about 1 GFLOP/s
and their backward passes slower still (docs/benchmarks.md). The ``fast``
implementations compute the same function with the same parameter shapes as
``nn.Conv(..., feature_group_count=g)``:

* depthwise (g = Cin = Cout): shift-and-add over the k*k taps, with a custom
  VJP: the input gradient is the same shift-and-add with the flipped kernel,
  the weight gradient one channel-batched matrix product per kernel row.
* grouped (1 < g < Cin): im2col over the taps, then one grouped einsum.
* dense (g = 1): XLA's convolution, which is already fast.

``impl='auto'`` picks ``fast`` on CPU and ``xla`` on GPU/TPU. Padding is
PyTorch's ``padding = dilation * (k - 1) // 2`` (zeros), stride 1, odd k.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

IMPLS = ("auto", "xla", "fast")


def resolve_impl(impl: str) -> str:
    if impl not in IMPLS:
        raise ValueError(f"conv_impl must be one of {IMPLS}, got {impl!r}")
    if impl == "auto":
        return "fast" if jax.default_backend() == "cpu" else "xla"
    return impl


def _pad(x: jax.Array, k: int, dilation: int) -> jax.Array:
    p = dilation * (k - 1) // 2
    return jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))


def conv_xla(x: jax.Array, kernel: jax.Array, groups: int = 1, dilation: int = 1) -> jax.Array:
    """Reference: ``lax.conv_general_dilated`` with PyTorch-style symmetric zero padding."""
    p = dilation * (kernel.shape[0] - 1) // 2
    return lax.conv_general_dilated(
        x, kernel, (1, 1), [(p, p), (p, p)], rhs_dilation=(dilation, dilation),
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=groups)


def _shift_add(x: jax.Array, kernel: jax.Array, dilation: int) -> jax.Array:
    k = kernel.shape[0]
    h, w = x.shape[1:3]
    xp = _pad(x, k, dilation)
    out = None
    for i in range(k):
        for j in range(k):
            tap = xp[:, i * dilation:i * dilation + h, j * dilation:j * dilation + w, :] * kernel[i, j, 0]
            out = tap if out is None else out + tap
    return out


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def depthwise_conv(x: jax.Array, kernel: jax.Array, dilation: int = 1) -> jax.Array:
    """Depthwise conv, kernel (k, k, 1, C), by shift-and-add."""
    return _shift_add(x, kernel, dilation)


def _depthwise_fwd(x, kernel, dilation):
    return _shift_add(x, kernel, dilation), (x, kernel)


def _lag_diagonals(q: jax.Array, offsets, w: int) -> jax.Array:
    """For q (..., w, w): sum_x q[..., x + o, x] over valid x, for each lag o -> (..., len(offsets))."""
    xs = np.arange(w)[None, :]
    rows = xs + np.asarray(offsets)[:, None]
    valid = (rows >= 0) & (rows < w)
    vals = q[..., np.clip(rows, 0, w - 1), np.broadcast_to(xs, rows.shape)]
    return jnp.sum(jnp.where(valid, vals, 0), axis=-1)


def _depthwise_bwd(dilation, res, g):
    x, kernel = res
    k = kernel.shape[0]
    n, h, w, c = x.shape
    p = dilation * (k - 1) // 2
    gx = _shift_add(g, kernel[::-1, ::-1], dilation)
    # dW[i, j, c] = sum_{n,y,x} xp[n, y + i d, x + j d, c] g[n, y, x, c]. For each kernel row i,
    # one channel-batched matrix product contracts (n, y) for every column pair (X, x) of the
    # unpadded width; the column lags j d - p are then offset diagonals of that (w, w) matrix.
    # Only x is sliced per row: g is transposed once, whole, so XLA does not re-fuse its
    # (possibly expensive) producer into k separate slices.
    offsets = [j * dilation - p for j in range(k)]
    xt = jnp.pad(jnp.transpose(x, (3, 0, 1, 2)), ((0, 0), (0, 0), (p, p), (0, 0)))  # c, n, h + 2p, w
    gt = jnp.transpose(g, (3, 0, 1, 2))  # c, n, h, w
    rows = [_lag_diagonals(jnp.einsum("cnyX,cnyx->cXx", xt[:, :, i * dilation:i * dilation + h], gt), offsets, w)
            for i in range(k)]
    return gx, jnp.transpose(jnp.stack(rows), (0, 2, 1))[:, :, None, :].astype(kernel.dtype)


depthwise_conv.defvjp(_depthwise_fwd, _depthwise_bwd)


def grouped_conv(x: jax.Array, kernel: jax.Array, groups: int, dilation: int = 1) -> jax.Array:
    """Grouped conv, kernel (k, k, Cin/g, Cout), as im2col plus one grouped einsum."""
    k, _, cig, cout = kernel.shape
    n, h, w, cin = x.shape
    if k == 1:
        taps = x[:, :, :, None, :]
    else:
        xp = _pad(x, k, dilation)
        taps = jnp.stack([xp[:, i * dilation:i * dilation + h, j * dilation:j * dilation + w, :]
                          for i in range(k) for j in range(k)], axis=3)
    taps = taps.reshape(n, h, w, k * k, groups, cig)
    kern = kernel.reshape(k * k, cig, groups, cout // groups)
    return jnp.einsum("nhwtgi,tigo->nhwgo", taps, kern).reshape(n, h, w, cout)


def conv(x: jax.Array, kernel: jax.Array, groups: int = 1, dilation: int = 1, impl: str = "auto") -> jax.Array:
    """Dispatch one convolution to the implementation ``impl`` selects."""
    if resolve_impl(impl) == "xla" or groups == 1:
        return conv_xla(x, kernel, groups, dilation)
    if kernel.shape[2] == 1 and groups == x.shape[-1] == kernel.shape[-1]:
        return depthwise_conv(x, kernel, dilation)
    return grouped_conv(x, kernel, groups, dilation)


def torch_kernel_init(key, shape, dtype=jnp.float32):
    """PyTorch's default conv/linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    return nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")(key, shape, dtype)


class Conv(nn.Module):
    """2-D convolution with ``nn.Conv``'s parameter shapes and a selectable implementation."""

    features: int
    kernel_size: int = 3
    groups: int = 1
    dilation: int = 1
    use_bias: bool = True
    impl: str = "auto"
    kernel_init: Callable[..., Any] = torch_kernel_init

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        cin = x.shape[-1]
        if self.kernel_size % 2 == 0:
            raise ValueError(f"Conv: kernel_size must be odd, got {self.kernel_size}")
        if cin % self.groups or self.features % self.groups:
            raise ValueError(f"Conv: groups={self.groups} must divide in ({cin}) and out ({self.features}) channels")
        k = self.kernel_size
        kernel = self.param("kernel", self.kernel_init, (k, k, cin // self.groups, self.features))
        y = conv(x, kernel.astype(x.dtype), self.groups, self.dilation, self.impl)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(x.dtype)
        return y
