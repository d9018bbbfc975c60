"""The learnable sub-pixel upsampler every architecture here shares, and its low-rank forms.

    features (N, h, w, F) -> conv F -> O -> PixelShuffle(r) -> (N, r h, r w, O / r^2)

``kind`` is ``dense`` (LKCA-Net, VDSR, 3D-FCNN and SSPSR as published), ``grouped`` with g
feature groups (LKCA-LR's block-diagonal kernel, the paper's Section III-C) or ``svd`` with rank R
(an extension of ours: conv F -> R without bias, then 1x1 R -> O, the factorisation a truncated
SVD of the dense kernel gives). The paper argues that the low-rank form applies to the learnable
upsampler of most networks; one module here is what makes ``model.upsampler``, ``rank`` and
``lowrank convert`` work on every architecture (each names the ``params`` path of its upsampler
in :mod:`lkca_jax.methods`).

``taps`` > 0 allocates 3-D kernels ``(taps, k, k, F/g, O)`` over a depth-1 axis, as 3D-FCNN's
``Conv3d`` layers are (docs/design.md section 8.4): only the centre tap ever meets data, the others
multiply the depth axis's zero padding, but they are parameters and fvcore counts their
multiply-adds, so they are kept for the Param and Flops columns.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from lkca_jax.ops.conv import Conv, conv, static, torch_kernel_init
from lkca_jax.ops.pixel_shuffle import pixel_shuffle

UPSAMPLERS = ("dense", "grouped", "svd")
# One vector over the conv's O output channels (PyTorch's order c*r*r + i*r + j), applied before the
# shuffle: the forms of the C*r^2 parameters the paper's Param column has beyond the reconstruction
# and its Flops column does not count (docs/architecture.md, "The parameter column").
EXTRAS = {"none": None, "scale": ("out_scale", 1.0), "prelu": ("out_prelu", 0.25), "bias": ("out_bias", 0.0)}


def apply_extra(y: jax.Array, extra: str, vector: jax.Array, scale: int) -> jax.Array:
    """``y`` (N, r h, r w, O / r^2) after PixelShuffle(``scale``) with ``extra`` applied as on the
    pre-shuffle channels: per-channel scale, PReLU slope or second bias ``vector`` (O,)."""
    r = scale
    n, hr, wr, c = y.shape
    v = vector.astype(y.dtype).reshape(c, r, r).transpose(1, 2, 0).reshape(1, 1, r, 1, r, c)
    y6 = y.reshape(n, hr // r, r, wr // r, r, c)
    if extra == "scale":
        y6 = y6 * v
    elif extra == "prelu":
        y6 = jnp.where(y6 >= 0, y6, v * y6)
    else:
        y6 = y6 + v
    return y6.reshape(n, hr, wr, c)


def resolve_groups(features: int, out_channels: int, requested: int | str, fallback: int = 8) -> int:
    """Effective upsampler groups: an int (or its digits) is used, ``'auto'`` or ``'auto:g'`` picks the largest
    divisor of both ``features`` and ``out_channels`` not above g (default 8)."""
    if isinstance(requested, str) and requested.isdigit():
        requested = int(requested)
    if isinstance(requested, str):
        if not requested.startswith("auto"):
            raise ValueError(f"groups must be an int or 'auto[:g]', got {requested!r}")
        cap = int(requested.split(":")[1]) if ":" in requested else fallback
        common = math.gcd(features, out_channels)
        return max(d for d in range(1, max(cap, 1) + 1) if common % d == 0)
    return int(requested)


def check_upsampler(kind: str, features: int, out: int, groups: int, rank: int, where: str,
                    extra: str = "none") -> None:
    """A clear error for an upsampler that cannot be built (``where`` describes the model)."""
    if extra not in EXTRAS:
        raise ValueError(f"up_extra must be one of {tuple(EXTRAS)}, got {extra!r} ({where})")
    if kind not in UPSAMPLERS:
        raise ValueError(f"upsampler must be one of {UPSAMPLERS}, got {kind!r} ({where})")
    if kind == "grouped" and (groups < 1 or features % groups or out % groups):
        raise ValueError(f"upsampler groups {groups} must divide its input features F={features} and its "
                         f"{out} output channels ({where}); groups='auto' picks a valid one")
    if kind == "svd" and rank < 1:
        raise ValueError(f"svd upsampler needs rank >= 1, got {rank} ({where})")


class ShuffleConv(Conv):
    """:class:`Conv` followed by PixelShuffle(``scale``), same parameters. When every group's
    outputs are whole sets of r*r sub-pixels and the map has at least as many pixels as the kernel
    has values per output channel, the kernel's output columns are permuted (inside each group,
    sub-pixel-major) so that the shuffle moves runs of channels instead of single values: at
    128 x 128 LR, x4, the shuffle of the conv's 2048 channels was the upsampler's slowest pass."""

    scale: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel, bias = self.kernel_and_bias(x.shape[-1], x.dtype)
        r, out, groups = self.scale, kernel.shape[-1], self.groups
        per_group = out // groups
        n, h, w, cin = x.shape
        # the permutation moves the kernel's values once to save moving each output value singly:
        # worth it where the outputs outnumber the kernel's values (not at batch 1 of 16 x 16 LR at
        # x8; docs/benchmarks.md, "Winograd in batch chunks, and the x8 upsampler")
        values = kernel.shape[0] * kernel.shape[1] * cin // groups  # per output channel, as outputs' pixels
        small = static(n, h, w) and n * h * w < values
        if per_group % (r * r) or small:  # (a symbolic batch, as export traces it, is taken as large)
            return pixel_shuffle(conv(x, kernel, groups, self.dilation, self.impl, bias), r)
        # new column (g, i, j, c) <- PixelShuffle's column (g, c, i, j): a transpose, not a gather (XLA
        # fuses it into Winograd's kernel transform, where a gather made the upsampler slower than XLA's
        # convolution: bench/forms.py --part upsampler)
        def perm(a):
            return a.reshape(*a.shape[:-1], groups, per_group // (r * r), r * r).swapaxes(-1, -2).reshape(a.shape)

        y = conv(x, perm(kernel), groups, self.dilation, self.impl, None if bias is None else perm(bias))
        y = y.reshape(n, h, w, groups, r, r, per_group // (r * r)).transpose(0, 1, 4, 2, 5, 3, 6)
        return y.reshape(n, h * r, w * r, out // (r * r))


class Upsampler(nn.Module):
    """Conv F -> ``out`` (dense, grouped or rank-R factorised) followed by PixelShuffle(``scale``)."""

    out: int
    scale: int
    kind: str = "dense"
    groups: int = 8
    rank: int = 64
    kernel_size: int = 3
    taps: int = 0  # > 0: Conv3d kernels (taps, k, k) over a depth-1 axis (3D-FCNN)
    use_bias: bool = True
    kernel_init: Callable[..., Any] = torch_kernel_init
    init_scale: float = 1.0  # the last conv's kernel init is scaled by this (0: it starts at zero)
    conv_impl: str = "auto"
    extra: str = "none"  # a key of EXTRAS: one more vector over the O channels (LKCA's paper models)

    @nn.compact
    def __call__(self, feat: jax.Array) -> jax.Array:
        k, scale, base = self.kernel_size, self.init_scale, self.kernel_init
        init = lambda key, shape, dtype=jnp.float32: scale * base(key, shape, dtype)
        conv = lambda *a, **kw: Conv(*a, impl=self.conv_impl, **kw)
        if self.kind == "svd":
            y = conv(self.rank, k, use_bias=False, taps=self.taps, kernel_init=base, name="conv_v")(feat)
            y = conv(self.out, 1, use_bias=self.use_bias, kernel_init=init, name="conv_u")(y)
            y = pixel_shuffle(y, self.scale)
        else:
            groups = self.groups if self.kind == "grouped" else 1
            y = ShuffleConv(self.out, k, groups=groups, use_bias=self.use_bias, taps=self.taps, kernel_init=init,
                            impl=self.conv_impl, scale=self.scale, name="conv")(feat)
        if EXTRAS[self.extra] is None:
            return y
        name, value = EXTRAS[self.extra]
        return apply_extra(y, self.extra, self.param(name, nn.initializers.constant(value), (self.out,)), self.scale)


class UpsamplerStages(nn.Module):
    """EDSR's upsampler for a power-of-two factor, as MSDformer and ESSAformer use it: ``stages`` x
    :class:`Upsampler` (F -> 4F, PixelShuffle(2)), named ``stage0``, ``stage2``, ... (each conv's
    index in the public code's ``nn.Sequential``). Every stage has the configured kind: ``rank``
    and ``lowrank`` read and convert each one."""

    stages: int
    kind: str = "dense"
    groups: int = 8
    rank: int = 64
    init_scale: float = 1.0
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        f = x.shape[-1]
        for j in range(self.stages):  # init_scale on the last stage only (zero on all would stall them)
            scale = self.init_scale if j == self.stages - 1 else 1.0
            x = Upsampler(4 * f, 2, self.kind, self.groups, self.rank, init_scale=scale,
                          conv_impl=self.conv_impl, name=f"stage{2 * j}")(x)
        return x


class UpsamplerSettings(nn.Module):
    """The upsampler fields a model config's ``model`` block gives every architecture, and the
    compute dtype (fields only)."""

    upsampler: str = "dense"
    groups: int | str = "auto:8"
    rank: int = 64
    up_init_scale: float = 0.0
    conv_impl: str = "auto"
    dtype: Any = jnp.float32  # the compute dtype (lkca_jax.precision); parameters stay float32

    def make_upsampler(self, features: int, out: int, scale: int, name: str | None = "up", **kw) -> Upsampler:
        where = f"{type(self).__name__}: F={features}, {out} outputs"
        groups = resolve_groups(features, out, self.groups)
        check_upsampler(self.upsampler, features, out, groups, self.rank, where)
        return Upsampler(out, scale, self.upsampler, groups, self.rank, init_scale=self.up_init_scale,
                         conv_impl=self.conv_impl, name=name, **kw)

    def stage_groups(self, features: int) -> int:
        """The groups of an x2 stage (F -> 4F), as ``model.groups`` resolves for it."""
        return resolve_groups(features, 4 * features, self.groups)

    def make_stages(self, features: int, scale: int, **kw) -> UpsamplerStages:
        """log2(``scale``) x2 stages of :class:`Upsampler` on ``features`` channels."""
        if scale < 2 or scale & (scale - 1):
            raise ValueError(f"{type(self).__name__} upsamples by powers of two (x2, x4, x8), got x{scale}")
        groups = self.stage_groups(features)
        check_upsampler(self.upsampler, features, 4 * features, groups, self.rank,
                        f"{type(self).__name__}: F={features}, {4 * features} outputs per stage")
        return UpsamplerStages(scale.bit_length() - 1, self.upsampler, groups, self.rank, self.up_init_scale,
                               self.conv_impl, **kw)


def upsampler_fields(m) -> dict:
    """The generic upsampler fields of a config's ``model`` block."""
    return dict(upsampler=m.get("upsampler", "dense"), groups=m.get("groups", "auto:8"), rank=m.get("rank", 64),
                up_init_scale=m.get("up_init_scale", 0.0), conv_impl=m.conv_impl)
