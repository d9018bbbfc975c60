"""Pieces of the models in the forms considered for them, timed side by side in one process.

    python bench/forms.py [--part bicubic|fusion|winograd|backward|upsampler|rows|product|all] [--rounds 5]

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

**Dense 3x3 convolutions** (``--part winograd``): XLA's convolution against Winograd's F(2x2, 3x3)
(:func:`lkca_jax.ops.conv.winograd_conv3x3`), forward, at the shapes of MSDformer's head, skip,
tail and upsampler convs, LKCA-Net's upsampler, ESSAformer's Convup, VDSR's and smaller ones; the
fast path uses Winograd from ``WINOGRAD_MIN_PIXELS`` output pixels and ``WINOGRAD_MIN_CHANNELS``
input and output channels while one image's transformed tensors stay under ``WINOGRAD_MAX_VALUES``
values, a larger batch in chunks of fewer images, and one im2col product where the map has fewer
pixels than the conv has outputs (the last columns: which one the fast path runs, and in how many
chunks Winograd's runs). Outputs agree within 1e-5 of their scale first.

**The dense 3x3 convolution's backward** (``--part backward``): forward plus backward, XLA's autodiff
of its convolution against the fast path's custom backward (``lkca_jax.ops.conv._dense_bwd``), at
the shapes of the train steps that were slow (SSPSR's branch at a batch of 4, its final conv,
LKCA-Net's upsampler, VDSR); the gradients agree within 1e-4 of their scale first (a kernel
gradient sums up to 2^20 products, in another order than XLA's).

**The learnable upsampler's conv and shuffle** (``--part upsampler``): LKCA-Net's x8 upsampler
(``ShuffleConv``: a dense 3x3 conv 128 -> 8192, bias, PixelShuffle(8)) at batch 1 and 16 of
16 x 16 LR and batch 1 of 64 x 64, its conv by the fast path's rule, in four forms: the kernel's
columns permuted sub-pixel-major by a gather (the form before c311da0) or by a transpose (the
form now where the outputs outnumber the kernel's values), then the shuffle as moves of channel
runs; or no permutation and the shuffle of single values (the form now on smaller maps); and the
conv alone, by XLA and as one im2col product. Outputs agree within 1e-5 of their scale first.

**Dense convolutions by kernel rows** (``--part rows``): XLA's convolution against
:func:`lkca_jax.ops.conv.row_tap_conv` (one product of the k width-shifted input views with the k
kernel rows, the row products shifted and summed; a batch in the chunks the fast path takes), forward,
at the shapes of 3D-FCNN's 9 x 9 first conv, VDSR's convs and ESSAformer's 256 -> 64, and beside
them shapes outside the fast path's rule (``ROW_TAP_*``: more or fewer output channels, more input
channels, fewer multiply-adds, row products past the cap). Outputs agree within 1e-5 of their
scale first.

**VDSR's upsampler conv at batch 1** (``--part product``): 16 x 16 x 64 -> 64 r^2 (3x3, x4 and x8),
the one product behind VDSR's batch-1 inference miss (docs/benchmarks.md): XLA's convolution, the
fast path's im2col product, the product alone on given columns, Winograd's F(2x2, 3x3) with its
kernel transform in every call (as a model's weights arrive) and with the kernel transformed
beforehand, and the kernel transform alone; beside them, in a process of its own with the same
thread count (when PyTorch is installed), PyTorch's ``conv2d`` of the same conv and ``mm`` of the
same product. Outputs agree within 1e-5 of their scale first.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from lkca_jax import hostmem
from lkca_jax.ops.conv import (
    _group_cols,
    _group_kernel,
    _winograd_apply,
    _winograd_kernel,
    columns_smaller,
    conv_xla,
    gated_fusion,
    grouped_conv,
    row_tap_chunks,
    row_tap_conv,
    uses_row_taps,
    uses_winograd,
    winograd_chunks,
    winograd_conv3x3,
)
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
    for _ in range(2):  # compile, then one call more: the heap grows to its steady size in the first calls
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


WINOGRAD_SHAPES = [  # (input shape, output channels, where it occurs)
    ((21, 64, 64, 240), 240, "MSDformer head (21 band groups), 64 x 64 LR"),
    ((1, 256, 256, 128), 240, "MSDformer skip_conv, 64 x 64 LR x4"),
    ((1, 256, 256, 240), 128, "MSDformer tail, 64 x 64 LR x4"),
    ((1, 128, 128, 240), 960, "MSDformer upsampler stage 2, 64 x 64 LR"),
    ((16, 64, 64, 64), 64, "batch 16 of 64 x 64, 64 channels"),
    ((16, 16, 16, 128), 2048, "LKCA-Net upsampler, batch 16 of 16 x 16 LR x4"),
    ((16, 8, 8, 128), 1632, "LKCA-Net upsampler, the sample's batch 16 of 8 x 8 LR x4"),
    ((1, 64, 64, 128), 240, "MSDformer skip_conv, 16 x 16 LR x4"),
    ((1, 64, 64, 512), 512, "ESSAformer Convup 3x3, 16 x 16 LR x4"),
    ((1, 16, 16, 240), 960, "MSDformer upsampler stage 0, 16 x 16 LR"),
    ((1, 32, 32, 256), 1024, "32 x 32, 256 channels"),
    ((1, 8, 8, 128), 128, "8 x 8, 128 channels"),
    ((1, 128, 128, 64), 64, "VDSR body, 128 x 128 LR"),
    ((1, 128, 128, 128), 2048, "LKCA-Net upsampler, 128 x 128 LR x4"),
    ((1, 64, 64, 128), 8192, "LKCA-Net upsampler, 64 x 64 LR x8"),
    ((1, 512, 512, 128), 240, "MSDformer skip_conv, 128 x 128 LR x4"),
    ((1, 256, 256, 512), 512, "ESSAformer Convup 3x3, 64 x 64 LR x4"),
    ((16, 16, 16, 128), 8192, "LKCA-Net upsampler, batch 16 of 16 x 16 LR x8"),
    ((336, 16, 16, 256), 1024, "SSPSR branch upsampler stage 1, batch 16 of 16 x 16 LR x8"),
    ((16, 64, 64, 512), 512, "ESSAformer Convup 3x3, batch 16 of 16 x 16 LR x4"),
    ((21, 128, 128, 256), 1024, "SSPSR branch upsampler, 128 x 128 LR x4"),
]


def dense_operands(rng, shape, cout: int):
    """A random input of ``shape`` and a 3x3 kernel to ``cout`` channels that keeps its scale."""
    x = jnp.asarray(rng.random(shape), jnp.float32)
    return x, jnp.asarray(rng.normal(0, 1 / np.sqrt(9 * shape[-1]), (3, 3, shape[-1], cout)), jnp.float32)


def winograd_table(rounds: int):
    rng = np.random.default_rng(0)
    print(f"Dense 3x3 convolutions, forward; median ms of {rounds} calls\n")
    print("| input | out | where | XLA conv | Winograd | speed-up | fast path | batch chunks |\n" + "|---" * 8 + "|")
    for shape, cout, where in WINOGRAD_SHAPES:
        x, k = dense_operands(rng, shape, cout)
        want = np.asarray(jax.jit(conv_xla)(x, k))
        np.testing.assert_allclose(np.asarray(jax.jit(winograd_conv3x3)(x, k)), want, atol=1e-5 * np.abs(want).max())
        row = [median_ms(jax.jit(f), (x, k), rounds) for f in (conv_xla, winograd_conv3x3)]
        path = "Winograd" if uses_winograd(x, k) else "im2col product" if columns_smaller(x, k) else "XLA"
        print(f"| {'x'.join(map(str, shape))} | {cout} | {where} | {row[0]:.1f} | {row[1]:.1f} | "
              f"{row[0] / row[1]:.2f}x | {path} | {winograd_chunks(shape, max(shape[-1], cout))} |", flush=True)


BACKWARD_SHAPES = [  # (input shape, output channels, where it occurs), the train steps' of issue 35
    ((84, 16, 16, 256), 256, "SSPSR branch 3x3 (21 band groups of a batch of 4)"),
    ((84, 16, 16, 256), 1024, "SSPSR branch upsampler (batch 4)"),
    ((84, 32, 32, 256), 8, "SSPSR branch tail (batch 4)"),
    ((16, 64, 64, 256), 128, "SSPSR final conv, batch 16 x4"),
    ((16, 16, 16, 128), 2048, "LKCA-Net upsampler, batch 16 x4"),
    ((16, 64, 64, 64), 64, "VDSR body, batch 16 x4"),
    ((16, 64, 64, 128), 64, "VDSR first conv, batch 16 x4"),
    ((336, 16, 16, 256), 1024, "SSPSR branch upsampler stage 1, batch 16 x8"),
]


def backward_table(rounds: int):
    """Forward plus backward (input, kernel and bias gradients for a given cotangent) of dense 3x3
    convolutions: XLA's autodiff of its convolution against the fast path (``conv(..., 'fast')``:
    Winograd's forward and its own backward, or XLA's forward and the im2col / transposed-conv
    backward); the fast path's gradients checked against XLA's first."""
    from lkca_jax.ops.conv import conv

    rng = np.random.default_rng(0)
    print(f"Dense 3x3 convolutions, forward and backward; median ms of {rounds} calls\n")
    print("| input | out | where | XLA autodiff | fast path | speed-up | its forward |\n|---|---|---|---|---|---|---|")
    for shape, cout, where in BACKWARD_SHAPES:
        x, k = dense_operands(rng, shape, cout)
        b = jnp.zeros((cout,), jnp.float32)
        cot = jnp.asarray(rng.standard_normal((*shape[:3], cout)), jnp.float32)

        def step(x, k, b, cot, impl):
            return jax.vjp(lambda x, k, b: conv(x, k, 1, 1, impl, b), x, k, b)[1](cot)

        steps = [jax.jit(functools.partial(step, impl=impl)) for impl in ("xla", "fast")]
        for got, want in zip(steps[1](x, k, b, cot), steps[0](x, k, b, cot)):
            # 1e-4: a kernel gradient here sums up to 2^20 float32 products, in another order than XLA's
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-4 * np.abs(np.asarray(want)).max())
        row = [median_ms(f, (x, k, b, cot), rounds) for f in steps]
        path = "Winograd" if uses_winograd(x, k) else "XLA"
        print(f"| {'x'.join(map(str, shape))} | {cout} | {where} | {row[0]:.0f} | {row[1]:.0f} | "
              f"{row[0] / row[1]:.2f}x | {path} |", flush=True)


UPSAMPLER_SHAPES = [(1, 16), (16, 16), (1, 64)]  # (batch, LR side) of 128 features, x8 to 128 bands


def columns(x: jax.Array, k: jax.Array) -> jax.Array:
    """A dense 3x3 conv as the fast path's product of im2col columns (grouped_conv's, one group)."""
    return jnp.einsum("gpk,gko->gpo", _group_cols(x, 3, 1, 1), _group_kernel(k, 1)).reshape(*x.shape[:3], -1)


def upsampler_table(rounds: int, r: int = 8, features: int = 128, bands: int = 128):
    from lkca_jax.ops.conv import conv
    from lkca_jax.ops.pixel_shuffle import pixel_shuffle

    out = bands * r * r
    perm = np.arange(out).reshape(bands, r * r).T.reshape(-1)  # column (i, j, c) <- PixelShuffle's (c, i, j)

    def runs(y):  # the shuffle of a sub-pixel-major map: moves of runs of channels
        n, h, w, _ = y.shape
        return y.reshape(n, h, w, r, r, bands).transpose(0, 1, 3, 2, 4, 5).reshape(n, h * r, w * r, bands)

    def transposed(a):
        return a.reshape(*a.shape[:-1], bands, r * r).swapaxes(-1, -2).reshape(a.shape)

    forms = {
        "gathered": lambda x, k, b: runs(conv(x, k[..., perm], 1, 1, "fast", b[perm])),
        "transposed": lambda x, k, b: runs(conv(x, transposed(k), 1, 1, "fast", transposed(b))),
        "not permuted": lambda x, k, b: pixel_shuffle(conv(x, k, 1, 1, "fast", b), r),
        "conv: XLA": lambda x, k, b: conv_xla(x, k),
        "conv: im2col product": lambda x, k, b: columns(x, k),
    }
    rng = np.random.default_rng(0)
    print(f"LKCA-Net's x{r} upsampler ({features} -> {out}, PixelShuffle({r})), forward; median ms of {rounds} calls\n")
    print("| batch | LR | " + " | ".join(forms) + " | ShuffleConv's form |\n" + "|---" * (len(forms) + 3) + "|")
    for n, side in UPSAMPLER_SHAPES:
        x, k = dense_operands(rng, (n, side, side, features), out)
        b = jnp.asarray(rng.normal(0, 0.1, out), jnp.float32)
        fns = {name: jax.jit(f) for name, f in forms.items()}
        want = np.asarray(fns["not permuted"](x, k, b))
        for name in ("gathered", "transposed"):
            np.testing.assert_allclose(np.asarray(fns[name](x, k, b)), want, atol=1e-5 * np.abs(want).max())
        row = [median_ms(f, (x, k, b), rounds) for f in fns.values()]
        used = "not permuted" if n * side * side < 9 * features else "transposed"
        print(f"| {n} | {side}x{side} | " + " | ".join(f"{t:.1f}" for t in row) + f" | {used} |", flush=True)


ROW_SHAPES = [  # (input shape, kernel size, output channels, where it occurs)
    ((1, 16, 16, 128), 9, 64, "3D-FCNN first conv, 16 x 16 LR"),
    ((16, 16, 16, 128), 9, 64, "3D-FCNN first conv, batch 16"),
    ((1, 64, 64, 128), 9, 64, "3D-FCNN first conv, 64 x 64 LR"),
    ((1, 16, 16, 64), 3, 64, "VDSR body, 16 x 16 LR"),
    ((16, 16, 16, 64), 3, 64, "VDSR body, batch 16"),
    ((16, 16, 16, 128), 3, 64, "VDSR first conv, batch 16"),
    ((1, 64, 64, 64), 3, 64, "VDSR body, 64 x 64 LR"),
    ((1, 32, 32, 256), 3, 64, "ESSAformer 256 -> 64, 32 x 32"),
    ((16, 32, 32, 256), 3, 64, "ESSAformer 256 -> 64, batch 16"),
    ((1, 64, 64, 64), 3, 32, "32 outputs"),
    ((1, 64, 64, 64), 3, 16, "16 outputs"),
    ((1, 64, 64, 64), 3, 128, "128 outputs"),
]


def rows_table(rounds: int):
    rng = np.random.default_rng(0)
    print(f"Dense convolutions by kernel rows, forward; median ms of {rounds} calls\n")
    print("| input | kernel | out | where | XLA conv | kernel rows | speed-up | fast path | batch chunks |\n"
          + "|---" * 9 + "|")
    for shape, k, cout, where in ROW_SHAPES:
        x = jnp.asarray(rng.random(shape), jnp.float32)
        kernel = jnp.asarray(rng.normal(0, 1 / np.sqrt(k * k * shape[-1]), (k, k, shape[-1], cout)), jnp.float32)
        want = np.asarray(jax.jit(conv_xla)(x, kernel))
        np.testing.assert_allclose(np.asarray(jax.jit(row_tap_conv)(x, kernel)), want, atol=1e-5 * np.abs(want).max())
        row = [median_ms(jax.jit(f), (x, kernel), rounds) for f in (conv_xla, row_tap_conv)]
        chunks = row_tap_chunks(shape, kernel.shape)
        used = "kernel rows" if uses_row_taps(x, kernel) else "XLA"
        print(f"| {'x'.join(map(str, shape))} | {k}x{k} | {cout} | {where} | {row[0]:.2f} | {row[1]:.2f} | "
              f"{row[0] / row[1]:.2f}x | {used} | {chunks} |", flush=True)


PRODUCT_OUTPUTS = (2048, 8192)  # VDSR's upsampler at x4 and x8 on 128 bands: 128 r^2 outputs


def torch_products(rounds: int) -> dict:
    """PyTorch's conv2d and mm at :func:`product_table`'s shapes, in this process ({outputs: (conv ms, mm ms)})."""
    import torch

    torch.set_num_threads(int(os.environ["FORMS_THREADS"]))

    def ms(f, *args):
        for _ in range(2):
            f(*args)
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            f(*args)
            times.append(time.perf_counter() - t)
        return 1e3 * float(np.median(times))

    out = {}
    with torch.no_grad():
        for o in PRODUCT_OUTPUTS:
            conv = functools.partial(torch.nn.functional.conv2d, padding=1)
            out[o] = (ms(conv, torch.rand(1, 64, 16, 16), torch.rand(o, 64, 3, 3)),
                      ms(torch.mm, torch.rand(256, 576), torch.rand(576, o)))
    return out


def product_table(rounds: int):
    rng = np.random.default_rng(0)
    threads = os.cpu_count()
    try:  # PyTorch in a process of its own, the same thread count as JAX's (one per core)
        run = subprocess.run([sys.executable, __file__, "--torch-products", "--rounds", str(rounds)], check=True,
                             capture_output=True, text=True, env={**os.environ, "FORMS_THREADS": str(threads)})
        torch_ms = {int(k): v for k, v in json.loads(run.stdout.splitlines()[-1]).items()}
    except subprocess.CalledProcessError:
        torch_ms = {}
    cols = jax.jit(lambda x: _group_cols(x, 3, 1, 1))
    forms = {
        "XLA conv": conv_xla,
        "im2col product (fast path)": columns,
        "Winograd": winograd_conv3x3,
    }
    print(f"VDSR's upsampler conv, 16 x 16 x 64 LR, batch 1, 3x3, forward; median ms of {rounds} calls "
          f"(in brackets: the direct conv's 2 x 256 x 576 x outputs FLOPs per second, whatever the form does); "
          f"PyTorch in its own process, {threads} threads\n")
    heads = [*forms, "product alone", "Winograd, kernel transformed before", "kernel transform alone",
             "PyTorch conv2d", "PyTorch mm"]
    print("| outputs | " + " | ".join(heads) + " |\n" + "|---" * (len(heads) + 1) + "|")
    for o in PRODUCT_OUTPUTS:
        x, k = dense_operands(rng, (1, 16, 16, 64), o)
        want = np.asarray(jax.jit(conv_xla)(x, k))
        for f in list(forms.values())[1:]:
            np.testing.assert_allclose(np.asarray(jax.jit(f)(x, k)), want, atol=1e-5 * np.abs(want).max())
        u = jax.jit(_winograd_kernel)(k)
        np.testing.assert_allclose(np.asarray(jax.jit(_winograd_apply)(x, u)), want, atol=1e-5 * np.abs(want).max())
        times = [median_ms(jax.jit(f), (x, k), rounds) for f in forms.values()]
        times.append(median_ms(jax.jit(jnp.matmul), (cols(x)[0], k.reshape(576, o)), rounds))
        times.append(median_ms(jax.jit(_winograd_apply), (x, u), rounds))
        times.append(median_ms(jax.jit(_winograd_kernel), (k,), rounds))
        times.extend(torch_ms.get(o, (float("nan"),) * 2))
        flops = 2 * 256 * 576 * o / 1e6  # per ms: GFLOP/s
        print(f"| {o} | " + " | ".join(f"{t:.2f} ({flops / t:.0f})" for t in times) + " |", flush=True)


TABLES = {"bicubic": bicubic_table, "fusion": fusion_table, "winograd": winograd_table, "backward": backward_table,
          "upsampler": upsampler_table, "rows": rows_table, "product": product_table}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", default="all", choices=(*TABLES, "all"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--torch-products", action="store_true", help=argparse.SUPPRESS)  # product_table's worker
    args = ap.parse_args()
    if args.torch_products:
        print(json.dumps(torch_products(args.rounds)))
        return
    print(f"jax {jax.__version__} ({jax.default_backend()})\n")
    for name, table in TABLES.items():
        if args.part in (name, "all"):
            table(args.rounds)
            print()


if __name__ == "__main__":
    hostmem.keep_freed_memory()  # as the entry points do (lkca_jax/hostmem.py)
    main()
