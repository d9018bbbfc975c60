"""ESSAformer (Zhang et al. 2023) as its public ``ESSA.py`` builds it (docs/design.md section 8.3).

    lr (N,h,w,C) -> x0 = conv_first (3x3 C -> F)
                 -> x1 = Convup(Up(x0));        x2 = Convdown(Down(x1) + x0)
                    x3 = Convup(Up(x2) + x1);   x4 = Convdown(Down(x3) + x2)
                    x5 = Convup(Up(x4) + x3)
                 -> conv_last (3x3 F -> C) at HR; no bicubic image anywhere (unless
                    ``model.bicubic_residual``, ours: + the bicubic image, conv_last from zero)

Up is the learnable upsampler (log2 r x [conv F->4F, PixelShuffle(2)]; 40-50 % of the
parameters), Down its mirror (log2 r x [conv F->F/4, PixelUnshuffle(2)]). One Convup and one
Convdown are shared by all their calls. Each is: a = ESSAttn(LayerNorm(tokens)), Dropout2d,
[a, x] through conv1x1 2F->2F (as two matrix products, no concatenation), LeakyReLU 0.2,
Dropout2d, conv3x3, LeakyReLU, Dropout2d, conv1x1 2F->F, plus x. ESSAttn is the kernelised spectral
attention, linear in the number of tokens N: q, k, v from one Linear; q and k centred over
channels and squared; q^2 / sum_c q^2 L2-normalised over channels, k^2 / sum_c k^2 over tokens;
out = Linear(v + q (k^T v) / sqrt(N)).
Dropout2d (``model.essaformer.dropout``, 0.2) drops whole channels in training only.

Module names mirror the public code's so a state dict it saved converts by name
(:mod:`lkca_jax.methods`); ``features`` is x5, the HR map conv_last reads. The attention is
global, so tiled inference is approximate.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from lkca_jax import precision
from lkca_jax.models.attention import Einsum
from lkca_jax.models.dropout import ChannelDropout
from lkca_jax.models.upsampler import UpsamplerSettings, upsampler_fields
from lkca_jax.ops.conv import Conv, torch_kernel_init
from lkca_jax.ops.pixel_shuffle import pixel_unshuffle


def _unit(x: jax.Array, axis: int) -> jax.Array:
    """``F.normalize``: x / max(||x||_2, 1e-12) along ``axis``."""
    return x / jnp.maximum(jnp.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


class ESSAttn(nn.Module):
    """(N, T, F) tokens -> (N, T, F): ``lnqkv`` (F -> 3F), the kernelised attention, ``ln`` (F -> F)."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        t, f = x.shape[1:]
        dense = lambda n, name: nn.Dense(n, kernel_init=torch_kernel_init, dtype=x.dtype, name=name)
        q, k, v = jnp.split(dense(3 * f, "lnqkv")(x), 3, axis=-1)
        # the means, sums and norms in float32 (lkca_jax.precision), the products in x's dtype
        q, k = precision.float32(q), precision.float32(k)
        q = q - jnp.mean(q, axis=-1, keepdims=True)
        k = k - jnp.mean(k, axis=-1, keepdims=True)
        q2, k2 = q * q, k * k
        q2 = _unit(q2 / (jnp.sum(q2, axis=-1, keepdims=True) + 1e-7), axis=-1).astype(x.dtype)
        k2 = _unit(k2 / (jnp.sum(k2, axis=-1, keepdims=True) + 1e-7), axis=-2).astype(x.dtype)
        kv = Einsum("ntc,ntd->ncd", name="kv")(k2, v)
        out = v + Einsum("ntc,ncd->ntd", name="qkv")(q2, kv) / math.sqrt(t)
        return dense(f, "ln")(out)


class ConcatDense(nn.Module):
    """A 1x1 conv (``kernel`` (1, 1, A+B, O), ``bias``) of the channel concatenation [a, b], computed
    as two matrix products, without materialising the concatenation."""

    features: int

    @nn.compact
    def __call__(self, a: jax.Array, b: jax.Array) -> jax.Array:
        ca = a.shape[-1]
        kernel = self.param("kernel", torch_kernel_init, (1, 1, ca + b.shape[-1], self.features)).astype(a.dtype)
        bias = self.param("bias", nn.initializers.zeros, (self.features,)).astype(a.dtype)
        return a @ kernel[0, 0, :ca] + b @ kernel[0, 0, ca:] + bias

    def macs(self, args: tuple, y: jax.Array) -> int:
        """fvcore's count: the 1x1 conv of the concatenation it stands for."""
        return y.size * (args[0].shape[-1] + args[1].shape[-1])


