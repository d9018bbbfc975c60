"""LKCA's fusion step in three forms, timed side by side in one process (issue 20, item 3).

    python bench/fusion_forms.py [--rounds 5]

The step is ``fuse(concat(a, d0, d1) * gate)``: the three F-channel maps of an LKCA (its input and
its two depthwise outputs), the squeeze-excitation gate per sample and channel, and the grouped 1x1
conv 3F -> F with 4 groups, plus its bias. Forms:

* ``group-major`` (the model's since fix 4): the gated concatenation, its group-major copy, one
  group-batched matrix product (``lkca_jax.ops.conv.grouped_conv``);
* ``block-diagonal`` (before fix 4): the gated concatenation times the dense 3F x F kernel with
  zeros off the groups (4x the multiply-adds, no transposes);
* ``per-map`` (the model's at inference since issue 20: ``lkca_jax.ops.conv.gated_fusion``): no
  concatenation; each map times the rows of the block-diagonal kernel it meets, restricted to the
  columns they reach (2x the multiply-adds), the gate folded into those per-sample kernels, the
  three products summed.

At the training shape (batch 16 of 16 x 16) and batch-1 images of 64 to 256 pixels a side, F = 128,
forward only, and forward plus backward (the input and kernel gradients) at the training shape.
Each form's output is checked against the group-major one first.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from lkca_jax import hostmem
from lkca_jax.ops.conv import gated_fusion, grouped_conv

GROUPS = 4


def block_diagonal(kernel: jax.Array) -> jax.Array:
    """Grouped 1x1 kernel (1, 1, 3F/g, F) -> the dense (3F, F) matrix with zeros off the groups."""
    cig, f = kernel.shape[2:]
    fg = f // GROUPS
    dense = jnp.zeros((cig * GROUPS, f), kernel.dtype)
    for g in range(GROUPS):
        dense = dense.at[g * cig:(g + 1) * cig, g * fg:(g + 1) * fg].set(kernel[0, 0, :, g * fg:(g + 1) * fg])
    return dense


def group_major(maps, gate, kernel, bias):
    z = jnp.concatenate(maps, axis=-1) * gate[:, None, None, :]
    return grouped_conv(z, kernel, bias, GROUPS)


def dense_form(maps, gate, kernel, bias):
    z = jnp.concatenate(maps, axis=-1) * gate[:, None, None, :]
    return jnp.einsum("nhwc,co->nhwo", z, block_diagonal(kernel)) + bias


def per_map(maps, gate, kernel, bias):
    return gated_fusion(maps, gate, kernel, bias, GROUPS)


FORMS = {"group-major": group_major, "block-diagonal": dense_form, "per-map": per_map}


def best_ms(fn, args, rounds):
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--features", type=int, default=128)
    args = ap.parse_args()
    f, rng = args.features, np.random.default_rng(0)
    kernel = jnp.asarray(rng.standard_normal((1, 1, 3 * f // GROUPS, f)), jnp.float32) * 0.1
    bias = jnp.asarray(rng.standard_normal(f), jnp.float32)
    print(f"jax {jax.__version__} ({jax.default_backend()}); F = {f}; median ms of {args.rounds} calls\n")
    print("| shape | pass | " + " | ".join(FORMS) + " |\n|---|---|" + "---|" * len(FORMS))
    for n, size, grad in [(16, 16, False), (16, 16, True), (1, 64, False), (1, 128, False), (1, 256, False)]:
        maps = tuple(jnp.asarray(rng.standard_normal((n, size, size, f)), jnp.float32) for _ in range(3))
        gate = jnp.asarray(rng.random((n, 3 * f)), jnp.float32)
        want = np.asarray(jax.jit(group_major)(maps, gate, kernel, bias))
        row = []
        for form in FORMS.values():
            np.testing.assert_allclose(np.asarray(jax.jit(form)(maps, gate, kernel, bias)), want, rtol=1e-4, atol=1e-4)
            if grad:
                fn = jax.jit(jax.grad(lambda ms, g, k, b, form=form: jnp.sum(jnp.sin(form(ms, g, k, b))), (0, 1, 2)))
            else:
                fn = jax.jit(form)
            row.append(best_ms(fn, (maps, gate, kernel, bias), args.rounds))
        print(f"| {n} x {size}x{size} | {'fwd+bwd' if grad else 'fwd'} | " + " | ".join(f"{ms:.2f}" for ms in row)
              + " |", flush=True)


if __name__ == "__main__":
    hostmem.keep_freed_memory()  # as the entry points do (lkca_jax/hostmem.py)
    main()
