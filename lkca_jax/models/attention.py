"""Small modules the transformer baselines share (MSDformer, ESSAformer): PyTorch's PReLU and an
attention product the FLOP counter sees.

fvcore counts ``@``/``matmul``/``einsum`` in attention (the product of the dimensions;
docs/design.md section 9.3) while the counter here sees Flax module calls; :class:`Einsum` is an
``einsum`` as a module, so :mod:`lkca_jax.accounting` counts it as fvcore does.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp


class Einsum(nn.Module):
    """``jnp.einsum(spec, a, b)``, no parameters; fvcore's count: the product of every index's size."""

    spec: str

    @nn.compact
    def __call__(self, a: jax.Array, b: jax.Array) -> jax.Array:
        return jnp.einsum(self.spec, a, b)

    def macs(self, args: tuple, y: jax.Array) -> int:
        """fvcore's count of one call (the hook :mod:`lkca_jax.accounting` reads)."""
        sizes = {}
        for names, x in zip(self.spec.split("->")[0].split(","), args):
            sizes.update(zip(names, x.shape))
        return math.prod(sizes.values())


class PReLU(nn.Module):
    """``nn.PReLU()``: one learned slope, ``weight`` of shape (1,), 0.25 at init."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        a = self.param("weight", nn.initializers.constant(0.25), (1,)).astype(x.dtype)
        return jnp.where(x >= 0, x, a * x)


def torch_bias_init(fan_in: int):
    """PyTorch's default bias init for a layer with ``fan_in`` inputs: U(+-1/sqrt(fan_in))."""
    bound = 1 / math.sqrt(fan_in)
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)
