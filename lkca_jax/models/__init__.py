"""Model zoo: one builder from an ml_collections config to a Flax module (through
:mod:`lkca_jax.methods`, which says where each architecture's builder is)."""

from __future__ import annotations

import flax.linen as nn

from lkca_jax import precision
from lkca_jax.methods import architecture_of
from lkca_jax.models.baselines import FCNN3D, VDSR, Bicubic
from lkca_jax.models.essaformer import ESSAformer
from lkca_jax.models.lkca import LKCANet
from lkca_jax.models.msdformer import MSDformer
from lkca_jax.models.sspsr import SSPSR
from lkca_jax.models.upsampler import resolve_groups

__all__ = ["LKCANet", "VDSR", "FCNN3D", "SSPSR", "MSDformer", "ESSAformer", "Bicubic", "build_model", "resolve_groups"]


def build_model(config, axis_name: str | None = None, dtype=None) -> nn.Module:
    """Build the model ``config.model`` describes (``config`` may be the model block itself).

    Every module maps an (N, h, w, C) float32 low-resolution batch to float32 ``(sr, features)``.
    ``axis_name`` makes BatchNorm average its batch statistics across a parallel axis. ``dtype``
    (``'float32'``, ``'bfloat16'``, ``'float16'``; None: float32) is the compute dtype: the
    parameters are float32 whatever it is (:mod:`lkca_jax.precision` says what runs in which).
    """
    m = config.model if "model" in config else config
    module = architecture_of(m).build_flax(m)
    extra = {"axis_name": axis_name} if axis_name and "axis_name" in module.__dataclass_fields__ else {}
    return module.clone(dtype=precision.resolve(dtype), **extra)
