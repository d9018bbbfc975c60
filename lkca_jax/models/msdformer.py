"""MSDformer (Chen et al. 2023) as its public code builds it (docs/design.md section 8.2).

    lr (N,h,w,C) -> MSAMG head: G overlapping 8-band groups, each through one shared DCAM (three
                    dilated 3x3 convs with one shared PReLU, summed; a residual block), then its own
                    residual attention block and 1x1 conv back to 8 bands, averaged where groups
                    overlap, a 1x1 conv to F
                 -> f + middle_3(DCTM_3(middle_2(DCTM_2(middle_1(DCTM_1(DCTM_0(f)))))))
                 -> the learnable upsampler (log2 r x [conv F->4F, PixelShuffle(2)])
                 -> + skip conv of the bicubic image -> tail conv to C bands

A DCTM is a pre-LayerNorm transformer block on the h*w tokens: DMSA (channel attention per head,
q from a deformable conv, k and v from a 1x1 conv, q and k L2-normalised over the tokens, a learned
temperature per head, softmax over channels) and an MLP (x4, exact GELU). The 1x1 qkv conv makes a
q third that is discarded; ``middle0`` is allocated and never called; both are kept because the
paper's Param and Flops columns count them. Groups follow SSPSR's split (8 bands, overlap 2); the
public code's fixed version sums the groups' outputs and divides by the cover count (the earlier
one overwrote them).

Module names mirror the public code's so a state dict it saved converts by name
(:mod:`lkca_jax.methods`); ``features`` is the upsampler's output. The public code takes the
bicubic image as a second input; here it is made inside from the LR image (the same MATLAB
bicubic). Attention over all tokens and channel attention make tiled inference approximate.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from lkca_jax import precision
from lkca_jax.models.attention import Einsum, PReLU, torch_bias_init
from lkca_jax.models.sspsr import ResBlock, band_counts, group_starts
from lkca_jax.models.upsampler import UpsamplerSettings, upsampler_fields
from lkca_jax.ops.conv import Conv, torch_kernel_init
from lkca_jax.ops.deform import deform_conv
from lkca_jax.ops.imresize import imresize


class DCB(nn.Module):
    """Three 3x3 convs to F with dilations 1, 3, 5, each through the same PReLU, summed."""

    features: int
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = PReLU(name="act")
        return sum(act(Conv(self.features, 3, dilation=d, impl=self.conv_impl, name=f"dconv{i + 1}")(x))
                   for i, d in enumerate((1, 3, 5)))


class DCAM(nn.Module):
    """The head's shared part: DCB, then a 3x3 residual block (res_scale 0.1)."""

    features: int
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = DCB(self.features, self.conv_impl, name="dcb")(x)
        return ResBlock(3, res_scale=0.1, conv_impl=self.conv_impl, name="spa")(y)


class MSAMG(nn.Module):
    """The grouped head: (N, h, w, C) -> (N, h, w, F)."""

    features: int
    subs: int = 8
    overlap: int = 2
    reduction: int = 16
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        n, c = x.shape[0], x.shape[-1]
        starts = group_starts(c, self.subs, self.overlap)
        shared = DCAM(self.features, self.conv_impl, name="IG")(
            jnp.concatenate([x[..., s:s + self.subs] for s in starts], axis=0))
        y = 0
        for g, s in enumerate(starts):
            t = ResBlock(1, True, 0.1, self.reduction, self.conv_impl, name=f"spc{g}")(shared[g * n:(g + 1) * n])
            t = Conv(self.subs, 1, impl=self.conv_impl, name=f"middle{g}")(t)
            y = y + jnp.pad(t, ((0, 0), (0, 0), (0, 0), (s, c - s - self.subs)))
        y = y / jnp.asarray(band_counts(c, starts, self.subs), y.dtype)
        return Conv(self.features, 1, impl=self.conv_impl, name="tail")(y)


class Kernel(nn.Module):
    """A conv kernel parameter alone (``kernel``), named as the public code's ``conv`` module."""

    shape: tuple[int, ...]

    @nn.compact
    def __call__(self) -> jax.Array:
        return self.param("kernel", torch_kernel_init, self.shape)


class DeformConv(nn.Module):
    """``DeformConv2d(F, F)``: offsets from ``p_conv`` (3x3 F -> 18; weight zero at init, bias
    PyTorch's default, so the first offsets are small and non-integer), then the deformable 3x3
    conv ``conv`` without bias (:mod:`lkca_jax.ops.deform`)."""

    features: int
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        offsets = Conv(18, 3, impl=self.conv_impl, kernel_init=nn.initializers.zeros,
                       bias_init=torch_bias_init(9 * c), name="p_conv")(x)
        kernel = Kernel((3, 3, c, self.features), name="conv")().astype(x.dtype)
        return deform_conv(x, offsets, kernel)

    def macs(self, args: tuple, y: jax.Array) -> int:
        """fvcore's count: the dense 3x3 conv over the sampled taps (the sampling itself 0; the
        offsets' ``p_conv`` is counted as its own call)."""
        return y.size * 9 * args[0].shape[-1]


