"""LKCA-Net, LKCA-LR and the SVD variant (docs/design.md section 3).

    x (N,h,w,C) -> head Conv3x3 C->F -> depth x LKB -> upsampler F->C*r*r
                -> PixelShuffle(r) = features;  sr = features + imresize(x, r)

The upsampler (:mod:`lkca_jax.models.upsampler`) is ``dense`` (LKCA-Net),
``grouped`` with g feature groups (LKCA-LR / LKCA-KD, g = 8) or ``svd`` with
rank R (an extension of ours).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from lkca_jax import precision
from lkca_jax.models.dropout import DropPath
from lkca_jax.models.upsampler import Upsampler, check_upsampler, resolve_groups
from lkca_jax.ops.conv import Conv, conv, gated_fusion, torch_kernel_init

NORMS = ("layer", "batch")


class ChannelNorm(nn.Module):
    """Channels-first LayerNorm as ConvNeXt-style code writes it by hand: per pixel, the mean and
    (biased) variance over the channels, then a per-channel scale and bias. A module of its own, not
    ``nn.LayerNorm``: fvcore counts a LayerNorm module 5 per element but these element-wise ops 0,
    which is what the paper's Flops column shows (every LKCA entry comes out exact). The statistics and
    the normalisation run in float32 whatever the input's dtype; the result is in the input's."""

    epsilon: float = 1e-6

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        f = x.shape[-1]
        x32 = precision.float32(x)
        mean = jnp.mean(x32, axis=-1, keepdims=True)
        centred = x32 - mean
        var = jnp.mean(centred * centred, axis=-1, keepdims=True)
        y = centred * jax.lax.rsqrt(var + self.epsilon)
        y = y * self.param("scale", nn.initializers.ones, (f,)) + self.param("bias", nn.initializers.zeros, (f,))
        return y.astype(x.dtype)


def norm_layer(kind: str, train: bool, momentum: float, epsilon: float, ln_epsilon: float, axis_name, name: str,
               dtype=jnp.float32):
    """The LKB's normalisation: ``layer`` (:class:`ChannelNorm`) or ``batch`` (BatchNorm, statistics
    averaged over ``axis_name`` in data-parallel training, reduced in float32, output in ``dtype``)."""
    if kind == "layer":
        return ChannelNorm(ln_epsilon, name=name)
    if kind == "batch":
        return nn.BatchNorm(not train, momentum=momentum, epsilon=epsilon, axis_name=axis_name, dtype=dtype,
                            name=name)
    raise ValueError(f"model.norm must be one of {NORMS}, got {kind!r}")


class SqueezeExcite(nn.Module):
    """avgpool -> FC C->C/r -> ReLU -> FC -> sigmoid, a per-channel gate (N, C) of the channel
    concatenation of ``maps`` (each map pooled apart: the concatenation is never formed)."""

    reduction: int = 16

    @nn.compact
    def __call__(self, maps: Sequence[jax.Array]) -> jax.Array:
        s = jnp.concatenate([jnp.mean(m, axis=(1, 2)) for m in maps], axis=-1)
        c = s.shape[-1]
        dense = lambda n, name: nn.Dense(n, kernel_init=torch_kernel_init, dtype=s.dtype, name=name)
        return nn.sigmoid(dense(c, "fc2")(nn.relu(dense(max(c // self.reduction, 1), "fc1")(s))))

    def macs(self, args: tuple, y: jax.Array) -> int:
        """fvcore's count: the pooling, 1 per input element (its layers are counted as their calls)."""
        return sum(m.size for m in args[0])


class Fusion(Conv):
    """LKCA's grouped 1x1 fusion conv of the gated concatenation, ``conv(concat(maps) * gate)``, a
    :class:`Conv` (same parameters) called on the maps and the gate. In training, the
    concatenation through the grouped conv (its custom backward); at inference, per map without
    the concatenation (:func:`lkca_jax.ops.conv.gated_fusion`; about 2x faster at 128 x 128 LR and
    above, bench/forms.py)."""

    @nn.compact
    def __call__(self, maps: Sequence[jax.Array], gate: jax.Array, train: bool = False) -> jax.Array:
        kernel, bias = self.kernel_and_bias(sum(m.shape[-1] for m in maps), maps[0].dtype)
        if train:
            z = jnp.concatenate(maps, axis=-1) * gate[:, None, None, :]
            return conv(z, kernel, self.groups, impl=self.impl, bias=bias)
        return gated_fusion(maps, gate, kernel, bias, self.groups)

    def macs(self, args: tuple, y: jax.Array) -> int:
        """fvcore's count: the grouped 1x1 conv of the maps' concatenation."""
        return y.size * sum(m.shape[-1] for m in args[0]) // self.groups


