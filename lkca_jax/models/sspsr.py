"""SSPSR (Jiang et al. 2020) as its public code builds it (docs/design.md section 8.1).

    lr (N,h,w,C) -> G overlapping 8-band groups, each through one shared branch
                    (head, SSPN, PixelShuffle stages to r/2, tail back to 8 bands)
                 -> averaged into (N, rh/2, rw/2, C) where groups overlap
                 -> trunk (head, SSPN, the learnable upsampler x2) + skip conv of the bicubic image
                 -> final conv to C bands

An SSPN is ``n_blocks`` spatial-spectral blocks (a 3x3 residual block, then a 1x1 residual block
with channel attention, each branch scaled by ``res_scale`` = 0.1) plus its own input. Groups
start every ``subs - overlap`` bands (8 and 2: G = ceil((C - 2) / 6)); a group running past the
last band is shifted back to end there. The public code takes the bicubic image ``lms`` as a
second input (made by MATLAB's imresize in its data); here it is made inside from the LR image,
as for every other architecture, which is the same image.

Module names mirror the public code's so a state dict it saved converts by name
(:mod:`lkca_jax.methods`). The trunk's PixelShuffle stage is this model's learnable upsampler
(:class:`~lkca_jax.models.upsampler.Upsampler`): ``rank`` and ``lowrank`` read and replace it.
Channel attention pools over the whole image, so tiled inference is an approximation (as for
LKCA-Net's squeeze-excitation, which, unlike these blocks, runs whole before the tiles).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lkca_jax import precision
from lkca_jax.models.upsampler import UpsamplerSettings, upsampler_fields
from lkca_jax.ops.conv import Conv
from lkca_jax.ops.imresize import imresize
from lkca_jax.ops.pixel_shuffle import pixel_shuffle


def group_starts(bands: int, subs: int = 8, overlap: int = 2) -> list[int]:
    """First band of each of SSPSR's G = ceil((C - overlap) / (subs - overlap)) groups."""
    if bands < subs or subs <= overlap:
        raise ValueError(f"SSPSR needs bands >= subs > overlap, got bands={bands}, subs={subs}, overlap={overlap}")
    stride = subs - overlap
    return [min(stride * g, bands - subs) for g in range(math.ceil((bands - overlap) / stride))]


def band_counts(bands: int, starts, subs: int = 8) -> np.ndarray:
    """How many groups cover each band (1, or 2 where groups overlap): the divisor of the average."""
    counts = np.zeros(bands, np.float32)
    for s in starts:
        counts[s:s + subs] += 1
    return counts


