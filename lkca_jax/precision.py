"""Compute precision: which dtype each part of a model and of training runs in.

``train.compute_dtype`` (and ``eval.dtype``, ``sr``/``export --dtype``) is ``float32``,
``bfloat16`` or ``float16``. The rule, the same for all nine methods:

* **float32 always**: parameters, the optimizer state and the EMA (the train state never holds a
  low-precision copy); the LR input and the bicubic image made from it; the sum of the bicubic
  residual and the network's output, and so the SR output and the features a KD loss reads (both
  leave the model as float32: :func:`head`); the losses and the metrics (they read those outputs).
* **the compute dtype**: every convolution, matrix product and activation. The model casts its
  input once (:func:`network_input`) and each layer follows its input's dtype: our ``Conv`` casts
  its kernel and bias to it, ``nn.Dense``/``nn.LayerNorm``/``nn.BatchNorm`` get ``dtype=x.dtype``.
* **float32 inside, the compute dtype out**: normalisation statistics (LKCA's channel LayerNorm by
  hand, flax's LayerNorm and BatchNorm with their ``force_float32_reductions``), softmax and the
  attention's reductions (MSDformer's token norms and softmax, ESSAformer's channel means, sums and
  norms), and the deformable conv's sampling positions and bilinear weights (a bfloat16 position
  past 256 pixels would be rounded to even pixels). Each is a sum over many values or a position,
  where 8 bits of mantissa lose what the result needs; their outputs go back to the compute dtype.
  The squeeze-excitation means (``jnp.mean``) accumulate in float32 by JAX's own rule for 16-bit
  floats.

``float16`` trains with dynamic loss scaling (flax's :class:`~flax.training.dynamic_scale.DynamicScale`,
in :mod:`lkca_jax.training`); ``bfloat16`` has float32's range and needs none.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lkca_jax.ops.imresize import imresize

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def resolve(name) -> jnp.dtype:
    """``'bfloat16'`` (or a dtype) -> the dtype; a clear error for anything else."""
    if name is None or name == "":
        return jnp.dtype(jnp.float32)
    key = name if isinstance(name, str) else jnp.dtype(name).name
    if key not in DTYPES:
        raise ValueError(f"compute dtype must be one of {tuple(DTYPES)}, got {name!r}")
    return jnp.dtype(DTYPES[key])


def network_input(lr: jax.Array, dtype) -> jax.Array:
    """The LR batch in the compute dtype: what the network's first layer reads."""
    return lr.astype(dtype)


def head(y: jax.Array, lr: jax.Array | None = None, scale: int = 0) -> jax.Array:
    """The model's SR output in float32: ``y`` (the network's last map, any dtype), plus the float32
    bicubic image of the float32 ``lr`` when it is given (the bicubic residual). Shared by every
    architecture that adds the bicubic image (LKCA-Net, VDSR, 3D-FCNN, MSDformer's and
    ESSAformer's ``bicubic_residual``)."""
    y = y.astype(jnp.float32)
    return y if lr is None else y + imresize(lr.astype(jnp.float32), scale)


def float32(x: jax.Array) -> jax.Array:
    return x.astype(jnp.float32)