class DMSA(nn.Module):
    """Channel self-attention per head on (N, h, w, F): q = DeformConv, k, v from a 1x1 conv (its
    q third computed and discarded, as in the public code), q and k L2-normalised over the tokens,
    softmax((q k^T) * temperature) v, a 1x1 projection; no biases."""

    heads: int = 6
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        n, h, w, f = x.shape
        temperature = self.param("temperature", nn.initializers.ones, (self.heads, 1, 1)).astype(x.dtype)
        q = DeformConv(f, self.conv_impl, name="deformconv")(x)
        k, v = jnp.split(Conv(3 * f, 1, use_bias=False, impl=self.conv_impl, name="qkv")(x)[..., f:], 2, axis=-1)
        heads = lambda t: t.reshape(n, h * w, self.heads, f // self.heads)  # channel = head * (F / heads) + c
        # the norms over the h*w tokens and the softmax in float32 (lkca_jax.precision), products in x's dtype
        unit = lambda t: (t / jnp.maximum(jnp.linalg.norm(precision.float32(t), axis=1, keepdims=True),
                                          1e-12)).astype(x.dtype)
        attn = Einsum("nthc,nthd->nhcd", name="qk")(unit(heads(q)), unit(heads(k)))
        attn = nn.softmax(precision.float32(attn * temperature[None]), axis=-1).astype(x.dtype)
        out = Einsum("nhcd,nthd->nthc", name="av")(attn, heads(v)).reshape(n, h, w, f)
        return Conv(f, 1, use_bias=False, impl=self.conv_impl, name="project_out")(out)


class MLP(nn.Module):
    """Linear F -> hidden, exact GELU, Linear back (``fc1``, ``fc2``)."""

    hidden: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        f = x.shape[-1]
        dense = lambda n, name: nn.Dense(n, kernel_init=torch_kernel_init, dtype=x.dtype, name=name)
        return dense(f, "fc2")(nn.gelu(dense(self.hidden, "fc1")(x), approximate=False))


class DCTM(nn.Module):
    """Pre-LayerNorm block on the h*w tokens: x + DMSA(LN1(x)), then + MLP(LN2(.)); drop path 0."""

    heads: int = 6
    mlp_ratio: float = 4.0
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        norm = lambda name: nn.LayerNorm(1e-5, dtype=x.dtype, name=name)  # statistics in float32
        x = x + DMSA(self.heads, self.conv_impl, name="global_attn")(norm("norm1")(x))
        return x + MLP(int(x.shape[-1] * self.mlp_ratio), name="mlp")(norm("norm2")(x))


class MSDformer(UpsamplerSettings):
    """``__call__(lr, train) -> (sr, features)``; features: the learnable upsampler's output."""

    bands: int = 8
    scale: int = 4
    features: int = 240
    blocks: int = 4  # DCTMs
    heads: int = 6
    mlp_ratio: float = 4.0
    subs: int = 8
    overlap: int = 2
    reduction: int = 16
    bicubic_residual: bool = False  # not the published model: see build_msdformer

    def __post_init__(self):
        super().__post_init__()
        group_starts(self.bands, self.subs, self.overlap)
        if self.features % self.heads:
            raise ValueError(f"MSDformer: heads={self.heads} must divide features={self.features}")

    @property
    def up_groups(self) -> int:
        return self.stage_groups(self.features)

    @property
    def tile_radius(self) -> int:
        """Generous LR context of the local parts (the head's dilated convs, the deformable and
        middle convs, the upsampler); the attention is global besides (see the module doc)."""
        return 8 + 4 * self.blocks + self.scale.bit_length()

    @nn.compact
    def __call__(self, lr: jax.Array, train: bool = False):
        f = self.features
        x = MSAMG(f, self.subs, self.overlap, self.reduction, self.conv_impl, name="head")(
            precision.network_input(lr, self.dtype))
        t = DCTM(self.heads, self.mlp_ratio, self.conv_impl, name="body0")(x)
        if self.is_initializing():  # allocated, never called (as in the public code; Param counts it):
            Conv(f, 3, impl=self.conv_impl, name="middle0")(t[:0])  # an empty batch makes its params only
        for i in range(1, self.blocks):
            t = DCTM(self.heads, self.mlp_ratio, self.conv_impl, name=f"body{i}")(t)
            t = Conv(f, 3, impl=self.conv_impl, name=f"middle{i}")(t)
        feats = self.make_stages(f, self.scale, name="upsample")(x + t)
        bicubic = precision.network_input(imresize(lr, self.scale), self.dtype)  # float32, read in the compute dtype
        y = feats + Conv(f, 3, impl=self.conv_impl, name="skip_conv")(bicubic)
        tail = Conv(lr.shape[-1], 3, impl=self.conv_impl, name="tail",
                    **({"kernel_init": nn.initializers.zeros} if self.bicubic_residual else {}))
        return precision.head(tail(y), lr if self.bicubic_residual else None, self.scale), precision.float32(feats)


def build_msdformer(m) -> MSDformer:
    """``model.bicubic_residual`` (a change of ours to the published model, off by default): the
    bicubic image is also added after the tail conv, which then starts at zero, so SR starts as
    Bicubic, as in LKCA-Net and VDSR. Same parameters, so checkpoints convert either way."""
    s = m.msdformer
    return MSDformer(bands=m.bands, scale=m.scale, features=s.features, blocks=s.blocks, heads=s.heads,
                     mlp_ratio=s.mlp_ratio, subs=s.subs, overlap=s.overlap, reduction=s.reduction,
                     bicubic_residual=m.bicubic_residual, **upsampler_fields(m))