class ChannelAttention(nn.Module):
    """Squeeze-excitation with 1x1 convs (``CALayer``): pool, conv C->C/red + ReLU, conv + sigmoid."""

    reduction: int = 16
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        if c < self.reduction:  # C // reduction would be an empty conv
            raise ValueError(f"channel attention: {c} features, fewer than its reduction {self.reduction} "
                             f"(the width must be at least the reduction: model.<method>.reduction)")
        s = jnp.mean(x, axis=(1, 2), keepdims=True)
        s = nn.relu(Conv(c // self.reduction, 1, impl=self.conv_impl, name="conv0")(s))
        return x * nn.sigmoid(Conv(c, 1, impl=self.conv_impl, name="conv2")(s))

    def macs(self, args: tuple, y: jax.Array) -> int:
        """fvcore's count: the pooling, 1 per input element (its convs are counted as their calls)."""
        return args[0].size


class ResBlock(nn.Module):
    """``ResBlock`` (3x3) or ``ResAttentionBlock`` (1x1 + channel attention): x + res_scale * body(x),
    body = conv, ReLU, conv (convs named by their index in the public code's ``body``)."""

    kernel_size: int = 3
    attention: bool = False
    res_scale: float = 0.1
    reduction: int = 16
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        f, k = x.shape[-1], self.kernel_size
        body = Conv(f, k, impl=self.conv_impl, name="conv2")(nn.relu(Conv(f, k, impl=self.conv_impl, name="conv0")(x)))
        if self.attention:
            body = ChannelAttention(self.reduction, self.conv_impl, name="ca")(body)
        return x + self.res_scale * body


class SSPN(nn.Module):
    """``blocks`` spatial-spectral blocks (3x3 ``spa`` then 1x1 ``spc``), plus the SSPN's input."""

    blocks: int = 3
    res_scale: float = 0.1
    reduction: int = 16
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = x
        for i in range(self.blocks):
            y = ResBlock(3, False, self.res_scale, self.reduction, self.conv_impl, name=f"ssb{i}_spa")(y)
            y = ResBlock(1, True, self.res_scale, self.reduction, self.conv_impl, name=f"ssb{i}_spc")(y)
        return y + x


class Branch(nn.Module):
    """``BranchUnit``: head conv, SSPN, ``upsample``, an optional tail conv."""

    features: int
    blocks: int
    upsample: nn.Module
    out: int = 0  # tail conv to this many bands; 0: none (the trunk)
    res_scale: float = 0.1
    reduction: int = 16
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = Conv(self.features, 3, impl=self.conv_impl, name="head")(x)
        y = SSPN(self.blocks, self.res_scale, self.reduction, self.conv_impl, name="body")(y)
        y = self.upsample(y)
        return Conv(self.out, 3, impl=self.conv_impl, name="tail")(y) if self.out else y


class ShuffleStages(nn.Module):
    """EDSR's upsampler for a power-of-two factor: ``stages`` x (conv F->4F, PixelShuffle(2)), the
    convs named by their index in the public code's ``nn.Sequential`` (0, 2, ...)."""

    features: int
    stages: int
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for j in range(self.stages):
            x = pixel_shuffle(Conv(4 * self.features, 3, impl=self.conv_impl, name=f"conv{2 * j}")(x), 2)
        return x


class SSPSR(UpsamplerSettings):
    """``__call__(lr, train) -> (sr, features)``; features: the trunk upsampler's output."""

    bands: int = 8
    scale: int = 4
    features: int = 256
    blocks: int = 3
    subs: int = 8
    overlap: int = 2
    res_scale: float = 0.1
    reduction: int = 16

    def __post_init__(self):
        super().__post_init__()
        if self.scale < 2 or self.scale & (self.scale - 1):
            raise ValueError(f"SSPSR upsamples by powers of two (x2, x4, x8), got x{self.scale}")
        group_starts(self.bands, self.subs, self.overlap)

    @property
    def tile_radius(self) -> int:
        """LR pixels of local context, counting every 3x3 conv as one LR pixel whatever its
        resolution (generous): branch head, 2 per block, its stages, tail; trunk head, 2 per block,
        the upsampler; the final conv. Channel attention is global besides (see the module doc)."""
        return 5 + 4 * self.blocks + int(math.log2(self.scale // 2))

    @property
    def up_groups(self) -> int:
        return self.stage_groups(self.features)

    @nn.compact
    def __call__(self, lr: jax.Array, train: bool = False):
        n, c = lr.shape[0], lr.shape[-1]
        f, subs, r = self.features, self.subs, self.scale
        x = precision.network_input(lr, self.dtype)
        starts = group_starts(c, subs, self.overlap)
        shared = dict(res_scale=self.res_scale, reduction=self.reduction, conv_impl=self.conv_impl)
        branch = Branch(f, self.blocks, ShuffleStages(f, int(math.log2(r // 2)), self.conv_impl, parent=None),
                        out=subs, name="branch", **shared)
        groups = branch(jnp.concatenate([x[..., s:s + subs] for s in starts], axis=0))  # (G*N, rh/2, rw/2, 8)
        groups = groups.reshape(len(starts), n, *groups.shape[1:])
        y = sum(jnp.pad(groups[g], ((0, 0), (0, 0), (0, 0), (s, c - s - subs))) for g, s in enumerate(starts))
        y = y / jnp.asarray(band_counts(c, starts, subs), y.dtype)
        up = self.make_upsampler(f, 4 * f, 2, name=None, parent=None)
        feats = Branch(f, self.blocks, up, name="trunk", **shared)(y)  # no tail: the upsampler's output
        bicubic = precision.network_input(imresize(lr, r), self.dtype)  # made in float32, read in the compute dtype
        y = feats + Conv(f, 3, impl=self.conv_impl, name="skip_conv")(bicubic)
        return precision.head(Conv(c, 3, impl=self.conv_impl, name="final")(y)), precision.float32(feats)


def build_sspsr(m) -> SSPSR:
    s = m.sspsr
    return SSPSR(bands=m.bands, scale=m.scale, features=s.features, blocks=s.blocks, subs=s.subs,
                 overlap=s.overlap, res_scale=s.res_scale, reduction=s.reduction, **upsampler_fields(m))
