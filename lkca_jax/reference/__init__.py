"""An independent PyTorch reference of every architecture (NCHW), for cross-checks and ONNX.

One module per architecture, mirroring :mod:`lkca_jax.models`: LKCA-Net and LKCA-LR are written
from docs/design.md section 3, VDSR, 3D-FCNN, SSPSR, MSDformer and ESSAformer from docs/design.md
section 8, with PyTorch's own layers (``nn.Conv2d(groups=...)``, ``nn.BatchNorm2d``,
``nn.PixelShuffle``, ``nn.GELU``) and a MATLAB bicubic residual built as two interpolation
matrices (:mod:`lkca_jax.reference.upsampler`). Module names follow the Flax modules' (SSPSR's,
MSDformer's and ESSAformer's: their public code's), and each architecture's registry entry
(:mod:`lkca_jax.methods`) says how one maps onto the other, so :mod:`lkca_jax.convert` can map
them name by name. Each reference is a ``torch.nn.Module`` class built from the ``model`` config
block alone; :mod:`lkca_jax.reference.losses` holds the training losses.

Importing this package needs torch; nothing else in the library does.
"""

from __future__ import annotations

from lkca_jax.methods import architecture_of


def up_groups(m) -> int:
    """The upsampler groups the Flax model resolves (and validates) for the same config."""
    from lkca_jax.models import build_model  # flax only where a reference is built

    return build_model(m).up_groups


def build_torch_model(config):
    """The PyTorch reference of ``config.model`` (``config`` may be the model block itself), through
    :mod:`lkca_jax.methods`."""
    m = config.model if "model" in config else config
    return architecture_of(m).build_torch(m)
