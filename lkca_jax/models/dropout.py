"""Per-sample random drops that do not depend on how the batch is split over devices.

A training step gives the model each sample's row in the global batch (``rows``, from
:mod:`lkca_jax.data.pipeline`); sample j's draw comes from ``fold_in(key, rows[j])``. Under pmap each
device holds some rows of the batch, under jit one program holds all of them, and both draw the
same masks from the same key, without collectives and without the model knowing which runs it.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def keep_mask(key: jax.Array, rows: jax.Array, rate: float, shape: Sequence[int] = ()) -> jax.Array:
    """(len(rows), *shape) booleans, each True with probability 1 - ``rate``."""
    return jax.vmap(lambda r: jax.random.bernoulli(jax.random.fold_in(key, r), 1.0 - rate, tuple(shape)))(rows)


def rows_or_range(rows: jax.Array | None, n: int) -> jax.Array:
    """``rows``, or 0..n-1 when the batch is the whole global batch (no rows given)."""
    return jnp.arange(n) if rows is None else rows


class SampleDropout(nn.Module):
    """In training, zero each sample's :meth:`mask_shape` units with probability ``rate`` (each
    sample's draw from its row) and rescale the kept ones by 1 / (1 - rate); at inference, nothing."""

    rate: float = 0.0

    def mask_shape(self, y: jax.Array) -> tuple[int, ...]:
        return ()

    @nn.compact
    def __call__(self, y: jax.Array, train: bool = False, rows: jax.Array | None = None) -> jax.Array:
        if not train or self.rate == 0:
            return y
        keep = keep_mask(self.make_rng("dropout"), rows_or_range(rows, y.shape[0]), self.rate, self.mask_shape(y))
        keep = keep.reshape(keep.shape[:1] + (1,) * (y.ndim - keep.ndim) + keep.shape[1:])  # broadcast over y
        return jnp.where(keep, y / (1.0 - self.rate), jnp.zeros_like(y))


class DropPath(SampleDropout):
    """Stochastic depth: a sample's whole residual branch dropped."""


class ChannelDropout(SampleDropout):
    """PyTorch's ``Dropout2d`` on (N, H, W, C): each sample's channels dropped whole."""

    def mask_shape(self, y: jax.Array) -> tuple[int, ...]:
        return (y.shape[-1],)
