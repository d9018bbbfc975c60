"""The paper's baselines behind the LKCA-Net interface: VDSR and Bicubic."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax

from lkca_jax.ops.conv import Conv
from lkca_jax.ops.imresize import imresize
from lkca_jax.ops.pixel_shuffle import pixel_shuffle

# VDSR's own initialisation (He et al. 2015, as in Kim et al. 2016): with PyTorch's default
# U(+-1/sqrt(fan_in)) and no biases, 20 ReLU convolutions shrink the signal to ~1e-8 and it never trains.
HE = nn.initializers.he_normal()


class VDSR(nn.Module):
    """VDSR as the paper configures it (RECONSTRUCTION.md section 2): Conv3x3 C->64 + ReLU,
    18 x (Conv3x3 64->64 + ReLU), Conv3x3 64->C*r*r, PixelShuffle, all without bias,
    plus the bicubic residual (VDSR's global residual learning)."""

    bands: int
    scale: int
    features: int = 64
    depth: int = 18
    residual: bool = True
    conv_impl: str = "auto"

    @property
    def tile_radius(self) -> int:  # LR pixels of context: one per 3x3 conv; the bicubic branch needs 2
        return max(self.depth + 2, 2)

    @nn.compact
    def __call__(self, lr: jax.Array, train: bool = False):
        conv = functools.partial(Conv, kernel_size=3, use_bias=False, impl=self.conv_impl, kernel_init=HE)
        x = nn.relu(conv(self.features, name="head")(lr))
        for i in range(self.depth):
            x = nn.relu(conv(self.features, name=f"conv{i}")(x))
        feats = pixel_shuffle(conv(self.bands * self.scale ** 2, name="up")(x), self.scale)
        return (feats + imresize(lr, self.scale) if self.residual else feats), feats


class Bicubic(nn.Module):
    """Parameter-free MATLAB bicubic upsampling; features is None."""

    bands: int
    scale: int
    tile_radius = 2

    def __call__(self, lr: jax.Array, train: bool = False):
        return imresize(lr, self.scale), None


def build_vdsr(m, axis_name: str | None = None) -> VDSR:
    del axis_name  # no batch statistics
    return VDSR(bands=m.bands, scale=m.scale, features=m.vdsr_features, depth=m.vdsr_depth,
                residual=m.vdsr_residual, conv_impl=m.conv_impl)


def build_bicubic(m, axis_name: str | None = None) -> Bicubic:
    del axis_name
    return Bicubic(bands=m.bands, scale=m.scale)
