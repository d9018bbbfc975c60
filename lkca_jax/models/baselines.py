"""The paper's plain-CNN baselines behind the LKCA-Net interface: VDSR, 3D-FCNN and Bicubic.

Each maps the LR batch (N, h, w, C) to ``(sr, features)``, features being the output of its
learnable upsampler (:class:`~lkca_jax.models.upsampler.Upsampler`, so ``model.upsampler``,
``rank`` and ``lowrank`` apply to them as to LKCA-Net), and sr = features + the MATLAB bicubic
image when the model's residual is on.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from lkca_jax import precision
from lkca_jax.models.upsampler import UpsamplerSettings, resolve_groups, upsampler_fields
from lkca_jax.ops.conv import Conv
from lkca_jax.ops.imresize import imresize

# VDSR's own initialisation (He et al. 2015, as in Kim et al. 2016): with PyTorch's default
# U(+-1/sqrt(fan_in)) and no biases, 20 ReLU convolutions shrink the signal to ~1e-8 and it never trains.
HE = nn.initializers.he_normal()


class VDSR(UpsamplerSettings):
    """VDSR as the paper configures it (docs/design.md section 8.5): Conv3x3 C->64 + ReLU,
    18 x (Conv3x3 64->64 + ReLU), Conv3x3 64->C*r*r, PixelShuffle, all without bias, plus the
    bicubic residual (VDSR's global residual learning).

    The last conv starts at zero (``model.up_init_scale``, 0 by default), so SR starts as the
    bicubic image, as VDSR's residual learning intends. With it He-initialised like the others, the
    initial residual is noise as large as the input; Adam's first steps remove it by shrinking every
    layer a little, which over 20 layers compounds to a signal ~1e-3 of its start, the gradients
    fall by 3-4 orders of magnitude while Adam's second moments still remember the first ones, and
    the net stays at bicubic (measured: ``bench/layer_stats.py``, docs/results.md)."""

    bands: int = 1
    scale: int = 2
    features: int = 64
    depth: int = 18
    bicubic_residual: bool = True

    @property
    def tile_radius(self) -> int:  # LR pixels of context: one per 3x3 conv; the bicubic branch needs 2
        return max(self.depth + 2, 2)

    @property
    def up_groups(self) -> int:
        return resolve_groups(self.features, self.bands * self.scale ** 2, self.groups)

    @nn.compact
    def __call__(self, lr: jax.Array, train: bool = False):
        conv = functools.partial(Conv, kernel_size=3, use_bias=False, impl=self.conv_impl, kernel_init=HE)
        x = nn.relu(conv(self.features, name="head")(precision.network_input(lr, self.dtype)))
        for i in range(self.depth):
            x = nn.relu(conv(self.features, name=f"conv{i}")(x))
        feats = self.make_upsampler(self.features, self.bands * self.scale ** 2, self.scale, use_bias=False,
                                    kernel_init=HE)(x)
        return precision.head(feats, lr if self.bicubic_residual else None, self.scale), precision.float32(feats)


class FCNN3D(UpsamplerSettings):
    """3D-FCNN as the paper used it (docs/design.md section 8.4): Mei et al.'s 64-32-9 stack on the LR
    cube with the bands as ``Conv3d`` input channels over a depth-1 axis, kernels (3,9,9), 1, 1 and
    (3,5,5) with ReLUs between, the last emitting C*r*r channels for PixelShuffle(r).

    The (3,9,9) and (3,5,5) kernels' outer spectral taps only ever meet the depth padding's zeros;
    they are allocated (``Conv(taps=3)``; every layer is a ``Conv3d``) because the paper's Param and
    Flops columns count them (fvcore counts the taps on padding), and only the centre tap is computed.
    The network therefore computes an SRCNN-like 9-1-1-5 net with a sub-pixel output.
    ``bicubic_residual`` (default on, our choice: the paper's text is silent, its counts cannot
    tell, and the original 3D-FCNN predicts the image itself but from a bicubic input) adds the
    bicubic image, as VDSR and LKCA-Net do."""

    bands: int = 1
    scale: int = 2
    widths: tuple[int, int, int] = (64, 32, 9)
    taps: int = 3
    bicubic_residual: bool = True

    @property
    def tile_radius(self) -> int:  # 9x9 then 5x5 (4 + 2); the bicubic branch needs 2 beside them
        return 6

    @property
    def up_groups(self) -> int:
        return resolve_groups(self.widths[-1], self.bands * self.scale ** 2, self.groups)

    @nn.compact
    def __call__(self, lr: jax.Array, train: bool = False):
        (w1, w2, w3), conv = self.widths, functools.partial(Conv, impl=self.conv_impl)
        x = nn.relu(conv(w1, 9, taps=self.taps, name="conv1")(precision.network_input(lr, self.dtype)))
        x = nn.relu(conv(w2, 1, taps=1, name="conv2")(x))
        x = nn.relu(conv(w3, 1, taps=1, name="conv3")(x))
        feats = self.make_upsampler(w3, self.bands * self.scale ** 2, self.scale, kernel_size=5, taps=self.taps)(x)
        return precision.head(feats, lr if self.bicubic_residual else None, self.scale), precision.float32(feats)


class Bicubic(nn.Module):
    """Parameter-free MATLAB bicubic upsampling; features is None."""

    bands: int
    scale: int
    dtype: Any = jnp.float32  # unused: the bicubic image is always float32
    tile_radius = 2

    def __call__(self, lr: jax.Array, train: bool = False):
        return imresize(precision.float32(lr), self.scale), None


def build_vdsr(m) -> VDSR:
    return VDSR(bands=m.bands, scale=m.scale, features=m.vdsr.features, depth=m.vdsr.depth,
                bicubic_residual=m.bicubic_residual, **upsampler_fields(m))


def build_fcnn3d(m) -> FCNN3D:
    return FCNN3D(bands=m.bands, scale=m.scale, widths=tuple(m.fcnn3d.widths), taps=m.fcnn3d.taps,
                  bicubic_residual=m.bicubic_residual, **upsampler_fields(m))


def build_bicubic(m) -> Bicubic:
    return Bicubic(bands=m.bands, scale=m.scale)