class BlockSettings(nn.Module):
    """The settings an LKB and its LKCA share (fields only)."""

    kernel_sizes: Sequence[int] = (5, 7)
    dilations: Sequence[int] = (1, 3)
    se_reduction: int = 16
    fusion_groups: int = 4
    gamma_init: float = 1.0
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    conv_impl: str = "auto"
    axis_name: str | None = None
    norm: str = "layer"
    ln_epsilon: float = 1e-6

    def shared(self) -> dict:
        """These fields' values, to make a module of another kind with the same settings."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(BlockSettings)
                if f.name not in ("parent", "name")}

    def norm_layer(self, train: bool, name: str, dtype=jnp.float32):
        return norm_layer(self.norm, train, self.bn_momentum, self.bn_epsilon, self.ln_epsilon, self.axis_name, name,
                          dtype)


class LKCA(BlockSettings):
    """Large-Kernel Channel Attention: cascaded dilated depthwise convs, SE, grouped fusion."""

    @nn.compact
    def __call__(self, a: jax.Array, train: bool = False) -> jax.Array:
        f = a.shape[-1]
        maps = [a]
        for i, (k, d) in enumerate(zip(self.kernel_sizes, self.dilations)):
            maps.append(Conv(f, k, groups=f, dilation=d, impl=self.conv_impl, name=f"dw{i}")(maps[-1]))
        gate = SqueezeExcite(self.se_reduction, name="se")(maps)
        attn = Fusion(f, 1, groups=self.fusion_groups, impl=self.conv_impl, name="fuse")(maps, gate, train)
        attn = self.norm_layer(train, "fuse_bn", a.dtype)(attn)
        gamma = self.param("gamma", nn.initializers.constant(self.gamma_init), (f,)).astype(a.dtype)
        return gamma * (a * attn)


class LKB(BlockSettings):
    """One LKCA block: norm, 1x1 + GELU, LKCA, 1x1 + inner shortcut, layer scale, drop path. The two
    normalisations keep the names ``bn`` and ``fuse_bn`` whichever kind they are (checkpoints and
    PyTorch state dicts name them so)."""

    layer_scale_init: float = 1e-2
    drop_path: float = 0.0
    gelu_approximate: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, rows: jax.Array | None = None) -> jax.Array:
        f = x.shape[-1]
        u = self.norm_layer(train, "bn", x.dtype)(x)
        a = nn.gelu(Conv(f, 1, impl=self.conv_impl, name="proj_in")(u), approximate=self.gelu_approximate)
        s = LKCA(**self.shared(), name="lkca")(a, train)
        v = Conv(f, 1, impl=self.conv_impl, name="proj_out")(s) + u
        v = self.param("layer_scale", nn.initializers.constant(self.layer_scale_init), (f,)).astype(v.dtype) * v
        v = DropPath(self.drop_path)(v, train, rows)
        return x + v


class LKCANet(nn.Module):
    """LKCA-Net / LKCA-LR. ``__call__(lr, train, rows) -> (sr, features)``; features = post-PixelShuffle
    map; ``rows``: each sample's row in the global batch (drop path's draws; None: 0..N-1)."""

    bands: int
    scale: int
    features: int = 128
    depth: int = 16
    upsampler: str = "dense"
    groups: int | str = 8
    rank: int = 64
    up_kernel: int = 3
    up_init_scale: float = 1.0
    up_extra: str = "none"  # upsampler.EXTRAS: the paper's models as their Param column shows them ('scale')
    kernel_sizes: Sequence[int] = (5, 7)
    dilations: Sequence[int] = (1, 3)
    se_reduction: int = 16
    fusion_groups: int = 4
    gamma_init: float = 1.0
    layer_scale_init: float = 1e-2
    drop_path_rate: float = 0.1
    gelu_approximate: bool = False
    bn_momentum: float = 0.9  # Flax convention: PyTorch's default momentum 0.1
    bn_epsilon: float = 1e-5
    conv_impl: str = "auto"
    axis_name: str | None = None
    norm: str = "layer"
    ln_epsilon: float = 1e-6
    dtype: Any = jnp.float32  # the compute dtype (lkca_jax.precision); parameters stay float32

    def __post_init__(self):
        super().__post_init__()
        desc = f"bands={self.bands}, scale={self.scale}, features={self.features}, groups={self.groups}"
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r} ({desc})")
        if self.bands < 1 or self.scale < 1 or self.features < 1 or self.depth < 0:
            raise ValueError(f"LKCANet needs positive bands, scale, features and depth >= 0 ({desc})")
        if len(self.kernel_sizes) != len(self.dilations):
            raise ValueError(f"kernel_sizes {self.kernel_sizes} and dilations {self.dilations} differ in length")
        if self.features % self.fusion_groups:
            raise ValueError(f"fusion_groups={self.fusion_groups} must divide features={self.features}")
        check_upsampler(self.upsampler, self.features, self.bands * self.scale ** 2, self.up_groups, self.rank, desc,
                        self.up_extra)

    @property
    def up_groups(self) -> int:
        return resolve_groups(self.features, self.bands * self.scale ** 2, self.groups)

    @property
    def tile_radius(self) -> int:
        """LR pixels of context :meth:`upsample` needs around an output pixel: the wider of its conv
        and the bicubic kernel (two parallel branches); :meth:`backbone` is global (squeeze-
        excitation) and runs whole."""
        return max(self.up_kernel // 2, 2)

    def setup(self):
        self.head = Conv(self.features, 3, impl=self.conv_impl)
        self.blocks = [
            LKB(kernel_sizes=self.kernel_sizes, dilations=self.dilations, se_reduction=self.se_reduction,
                fusion_groups=self.fusion_groups, gamma_init=self.gamma_init, bn_momentum=self.bn_momentum,
                bn_epsilon=self.bn_epsilon, conv_impl=self.conv_impl, axis_name=self.axis_name, norm=self.norm,
                ln_epsilon=self.ln_epsilon, layer_scale_init=self.layer_scale_init,
                drop_path=self.drop_path_rate * i / max(self.depth - 1, 1),  # linear, as in VAN
                gelu_approximate=self.gelu_approximate, name=f"block{i}")
            for i in range(self.depth)]
        self.up = Upsampler(self.bands * self.scale ** 2, self.scale, self.upsampler, self.up_groups, self.rank,
                            self.up_kernel, init_scale=self.up_init_scale, conv_impl=self.conv_impl,
                            extra=self.up_extra)

    def backbone(self, lr: jax.Array, train: bool = False, rows: jax.Array | None = None) -> jax.Array:
        """The LR-resolution features (N, h, w, F) the upsampler reads; ``rows``: each sample's row in
        the global batch, for drop path (:mod:`lkca_jax.models.dropout`)."""
        x = self.head(precision.network_input(lr, self.dtype))
        for block in self.blocks:
            x = block(x, train, rows)
        return x

    def upsample(self, x: jax.Array, lr: jax.Array):
        """(sr, features) from the backbone's features, both float32; local, so it can run in tiles."""
        feats = self.up(x.astype(self.dtype))  # tiled inference may hand over features in float32
        return precision.head(feats, lr, self.scale), precision.float32(feats)

    def __call__(self, lr: jax.Array, train: bool = False, rows: jax.Array | None = None):
        return self.upsample(self.backbone(lr, train, rows), lr)


def build(m) -> LKCANet:
    """LKCA-Net / LKCA-LR from a config's ``model`` block (runs saved before ``model.norm``
    existed used BatchNorm)."""
    return LKCANet(
        bands=m.bands, scale=m.scale, features=m.features, depth=m.depth, upsampler=m.upsampler,
        groups=m.groups, rank=m.rank, up_kernel=m.up_kernel, up_init_scale=m.get("up_init_scale", 1.0),
        up_extra=m.get("up_extra", "none"), kernel_sizes=tuple(m.kernel_sizes), dilations=tuple(m.dilations),
        se_reduction=m.se_reduction,
        fusion_groups=m.fusion_groups, gamma_init=m.gamma_init, layer_scale_init=m.layer_scale_init,
        drop_path_rate=m.drop_path_rate, gelu_approximate=m.gelu_approximate, bn_momentum=m.bn_momentum,
        bn_epsilon=m.bn_epsilon, conv_impl=m.conv_impl, norm=m.get("norm", "batch"),
        ln_epsilon=m.get("ln_epsilon", 1e-6))
