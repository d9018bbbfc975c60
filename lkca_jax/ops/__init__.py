"""Numerical building blocks: MATLAB imresize, PixelShuffle, fast grouped convolutions, deformable convolution."""

from lkca_jax.ops.conv import Conv, conv, conv_xla, depthwise_conv, grouped_conv
from lkca_jax.ops.imresize import imresize, imresize_np, resize_matrix
from lkca_jax.ops.pixel_shuffle import pixel_shuffle, pixel_unshuffle

__all__ = ["Conv", "conv", "conv_xla", "depthwise_conv", "grouped_conv", "imresize", "imresize_np", "resize_matrix",
           "pixel_shuffle", "pixel_unshuffle"]
