"""Model zoo: one builder from an ml_collections config to a Flax module."""

from __future__ import annotations

import flax.linen as nn

from lkca_jax.models.baselines import VDSR, Bicubic
from lkca_jax.models.lkca import LKCANet, resolve_groups

__all__ = ["LKCANet", "VDSR", "Bicubic", "build_model", "resolve_groups"]


def build_model(config, axis_name: str | None = None) -> nn.Module:
    """Build the model ``config.model`` describes (``config`` may be the model block itself).

    Every module maps an (N, h, w, C) float32 low-resolution batch to ``(sr, features)``.
    ``axis_name`` makes BatchNorm average its batch statistics across a parallel axis.
    """
    m = config.model if "model" in config else config
    name = m.name
    if name == "lkca":
        return LKCANet(
            bands=m.bands, scale=m.scale, features=m.features, depth=m.depth, upsampler=m.upsampler,
            groups=m.groups, rank=m.rank, up_kernel=m.up_kernel, up_init_scale=m.get("up_init_scale", 1.0),
            kernel_sizes=tuple(m.kernel_sizes), dilations=tuple(m.dilations), se_reduction=m.se_reduction,
            fusion_groups=m.fusion_groups,
            gamma_init=m.gamma_init, layer_scale_init=m.layer_scale_init, drop_path_rate=m.drop_path_rate,
            gelu_approximate=m.gelu_approximate, bn_momentum=m.bn_momentum, bn_epsilon=m.bn_epsilon,
            conv_impl=m.conv_impl, axis_name=axis_name,
            norm=m.get("norm", "batch"), ln_epsilon=m.get("ln_epsilon", 1e-6))  # runs from before model.norm: batch
    if name == "vdsr":
        return VDSR(bands=m.bands, scale=m.scale, features=m.vdsr_features, depth=m.vdsr_depth,
                    residual=m.vdsr_residual, conv_impl=m.conv_impl)
    if name == "bicubic":
        return Bicubic(bands=m.bands, scale=m.scale)
    raise ValueError(f"unknown model name {name!r}; expected 'lkca', 'vdsr' or 'bicubic'")