class ConvAttention(nn.Module):
    """``Convup``/``Convdown`` (the same structure; ``body`` names its Sequential: ``convu`` or ``convd``)."""

    body: str
    dropout: float = 0.2
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, rows: jax.Array | None = None) -> jax.Array:
        n, h, w, f = x.shape
        drop = lambda y: ChannelDropout(self.dropout)(y, train, rows)
        a = ESSAttn(name="attn")(nn.LayerNorm(1e-5, dtype=x.dtype, name="norm")(x.reshape(n, h * w, f)))
        conv = lambda o, k, i: Conv(o, k, impl=self.conv_impl, name=f"{self.body}{i}")
        y = drop(nn.leaky_relu(ConcatDense(2 * f, name=f"{self.body}0")(drop(a.reshape(n, h, w, f)), x), 0.2))
        y = drop(nn.leaky_relu(conv(2 * f, 3, 3)(y), 0.2))
        return conv(f, 1, 6)(y) + x


class Downsample(nn.Module):
    """log2 r x [3x3 conv F -> F/4, PixelUnshuffle(2)], the convs ``conv0``, ``conv2``, ..."""

    stages: int
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        f = x.shape[-1]
        for j in range(self.stages):
            x = pixel_unshuffle(Conv(f // 4, 3, impl=self.conv_impl, name=f"conv{2 * j}")(x), 2)
        return x


class BlockUp(nn.Module):
    """``blockup``: the three Up and two Down passes around the shared Convup and Convdown."""

    scale: int
    convupsample: nn.Module  # the learnable upsampler (Up), named as the public code names it
    dropout: float = 0.2
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x0: jax.Array, train: bool = False, rows: jax.Array | None = None) -> jax.Array:
        up = self.convupsample
        down = Downsample(self.scale.bit_length() - 1, self.conv_impl, name="convdownsample")
        convup = ConvAttention("convu", self.dropout, self.conv_impl, name="convup")
        convdown = ConvAttention("convd", self.dropout, self.conv_impl, name="convdown")
        x1 = convup(up(x0), train, rows)
        x2 = convdown(down(x1) + x0, train, rows)
        x3 = convup(up(x2) + x1, train, rows)
        x4 = convdown(down(x3) + x2, train, rows)
        return convup(up(x4) + x3, train, rows)


class ESSAformer(UpsamplerSettings):
    """``__call__(lr, train, rows) -> (sr, features)``; features: x5, the HR map before ``conv_last``;
    ``rows``: each sample's row in the global batch (Dropout2d's draws; None: 0..N-1)."""

    bands: int = 8
    scale: int = 4
    features: int = 256
    dropout: float = 0.2
    bicubic_residual: bool = False  # not the published model: see build_essaformer

    def __post_init__(self):
        super().__post_init__()
        if self.features % 4:
            raise ValueError(f"ESSAformer: features={self.features} must be a multiple of 4 (PixelUnshuffle)")

    @property
    def up_groups(self) -> int:
        return self.stage_groups(self.features)

    @property
    def tile_radius(self) -> int:
        """Generous LR context of the convs (the attention is global besides; see the module doc)."""
        return 12

    @nn.compact
    def __call__(self, lr: jax.Array, train: bool = False, rows: jax.Array | None = None):
        x0 = Conv(self.features, 3, impl=self.conv_impl, name="conv_first")(precision.network_input(lr, self.dtype))
        up = self.make_stages(self.features, self.scale, parent=None)
        x5 = BlockUp(self.scale, up, self.dropout, self.conv_impl, name="blockup")(x0, train, rows)
        last = Conv(lr.shape[-1], 3, impl=self.conv_impl, name="conv_last",
                    **({"kernel_init": nn.initializers.zeros} if self.bicubic_residual else {}))
        return precision.head(last(x5), lr if self.bicubic_residual else None, self.scale), precision.float32(x5)


def build_essaformer(m) -> ESSAformer:
    """``model.bicubic_residual`` (a change of ours to the published model, off by default):
    the bicubic image is added to conv_last's output and conv_last starts at zero, so SR starts as
    Bicubic, as in LKCA-Net and VDSR. Same parameters, so checkpoints convert either way."""
    return ESSAformer(bands=m.bands, scale=m.scale, features=m.essaformer.features,
                      dropout=m.essaformer.dropout, bicubic_residual=m.bicubic_residual, **upsampler_fields(m))
