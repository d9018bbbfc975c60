"""Parameter and FLOP counts in the paper's convention: fvcore's (docs/design.md section 9).

* params: trainable parameters only (the ``params`` collection), as
  ``sum(p.numel() for p in model.parameters())`` in PyTorch.
* FLOPs (multiply-accumulates, as fvcore counts them) for one low-resolution input of
  ``lr_size`` x ``lr_size`` pixels, batch 1, inference mode:

  ============================  ==========================================================
  convolution (any groups,      ``prod(weight shape) * prod(output spatial)``: per output
  dilation; taps on padding,    element ``taps*k*k*Cin/groups``; the bias is not counted
  3-D over a depth-1 axis)
  dense (linear)                tokens * in * out
  BatchNorm (eval)              2 per element
  LayerNorm module              5 per element
  adaptive average pooling      1 per input element (squeeze-excitation's and channel
                                attention's pooling)
  attention products (``@``)    the product of the dimensions (:class:`~lkca_jax.models.
                                attention.Einsum`: MSDformer's q k^T and attn v,
                                ESSAformer's k^T v and q (k^T v))
  deformable convolution        as the dense conv over the sampled taps (MSDformer's
                                stride-3 conv); the bilinear sampling itself 0
  everything else               0: activations, element-wise products and sums, the
                                hand-written channels-first LayerNorm, concatenation,
                                PixelShuffle and the bicubic residual
  ============================  ==========================================================

Counts are collected by intercepting Flax module calls while the model is traced abstractly
(``jax.eval_shape``): nothing is computed or allocated. The rules for this library's own modules
(convolutions, the attention products, the deformable convolution, the fused and concatenating
1x1 convs, the attention poolings) live beside each module as its ``macs(args, y)`` method, so a
new architecture's special layer brings its own rule; Flax's Dense, BatchNorm and LayerNorm are
counted here by type.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from lkca_jax.models import build_model


def _flops_of_call(module: nn.Module, args: tuple, y: jax.Array) -> int:
    """fvcore's count for one call of ``module`` on ``args`` giving ``y`` (see the table above): the
    module's own ``macs(args, y)`` where it has one (each model module that fvcore counts in its
    own way carries its rule beside it), else Flax's layers by type, else 0."""
    if not args:  # a parameter-only module (MSDformer's deformable kernel)
        return 0
    x = args[0]
    if hasattr(module, "macs"):
        return module.macs(args, y)
    if isinstance(module, nn.Dense):
        return y.size * x.shape[-1]
    if isinstance(module, nn.BatchNorm):
        return 2 * y.size
    if isinstance(module, nn.LayerNorm):
        return 5 * y.size
    return 0


def count(model: nn.Module, bands: int, lr_size: int = 16) -> dict:
    """``{'params': int, 'macs': int}`` for ``model`` on one (1, lr_size, lr_size, bands) input."""
    macs = 0

    def interceptor(next_fun, args, kwargs, context):
        nonlocal macs
        y = next_fun(*args, **kwargs)
        if context.method_name == "__call__":
            macs += _flops_of_call(context.module, args, y)
        return y

    def init():
        with nn.intercept_methods(interceptor):
            return model.init(jax.random.key(0), jnp.zeros((1, lr_size, lr_size, bands), jnp.float32))

    variables = jax.eval_shape(init)
    params = sum(math.prod(p.shape) for p in jax.tree.leaves(variables.get("params", {})))
    return {"params": int(params), "macs": int(macs)}


def count_config(config) -> dict:
    """Counts for the model a config describes, on its ``count_lr_size`` input."""
    return count(build_model(config), config.model.bands, config.get("count_lr_size", 16))


def human(n: float, unit: str) -> str:
    """The paper's units: params in M with 3 decimals, MACs in G with 3 decimals."""
    return f"{n / 1e6:.3f}M" if unit == "M" else f"{n / 1e9:.3f}G"


PARTS = ("backbone", "learnable upsampler", "reconstruction")


def parts_config(config) -> dict:
    """The paper's Fig. 1 split of the parameters: ``{part: count}`` for the :data:`PARTS` (the
    upsampler where the architecture's registry entry puts it, every x2 stage of it; the
    reconstruction its modules on the upsampled map; the backbone everything else)."""
    from lkca_jax.convert import flax_template
    from lkca_jax.methods import architecture_of, upsampler_parts

    params = flax_template(config).get("params", {})
    size = lambda tree: sum(math.prod(p.shape) for p in jax.tree.leaves(tree))
    total = size(params)
    arch = architecture_of(config)
    up = sum(size(t) for t in upsampler_parts({"params": params}, config).values()) if arch.upsampler else 0
    rec = sum(size(params[k]) for k in arch.reconstruction)
    return {"backbone": total - up - rec, "learnable upsampler": up, "reconstruction": rec}
