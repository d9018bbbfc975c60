"""Two LKCA pieces in the forms considered for them, timed side by side in one process (issue 20).

    python bench/forms.py [--part bicubic|fusion|all] [--rounds 5]

**The bicubic branch** (``--part bicubic``): ``imresize(lr, r)`` for batch-1 LR images of 128
bands, x4, as the two dense ``(out, in)`` matrix products the library used before (97% zeros at
128 -> 512) and as the polyphase form it uses now (:func:`lkca_jax.ops.imresize.imresize`: 4 taps
per output and axis, gathers of the mirrored rows), alone and as the models run it, added to an
SR-sized map. Outputs agree within 1e-6 first.

**LKCA's fusion step** (``--part fusion``): ``fuse(concat(a, d0, d1) * gate)``, the three F-channel
maps of an LKCA (its input and its two depthwise outputs), the squeeze-excitation gate per sample
and channel, and the grouped 1x1 conv 3F -> F with 4 groups, plus its bias. Forms:

* ``group-major`` (the model's in training): the gated concatenation, its group-major copy, one
  group-batched matrix product (``lkca_jax.ops.conv.grouped_conv``);
* ``block-diagonal`` (before issue 8's fix 4): the gated concatenation times the dense 3F x F
  kernel with zeros off the groups (4x the multiply-adds, no transposes);
* ``per-map`` (the model's at inference: ``lkca_jax.ops.conv.gated_fusion``): no concatenation;
  each map times the rows of the block-diagonal kernel it meets, restricted to the columns they
  reach (2x the multiply-adds), the gate folded into those per-sample kernels, the three products
  summed.

At the training shape (batch 16 of 16 x 16; forward, and forward plus backward for the input and
kernel gradients) and batch-1 images of 64 to 256 pixels a side, F = 128. Each form's output is
checked against the group-major one first.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from lkca_jax import hostmem
from lkca_jax.ops.conv import gated_fusion, grouped_conv
from lkca_jax.ops.imresize import imresize, resize_matrix

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


def dense(x: jax.Array, scale: int) -> jax.Array:
    mh = jnp.asarray(resize_matrix(x.shape[1], scale), x.dtype)
    mw = jnp.asarray(resize_matrix(x.shape[2], scale), x.dtype)
    hi = jax.lax.Precision.HIGHEST
    return jnp.einsum("Ww,nHwc->nHWc", mw, jnp.einsum("Hh,nhwc->nHwc", mh, x, precision=hi), precision=hi)


FUSION_FORMS = {"group-major": group_major, "block-diagonal": dense_form, "per-map": per_map}


def median_ms(fn, args, rounds):
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def bicubic_table(rounds: int, r: int = 4):
    rng = np.random.default_rng(0)
    print(f"The bicubic branch: x{r}, 128 bands, batch 1; median ms of {rounds}\n")
    print("| LR | dense alone | polyphase alone | dense + add | polyphase + add | speed-up (+ add) |\n"
          "|---|---|---|---|---|---|")
    for size in (64, 128, 256):
        x = jnp.asarray(rng.random((1, size, size, 128)), jnp.float32)
        feats = jnp.asarray(rng.random((1, r * size, r * size, 128)), jnp.float32)
        np.testing.assert_allclose(np.asarray(imresize(x, r)), np.asarray(dense(x, r)), atol=1e-6)
        row = [median_ms(jax.jit(lambda a, f=f: f(a, r)), (x,), rounds) for f in (dense, imresize)]
        row += [median_ms(jax.jit(lambda a, b, f=f: f(a, r) + b), (x, feats), rounds) for f in (dense, imresize)]
        print(f"| {size}x{size} | " + " | ".join(f"{ms:.1f}" for ms in row) + f" | {row[2] / row[3]:.1f}x |",
              flush=True)


def fusion_table(rounds: int, f: int = 128):
    rng = np.random.default_rng(0)
    kernel = jnp.asarray(rng.standard_normal((1, 1, 3 * f // GROUPS, f)), jnp.float32) * 0.1
    bias = jnp.asarray(rng.standard_normal(f), jnp.float32)
    print(f"LKCA's fusion: F = {f}; median ms of {rounds} calls\n")
    print("| shape | pass | " + " | ".join(FUSION_FORMS) + " |\n|---|---|" + "---|" * len(FUSION_FORMS))
    for n, size, grad in [(16, 16, False), (16, 16, True), (1, 64, False), (1, 128, False), (1, 256, False)]:
        maps = tuple(jnp.asarray(rng.standard_normal((n, size, size, f)), jnp.float32) for _ in range(3))
        gate = jnp.asarray(rng.random((n, 3 * f)), jnp.float32)
        want = np.asarray(jax.jit(group_major)(maps, gate, kernel, bias))
        row = []
        for form in FUSION_FORMS.values():
            np.testing.assert_allclose(np.asarray(jax.jit(form)(maps, gate, kernel, bias)), want, rtol=1e-4, atol=1e-4)
            if grad:
                fn = jax.jit(jax.grad(lambda ms, g, k, b, form=form: jnp.sum(jnp.sin(form(ms, g, k, b))), (0, 1, 2)))
            else:
                fn = jax.jit(form)
            row.append(median_ms(fn, (maps, gate, kernel, bias), rounds))
        print(f"| {n} x {size}x{size} | {'fwd+bwd' if grad else 'fwd'} | " + " | ".join(f"{ms:.2f}" for ms in row)
              + " |", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", default="all", choices=("bicubic", "fusion", "all"))
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    print(f"jax {jax.__version__} ({jax.default_backend()})\n")
    if args.part in ("bicubic", "all"):
        bicubic_table(args.rounds)
        print()
    if args.part in ("fusion", "all"):
        fusion_table(args.rounds)


if __name__ == "__main__":
    hostmem.keep_freed_memory()  # as the entry points do (lkca_jax/hostmem.py)
    main()
