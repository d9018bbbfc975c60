"""Convolutions with a CPU-fast path for depthwise, grouped and dense kernels.

XLA's CPU backend runs ``feature_group_count`` convolutions at about 1 GFLOP/s
and their backward passes slower still (docs/benchmarks.md). The ``fast``
implementations compute the same function with the same parameter shapes as
``nn.Conv(..., feature_group_count=g)``:

* depthwise (g = Cin = Cout): shift-and-add over the k*k taps, with a custom
  VJP: the input gradient is the same shift-and-add with the flipped kernel,
  the weight gradient one channel-batched matrix product.
* other grouped (1 < g < Cin, e.g. LKCA's 1x1 fusion conv, LKCA-LR's
  upsampler): group-major im2col columns times per-group matrices, one
  group-batched product.
* dense (g = 1): XLA's convolution forward; 1x1 as a matrix product, which XLA:CPU runs
  about 2x faster than its convolution on large maps, with the next element-wise op fused in;
  3x3 (dilation 1) by Winograd's F(2x2, 3x3) on maps of 1024 output pixels and 128 input and
  output channels up to 512 MB of transformed values: 16 matrix products with 2.25x fewer
  multiply-adds, 1.3-1.6x faster than XLA's convolution there (about even at 240 -> 128), slower
  on smaller maps; larger transforms slowed whole models down (docs/benchmarks.md); k x k with
  64 output channels by kernel rows (:func:`row_tap_conv`) while their products stay in cache.
* backward, grouped and 1x1: a custom VJP of im2col matrix products, with the
  bias inside, that reads the cotangent once (XLA's own convolution backward on
  CPU is slower, and the autodiff of the grouped einsum re-computed the
  cotangent in each of its transposes; the measurements are in docs/benchmarks.md).
* backward, dense k x k: Winograd's own gradients where the forward is
  Winograd's; with fewer output than input channels the kernel gradient from
  the cotangent's im2col columns and the input gradient as a transposed conv
  (:func:`_dense_bwd`); otherwise the grouped path's im2col products.

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


def _im2col(x: jax.Array, k: int, dilation: int) -> jax.Array:
    """(n, h, w, c) -> the k*k shifted, zero-padded views, tap-major: (n, h, w, k*k, c)."""
    if k == 1:
        return x[:, :, :, None, :]
    h, w = x.shape[1:3]
    xp = _pad(x, k, dilation)
    return jnp.stack([xp[:, i * dilation:i * dilation + h, j * dilation:j * dilation + w, :]
                      for i in range(k) for j in range(k)], axis=3)


def _col2im(cols: jax.Array, k: int, dilation: int) -> jax.Array:
    """The adjoint of :func:`_im2col`: (n, h, w, k*k, c) -> (n, h, w, c), each tap shifted back and summed."""
    if k == 1:
        return cols[:, :, :, 0, :]
    h, w = cols.shape[1:3]
    p = dilation * (k - 1) // 2
    cp = jnp.pad(cols, ((0, 0), (p, p), (p, p), (0, 0), (0, 0)))
    out = None
    for i in range(k):
        for j in range(k):
            y0, x0 = 2 * p - i * dilation, 2 * p - j * dilation
            tap = cp[:, y0:y0 + h, x0:x0 + w, i * k + j, :]
            out = tap if out is None else out + tap
    return out


def conv_xla(x: jax.Array, kernel: jax.Array, groups: int = 1, dilation: int = 1) -> jax.Array:
    """Reference: ``lax.conv_general_dilated`` with PyTorch-style symmetric zero padding."""
    p = dilation * (kernel.shape[0] - 1) // 2
    return lax.conv_general_dilated(
        x, kernel, (1, 1), [(p, p), (p, p)], rhs_dilation=(dilation, dilation),
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=groups)


def _shift_add_block(x: jax.Array, kernel: jax.Array, dilation: int) -> jax.Array:
    k = kernel.shape[0]
    h, w = x.shape[1:3]
    xp = _pad(x, k, dilation)
    out = None
    for i in range(k):
        for j in range(k):
            tap = xp[:, i * dilation:i * dilation + h, j * dilation:j * dilation + w, :] * kernel[i, j, 0]
            out = tap if out is None else out + tap
    return out


def _shift_add(x: jax.Array, kernel: jax.Array, dilation: int) -> jax.Array:
    # Two channel halves joined by a concatenate on the channel axis: XLA's CPU fusion never fuses
    # a minor-dimension concatenate into its consumers, so the result is computed once and stored.
    # As one fused sum, XLA re-computes all k*k taps inside every consumer (the next conv's taps,
    # the backward's transposes), several times slower (docs/benchmarks.md, "What was slow").
    c = x.shape[-1]
    if c < 2:
        return _shift_add_block(x, kernel, dilation)
    half = c // 2
    return jnp.concatenate([_shift_add_block(x[..., :half], kernel[..., :half], dilation),
                            _shift_add_block(x[..., half:], kernel[..., half:], dilation)], axis=-1)


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
    # dW[i, j, c] = sum_{n,y,x} xp[n, y + i d, x + j d, c] g[n, y, x, c]. One channel-batched matrix
    # product contracts (n, y) between g and the k row-shifted copies of x, for every column pair
    # (x, X) of the unpadded width; the column lags j d - p are offset diagonals of each (w, w) block.
    offsets = [j * dilation - p for j in range(k)]
    xt = jnp.pad(jnp.transpose(x, (3, 0, 1, 2)), ((0, 0), (0, 0), (p, p), (0, 0)))  # c, n, h + 2p, w
    xs = jnp.stack([xt[:, :, i * dilation:i * dilation + h] for i in range(k)], axis=3)  # c, n, h, i, X
    gt = jnp.transpose(g, (3, 2, 0, 1)).reshape(c, w, n * h)  # c, x, (n y)
    q = jnp.einsum("cxm,cmN->cxN", gt, xs.reshape(c, n * h, k * w)).reshape(c, w, k, w)  # c, x, i, X
    gk = _lag_diagonals(jnp.transpose(q, (0, 2, 3, 1)), offsets, w)  # c, i, j
    return gx, jnp.transpose(gk, (1, 2, 0))[:, :, None, :].astype(kernel.dtype)


depthwise_conv.defvjp(_depthwise_fwd, _depthwise_bwd)


def _group_cols(x: jax.Array, k: int, dilation: int, groups: int) -> jax.Array:
    """(n, h, w, Cin) -> each group's im2col columns, group-major: (groups, n*h*w, k*k*Cin/groups)."""
    n, h, w, cin = x.shape
    xg = x.reshape(n, h, w, groups, cin // groups).transpose(3, 0, 1, 2, 4).reshape(groups * n, h, w, -1)
    return _im2col(xg, k, dilation).reshape(groups, n * h * w, -1)


def _group_kernel(kernel: jax.Array, groups: int) -> jax.Array:
    """Grouped kernel (k, k, Cin/g, Cout) -> per-group matrices (g, k*k*Cin/g, Cout/g)."""
    k, _, cig, cout = kernel.shape
    return kernel.reshape(k * k * cig, groups, cout // groups).transpose(1, 0, 2)


# Winograd F(2x2, 3x3) (Lavin and Gray 2016): Y = A^T [(G g G^T) * (B^T d B)] A per 4x4 input tile d.
# Where it is used (docs/benchmarks.md, "Dense 3x3 convolutions by Winograd"): from 1024 output pixels
# and 128 input and output channels, where the conv alone beat XLA's, while one image's transformed
# tensors (16 x tiles x channels) stay under 2^27 values (512 MB in float32). A batch whose tensors
# would pass that runs in chunks of images, one after another (:func:`winograd_chunks`): whole, such
# tensors (1-6 GB for SSPSR's 21 band groups at the paper's 512 x 512 test size) made the models
# slower than XLA's convolution although fewer multiply-adds; in chunks the same convs are 1.4-1.8x
# faster than XLA's (docs/benchmarks.md, "Winograd in batch chunks"). The cap is the forward's: the
# backward (:func:`_dense_bwd`) takes Winograd's terms at every size from the same minimums (one
# image a chunk past the cap), since the alternative, im2col columns of 9 x the input, needs 2.25x
# the memory (ESSAformer's x4 train step at batch 16: XLA's estimate 10.6 GiB with the columns, 8.4
# with Winograd's terms; docs/benchmarks.md, "The dense convolution's backward").
WINOGRAD_MIN_PIXELS = 1024  # output pixels, N H W
WINOGRAD_MIN_CHANNELS = 128  # input and output channels each
WINOGRAD_MAX_VALUES = 2 ** 27  # values of a chunk's largest transformed tensor, 16 N ceil(H/2) ceil(W/2) max(Cin, Cout)


def _winograd_bt(d):
    """B^T along one tile axis, on its 4 entries."""
    return [d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]]


def _winograd_g(g):
    """G along one kernel axis: 3 taps -> 4 (an einsum with G took 10x longer: XLA transposes for it)."""
    return [g[0], 0.5 * (g[0] + g[1] + g[2]), 0.5 * (g[0] - g[1] + g[2]), g[2]]


def _winograd_at(m):
    """A^T along one tile axis: 4 entries -> the 2 outputs."""
    return [m[0] + m[1] + m[2], m[1] - m[2] - m[3]]


def _winograd_gt(u):
    """The adjoint of G along one kernel axis: 4 transformed taps' cotangents -> the 3 taps'."""
    return [u[0] + 0.5 * (u[1] + u[2]), 0.5 * (u[1] - u[2]), 0.5 * (u[1] + u[2]) + u[3]]


def _winograd_input(x: jax.Array) -> jax.Array:
    """B^T d B for every overlapping 4x4 tile (stride 2) of the zero-padded input (N, H, W, C), odd H
    or W padded to whole tiles: (16, N ceil(H/2) ceil(W/2), C), the 16 transformed entries first."""
    n, h, w, c = x.shape
    h2, w2 = -(-h // 2), -(-w // 2)
    xp = jnp.pad(x, ((0, 0), (1, 1 + 2 * h2 - h), (1, 1 + 2 * w2 - w), (0, 0)))
    tiles = [[xp[:, a:a + 2 * h2:2, b:b + 2 * w2:2] for b in range(4)] for a in range(4)]
    cols = [_winograd_bt([tiles[a][b] for a in range(4)]) for b in range(4)]  # cols[b][alpha]
    v = [_winograd_bt([cols[b][al] for b in range(4)]) for al in range(4)]  # v[alpha][beta]
    return jnp.stack([v[al][be] for al in range(4) for be in range(4)]).reshape(16, n * h2 * w2, c)


def _winograd_kernel(kernel: jax.Array) -> jax.Array:
    """G g G^T of a (3, 3, C, O) kernel: (16, C, O), the 16 transformed taps first."""
    taps = [_winograd_g([kernel[i, j] for i in range(3)]) for j in range(3)]  # taps[j][alpha]
    u = [_winograd_g([taps[j][al] for j in range(3)]) for al in range(4)]  # u[alpha][beta]
    return jnp.stack([u[al][be] for al in range(4) for be in range(4)])


def static(*dims) -> bool:
    """Whether every dim is a concrete int (not one of ``export``'s symbolic dims): the size rules
    below decide only on those."""
    return all(isinstance(d, (int, np.integer)) for d in dims)


def _split(a: jax.Array, chunks: int) -> jax.Array:
    """(N, ...) -> (chunks, N / chunks, ...)."""
    return a.reshape(chunks, a.shape[0] // chunks, *a.shape[1:])


def batch_chunks(shape, per_image: int, cap: int) -> int:
    """How many equal batch chunks a (N, H, W, C) input runs in when each image needs ``per_image``
    values of temporaries: the fewest that divide N and keep a chunk's under ``cap``; N (one image a
    chunk) when one image alone reaches it; 1 (whole) for a symbolic or empty batch."""
    n = shape[0]
    if not static(n, *shape[1:3]) or n < 1:
        return 1
    return next((d for d in range(1, n + 1) if n % d == 0 and n // d * per_image < cap), n)


def winograd_chunks(shape, channels: int) -> int:
    """How many batch chunks :func:`winograd_conv3x3` and its backward take a (N, H, W, C) input in:
    each chunk's transformed tensors (16 x tiles x ``channels``) under ``WINOGRAD_MAX_VALUES``."""
    h, w = shape[1:3]
    return batch_chunks(shape, 16 * -(-h // 2) * -(-w // 2) * channels if static(h, w) else 0, WINOGRAD_MAX_VALUES)


def _in_chunks(f, chunks: int, *arrays):
    """``f`` over ``chunks`` equal batch slices of ``arrays`` in sequence (``lax.map``), its outputs
    joined again: one chunk's temporaries live at a time."""
    if chunks == 1:
        return f(*arrays)
    out = jax.lax.map(lambda a: f(*a), [_split(a, chunks) for a in arrays])
    return jax.tree.map(lambda y: y.reshape(-1, *y.shape[2:]), out)


def _winograd_apply(x: jax.Array, u: jax.Array) -> jax.Array:
    """:func:`winograd_conv3x3` of one chunk, with the kernel already transformed (``u``)."""
    n, h, w, _ = x.shape
    o = u.shape[-1]
    h2, w2 = -(-h // 2), -(-w // 2)
    m = jnp.einsum("tpc,tco->tpo", _winograd_input(x), u).reshape(4, 4, n, h2, w2, o)
    rows = [_winograd_at([m[al, be] for al in range(4)]) for be in range(4)]  # rows[beta][i]
    y = [jnp.stack(_winograd_at([rows[be][i] for be in range(4)]), axis=3) for i in range(2)]  # (n, h2, w2, 2, o)
    return jnp.stack(y, axis=2).reshape(n, 2 * h2, 2 * w2, o)[:, :h, :w]


def winograd_conv3x3(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Dense 3x3 conv (stride 1, dilation 1, zero padding 1) of (N, H, W, C) by a (3, 3, C, O) kernel as
    Winograd's F(2x2, 3x3): the input in overlapping 4x4 tiles at stride 2, each transformed
    (B^T d B: additions only), 16 (tiles x C) @ (C x O) matrix products with the transformed kernel
    (G g G^T, once), and the 2x2 outputs transformed back (A^T m A). Odd H or W are padded and
    cropped. A large batch runs in chunks (:func:`winograd_chunks`), one after another."""
    chunks = winograd_chunks(x.shape, max(x.shape[-1], kernel.shape[-1]))
    return _in_chunks(functools.partial(_winograd_apply, u=_winograd_kernel(kernel)), chunks, x)


# The backward's adjoint transforms as matrices (the forward's as additions above): A^T (2 x 4) and
# B^T (4 x 4), each applied along both tile axes.
_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float32)
_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float32)
_AT2 = np.einsum("ia,jb->abij", _AT, _AT).reshape(16, 2, 2)  # output cotangents (i, j) -> the 16 entries'
_BT2 = np.einsum("sa,tb->abst", _BT, _BT).reshape(16, 16)  # transformed entries -> the tile's 16 inputs


def winograd_conv3x3_vjp(x: jax.Array, kernel: jax.Array, g: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The input and kernel gradients of :func:`winograd_conv3x3` for the output cotangent ``g``, in
    Winograd's terms rather than by autodiff (whose pads and sums of the 16 slices' cotangents cost
    more than the products): the cotangent of each 2x2 output tile through A (one product with a
    16 x 4 constant, which also reads ``g`` once, where slices of it would each re-compute its
    producer), then the kernel's gradient as 16 (C x tiles) @ (tiles x O) products with the input's
    transform (recomputed, not stored) taken back through G^T, and the input's as 16 (tiles x O) @
    (O x C) products with the transformed kernel taken back through B and added where the 4x4
    tiles overlap. In the forward's batch chunks, the kernel's transformed gradient summed over them."""
    c, o = x.shape[-1], kernel.shape[-1]
    chunks = winograd_chunks(x.shape, max(c, o))
    u = _winograd_kernel(kernel)

    def chunk(total, xg):
        gu, gx = _winograd_chunk_vjp(*xg, u)
        return total + gu.astype(total.dtype), gx

    if chunks == 1:
        gu, gx = _winograd_chunk_vjp(x, g, u)
    else:  # the chunks' shares summed in float32 whatever the compute dtype, then cast back
        dtype = jnp.result_type(x, g)
        gu, gx = jax.lax.scan(chunk, jnp.zeros((16, c, o), jnp.float32), (_split(x, chunks), _split(g, chunks)))
        gu, gx = gu.astype(dtype), gx.reshape(x.shape)
    gu = gu.reshape(4, 4, c, o)
    taps = [_winograd_gt([gu[al, be] for al in range(4)]) for be in range(4)]  # taps[beta][i]
    return gx, jnp.stack([jnp.stack(_winograd_gt([taps[be][i] for be in range(4)])) for i in range(3)])


def _winograd_chunk_vjp(x: jax.Array, g: jax.Array, u: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One batch chunk's share of :func:`winograd_conv3x3_vjp`: the transformed kernel's gradient
    (16, C, O) and the input's gradient."""
    n, h, w, c = x.shape
    o = u.shape[-1]
    h2, w2 = -(-h // 2), -(-w // 2)
    gp = jnp.pad(g, ((0, 0), (0, 2 * h2 - h), (0, 2 * w2 - w), (0, 0))).reshape(n, h2, 2, w2, 2, o)
    dm = jnp.einsum("tij,nyixjo->tnyxo", _AT2.astype(g.dtype), gp).reshape(16, n * h2 * w2, o)
    gu = jnp.einsum("tpc,tpo->tco", _winograd_input(x), dm)
    dv = jnp.einsum("tpo,tco->tpc", dm, u)
    # d[q, r, q', s]: the cotangent of tile entry (2q + r, 2q' + s), which sits at padded pixel
    # (2 (y + q) + r, 2 (x + q') + s) of tile (y, x): summed per parity (r, s), then interleaved.
    d = jnp.einsum("st,tpc->spc", _BT2.astype(g.dtype), dv).reshape(2, 2, 2, 2, n, h2, w2, c)
    par = [jnp.stack([sum(jnp.pad(d[q, r, q2, s], ((0, 0), (q, 1 - q), (q2, 1 - q2), (0, 0)))
                          for q in range(2) for q2 in range(2)) for s in range(2)], axis=3) for r in range(2)]
    gxp = jnp.stack(par, axis=2).reshape(n, 2 * h2 + 2, 2 * w2 + 2, c)
    return gu, gxp[:, 1:1 + h, 1:1 + w]


def uses_winograd(x: jax.Array, kernel: jax.Array, dilation: int = 1, capped: bool = True) -> bool:
    """Whether the fast path computes this dense conv by :func:`winograd_conv3x3` (shapes only; never
    for symbolic shapes, as ``export`` traces them: those keep XLA's convolution). The cap is one
    image's: a batch over it runs in chunks. ``capped=False`` drops it: the backward's test."""
    if not static(*x.shape, *kernel.shape):
        return False
    n, h, w, c = x.shape
    return (kernel.shape[0] == 3 and dilation == 1 and n * h * w >= WINOGRAD_MIN_PIXELS
            and min(c, kernel.shape[-1]) >= WINOGRAD_MIN_CHANNELS
            and (not capped or 16 * -(-h // 2) * -(-w // 2) * max(c, kernel.shape[-1]) < WINOGRAD_MAX_VALUES))


def columns_smaller(x: jax.Array, kernel: jax.Array) -> bool:
    """Whether a dense conv's im2col columns (pixels x k k Cin) are smaller than its kernel (k k Cin x
    Cout), i.e. fewer output pixels than output channels: there one matrix product of the columns
    beat XLA's convolution (the x8 and x4 upsamplers at batch 1 of 16 x 16 LR; ``bench/forms.py
    --part upsampler``, docs/benchmarks.md, "Winograd in batch chunks, and the x8 upsampler")."""
    n, h, w, _ = x.shape
    return static(n, h, w) and 0 < n * h * w < kernel.shape[-1]


# Dense k x k convs with 64 output channels (VDSR's 64 -> 64, 3D-FCNN's 9 x 9 128 -> 64) by kernel
# rows: XLA:CPU's convolution runs them well below its rate for 128 or more output channels
# (bench/forms.py --part rows; docs/benchmarks.md, "Dense convolutions by kernel rows"). One matrix
# product of the input's k width-shifted views (pixels x k Cin) with all k kernel rows side by side
# (k Cin x k Cout), then the k row products shifted by their row offsets and summed. Where it won on
# both CPUs measured (an AMD EPYC and an Intel Xeon, each with AVX-512): 64 output channels (32 won on
# the AMD, lost on the Intel; 16 and 128 lost on both), at most 128 input channels (256 lost on the
# AMD: the views are k x the input), at least 2^25 multiply-adds (below, its extra passes cost more
# than the product saves), and a chunk's row products (k N H W Cout) under 2^20 values (4 MB in
# float32; past it they leave the cache and the form lost on the AMD): a larger batch runs in
# chunks, a larger image by XLA.
ROW_TAP_OUTPUTS = 64  # output channels
ROW_TAP_MAX_INPUTS = 128  # input channels
ROW_TAP_MIN_MACS = 2 ** 25  # the conv's multiply-adds, N H W k k Cin Cout
ROW_TAP_MAX_VALUES = 2 ** 20  # values of a chunk's row products, k N H W Cout


def uses_row_taps(x: jax.Array, kernel: jax.Array) -> bool:
    """Whether the fast path computes this dense conv by :func:`row_tap_conv` (concrete shapes only)."""
    if not static(*x.shape, *kernel.shape):
        return False
    n, h, w, cin = x.shape
    k, cout = kernel.shape[0], kernel.shape[-1]
    return (k > 1 and cout == ROW_TAP_OUTPUTS and cin <= ROW_TAP_MAX_INPUTS
            and n * h * w * k * k * cin * cout >= ROW_TAP_MIN_MACS and k * h * w * cout < ROW_TAP_MAX_VALUES)


def _row_tap_apply(x: jax.Array, kernel: jax.Array, dilation: int) -> jax.Array:
    """:func:`row_tap_conv` of one chunk."""
    n, h, w, c = x.shape
    k, o = kernel.shape[0], kernel.shape[-1]
    p = dilation * (k - 1) // 2
    xp = jnp.pad(x, ((0, 0), (0, 0), (p, p), (0, 0)))
    views = jnp.concatenate([xp[:, :, j * dilation:j * dilation + w] for j in range(k)], axis=-1)  # (n, h, w, k Cin)
    rows = kernel.transpose(1, 2, 0, 3).reshape(k * c, k, o)  # (k Cin, kernel row, Cout)
    y = jnp.einsum("nhwc,cio->nhwio", views, rows, preferred_element_type=jnp.float32)
    # input row r under kernel row i lands on output row r - i d + p
    out = sum(jnp.pad(y[:, :, :, i], ((0, 0), (2 * p - i * dilation, i * dilation), (0, 0), (0, 0)))[:, p:p + h]
              for i in range(k))
    return out.astype(x.dtype)


def row_tap_chunks(shape, kernel_shape) -> int:
    """How many batch chunks :func:`row_tap_conv` takes a (N, H, W, C) input in: each chunk's row
    products (k N H W Cout) under ``ROW_TAP_MAX_VALUES``."""
    return batch_chunks(shape, kernel_shape[0] * shape[1] * shape[2] * kernel_shape[-1], ROW_TAP_MAX_VALUES)


def row_tap_conv(x: jax.Array, kernel: jax.Array, dilation: int = 1) -> jax.Array:
    """Dense k x k conv (stride 1, zero padding ``dilation (k - 1) / 2``) of (N, H, W, C) by a (k, k, C,
    O) kernel as one matrix product of the k width-shifted input views with the k kernel rows, the
    row products then shifted and summed (in float32); a large batch in chunks (:func:`row_tap_chunks`)."""
    chunks = row_tap_chunks(x.shape, kernel.shape)
    return _in_chunks(functools.partial(_row_tap_apply, kernel=kernel, dilation=dilation), chunks, x)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def grouped_conv(x: jax.Array, kernel: jax.Array, bias: jax.Array, groups: int = 1, dilation: int = 1) -> jax.Array:
    """Grouped (or, with ``groups=1``, dense) conv plus bias, kernel (k, k, Cin/g, Cout).

    Forward: XLA's convolution when dense (a matrix product when 1x1, Winograd's when 3x3 and large
    enough: :func:`winograd_conv3x3`, the im2col product below when the map has fewer pixels than
    the conv has outputs: :func:`columns_smaller`, kernel rows' products with 64 outputs on maps
    small enough: :func:`row_tap_conv`), else one group-batched product of
    group-major im2col columns (no transposes of the products' operands). Backward: the same
    products, with the bias inside; every one reads the cotangent through a single group-major
    view, so XLA computes it once instead of re-computing its producer (e.g. a loss gradient) in
    every consumer, as a separate bias reduction or the transposes of an einsum's autodiff would.
    """
    if groups == 1 and kernel.shape[0] == 1:  # a matrix product: XLA:CPU fuses what follows into it
        return jnp.einsum("nhwc,co->nhwo", x, kernel[0, 0]) + bias
    n, h, w, _ = x.shape
    if groups == 1:
        if uses_winograd(x, kernel, dilation):
            return winograd_conv3x3(x, kernel) + bias
        if not columns_smaller(x, kernel):
            y = row_tap_conv(x, kernel, dilation) if uses_row_taps(x, kernel) else conv_xla(x, kernel, 1, dilation)
            return y + bias
    y = jnp.einsum("gpk,gko->gpo", _group_cols(x, kernel.shape[0], dilation, groups), _group_kernel(kernel, groups))
    return y.transpose(1, 0, 2).reshape(n, h, w, kernel.shape[-1]) + bias


def _grouped_fwd(x, kernel, bias, groups, dilation):
    return grouped_conv(x, kernel, bias, groups, dilation), (x, kernel)


def _dense_bwd(x: jax.Array, kernel: jax.Array, g: jax.Array, dilation: int, winograd: bool):
    """The backward of a dense k x k conv (k > 1) that :func:`_grouped_bwd`'s im2col products serve
    badly. Where ``winograd`` (the forward's size rule without its cap): the gradients in
    Winograd's terms (:func:`winograd_conv3x3_vjp`), 2.25x fewer multiply-adds and values than
    im2col products. With fewer output than input channels: the kernel gradient from the
    cotangent's im2col columns and the input gradient as the conv of the cotangent with the flipped
    kernel (the input's columns are k*k times the wider map: SSPSR's 256 -> 8 tail took 10x
    PyTorch's time with them; docs/benchmarks.md, "The dense convolution's backward")."""
    k = kernel.shape[0]
    gb = jnp.sum(g, axis=(0, 1, 2))
    if winograd:
        gx, gk = winograd_conv3x3_vjp(x, kernel, g)
    else:  # sum_q x[q] g[q - s_t]: the cotangent's columns, taps reversed
        gk = jnp.einsum("nhwc,nhwto->tco", x, _im2col(g, k, dilation)[:, :, :, ::-1, :]).reshape(kernel.shape)
        gx = conv_xla(g, jnp.transpose(kernel[::-1, ::-1], (0, 1, 3, 2)), 1, dilation)
    return gx, gk.astype(kernel.dtype), gb


def _grouped_bwd(groups, dilation, res, g):
    x, kernel = res
    k, _, cig, cout = kernel.shape
    winograd = groups == 1 and uses_winograd(x, kernel, dilation, capped=False)
    if winograd or (groups == 1 and k > 1 and cout < cig):
        return _dense_bwd(x, kernel, g, dilation, winograd)
    n, h, w, cin = x.shape
    gt = g.reshape(n * h * w, groups, cout // groups).transpose(1, 0, 2)  # (groups, pixels, Cout/g)
    gk = jnp.einsum("gpk,gpo->gko", _group_cols(x, k, dilation, groups), gt)
    gb = jnp.einsum("p,gpo->go", jnp.ones((n * h * w,), g.dtype), gt)
    gcols = jnp.einsum("gpo,gko->gpk", gt, _group_kernel(kernel, groups))
    gx = _col2im(gcols.reshape(groups * n, h, w, k * k, cig), k, dilation)
    gx = gx.reshape(groups, n, h, w, cig).transpose(1, 2, 3, 0, 4).reshape(n, h, w, cin)
    return gx, gk.transpose(1, 0, 2).reshape(kernel.shape).astype(kernel.dtype), gb.reshape(cout)


grouped_conv.defvjp(_grouped_fwd, _grouped_bwd)


def gated_fusion(maps, gate: jax.Array, kernel: jax.Array, bias: jax.Array, groups: int) -> jax.Array:
    """``grouped 1x1 conv(concatenate(maps) * gate) + bias`` without the concatenation: each map
    times the rows of the block-diagonal kernel it meets, restricted to the columns of the groups
    those rows fall in, with the per-sample gate folded into that small kernel; the products
    summed. Maps (N, h, w, C_i), gate (N, sum C_i), kernel (1, 1, sum C_i / groups, Cout).

    Up to twice the multiply-adds of the grouped conv (a map's rows may reach two groups), but no
    pass over the concatenated, gated map and no group-major copy of it: at image sizes those
    passes, not the products, bound the fusion (bench/forms.py). Autodiff gives its
    gradient; training uses :func:`grouped_conv`, whose custom backward is faster there."""
    cig, cout = kernel.shape[2:]
    og = cout // groups
    w = kernel[0, 0].reshape(cig, groups, og)
    out, start = bias, 0
    for m in maps:
        c = m.shape[-1]
        g0, g1 = start // cig, (start + c - 1) // cig + 1  # the groups rows [start, start + c) fall in
        rows = np.arange(start, start + c)
        block = jnp.zeros((c, g1 - g0, og), kernel.dtype)
        block = block.at[np.arange(c), rows // cig - g0].set(w[rows % cig, rows // cig])
        k = gate[:, start:start + c, None] * block.reshape(c, (g1 - g0) * og)[None]
        y = jnp.einsum("nhwc,nco->nhwo", m, k)
        out = out + jnp.pad(y, ((0, 0), (0, 0), (0, 0), (g0 * og, cout - g1 * og)))
        start += c
    return out


def conv(x: jax.Array, kernel: jax.Array, groups: int = 1, dilation: int = 1, impl: str = "auto",
         bias: jax.Array | None = None) -> jax.Array:
    """One convolution by the implementation ``impl`` selects, plus ``bias`` when given."""
    if resolve_impl(impl) == "xla":
        y = conv_xla(x, kernel, groups, dilation)
    elif kernel.shape[2] == 1 and groups == x.shape[-1] == kernel.shape[-1]:
        y = depthwise_conv(x, kernel, dilation)
    else:
        return grouped_conv(x, kernel, jnp.zeros(kernel.shape[-1], x.dtype) if bias is None else bias, groups, dilation)
    return y if bias is None else y + bias


def torch_kernel_init(key, shape, dtype=jnp.float32):
    """PyTorch's default conv/linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    return nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")(key, shape, dtype)


class Conv(nn.Module):
    """2-D convolution with ``nn.Conv``'s parameter shapes and a selectable implementation.

    ``taps`` > 0 (odd) makes it PyTorch's ``Conv3d`` with kernel ``(taps, k, k)`` and depth padding
    ``taps // 2`` on a depth-1 input, as 3D-FCNN's layers are (docs/design.md section 8.4): the kernel
    is ``(taps, k, k, Cin/g, Cout)``, but only its centre tap meets data (the others meet the depth
    padding's zeros, so they never change the output and their gradient is zero); they exist to be
    counted, and this computes only the centre tap. ``taps=0``: a 2-D conv."""

    features: int
    kernel_size: int = 3
    groups: int = 1
    dilation: int = 1
    use_bias: bool = True
    impl: str = "auto"
    kernel_init: Callable[..., Any] = torch_kernel_init
    taps: int = 0
    bias_init: Callable[..., Any] = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel, bias = self.kernel_and_bias(x.shape[-1], x.dtype)
        return conv(x, kernel, self.groups, self.dilation, self.impl, bias)

    def macs(self, args: tuple, y: jax.Array) -> int:
        """fvcore's count (the hook :mod:`lkca_jax.accounting` reads): per output element
        taps * k * k * Cin / groups, every spectral tap of a 3-D kernel counted as fvcore counts the
        padded ones; the bias not counted."""
        return y.size * max(self.taps, 1) * self.kernel_size ** 2 * (args[0].shape[-1] // self.groups)

    def kernel_and_bias(self, cin: int, dtype) -> tuple[jax.Array, jax.Array | None]:
        """The 2-D kernel (k, k, cin/g, Cout) and bias (or None), in ``dtype``."""
        if self.kernel_size % 2 == 0:
            raise ValueError(f"Conv: kernel_size must be odd, got {self.kernel_size}")
        if cin % self.groups or self.features % self.groups:
            raise ValueError(f"Conv: groups={self.groups} must divide in ({cin}) and out ({self.features}) channels")
        if self.taps < 0 or self.taps and self.taps % 2 == 0:
            raise ValueError(f"Conv: taps must be 0 (2-D) or odd, got {self.taps}")
        k = self.kernel_size
        shape = (k, k, cin // self.groups, self.features)
        kernel = self.param("kernel", self.kernel_init, (self.taps, *shape) if self.taps else shape)
        kernel = (kernel[self.taps // 2] if self.taps else kernel).astype(dtype)
        bias = self.param("bias", self.bias_init, (self.features,)).astype(dtype) if self.use_bias else None
        return kernel, bias
