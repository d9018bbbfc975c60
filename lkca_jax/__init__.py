"""lkca-jax: LKCA-Net hyperspectral super-resolution in JAX/Flax."""

from lkca_jax.checkpoint import load_run
from lkca_jax.models import build_model
from lkca_jax.pretrained import load_pretrained

__version__ = "0.1.0"
__all__ = ["build_model", "load_pretrained", "load_run", "__version__"]
