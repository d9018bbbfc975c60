"""Time and GFLOP/s of each convolution kind, XLA vs fast, forward and forward+backward.

Shapes are the paper's training shapes: batch 16, 16 x 16 low-resolution
patches, F = 128 features, Chikusei (128 bands) x4 upsampler. Run:

    python bench/ops.py [--batch 16] [--size 16] [--repeats 20]

and paste the table into docs/benchmarks.md. The last rows time one whole LKB
(value and gradient of a sum-of-squares loss w.r.t. input and parameters).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from lkca_jax.models.lkca import LKB
from lkca_jax.ops.conv import conv


def timeit(fn, *args, repeats: int) -> float:
    """Median seconds per call, after one compile-and-warm-up call."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def conv_row(name, x, kernel, groups, dilation, repeats):
    n, h, w, _ = x.shape
    k, _, cig, cout = kernel.shape
    flops = 2 * n * h * w * cout * k * k * cig  # forward; backward is about twice that
    cells = [name]
    for impl in ("xla", "fast"):
        fwd = jax.jit(lambda x, k_, impl=impl: conv(x, k_, groups, dilation, impl))
        grad = jax.jit(jax.grad(lambda x, k_, impl=impl: jnp.sum(conv(x, k_, groups, dilation, impl) ** 2),
                                argnums=(0, 1)))
        tf, tb = timeit(fwd, x, kernel, repeats=repeats), timeit(grad, x, kernel, repeats=repeats)
        cells += [f"{tf * 1e3:.2f} ms ({flops / tf / 1e9:.1f})", f"{tb * 1e3:.2f} ms ({3 * flops / tb / 1e9:.1f})"]
    return cells


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n, s, f = args.batch, args.size, 128

    def arr(*shape):
        return jnp.asarray(rng.standard_normal(shape), jnp.float32)

    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, jax {jax.__version__}, "
          f"backend {jax.default_backend()}, batch {n}, LR {s}x{s}\n")
    print("| conv | XLA fwd (GFLOP/s) | XLA fwd+bwd (GFLOP/s) | fast fwd (GFLOP/s) | fast fwd+bwd (GFLOP/s) |")
    print("|---|---|---|---|---|")
    rows = [
        ("depthwise 5x5 d1, 128 ch", arr(n, s, s, f), arr(5, 5, 1, f), f, 1),
        ("depthwise 7x7 d3, 128 ch", arr(n, s, s, f), arr(7, 7, 1, f), f, 3),
        ("grouped 1x1 384->128, g=4", arr(n, s, s, 3 * f), arr(1, 1, 3 * f // 4, f), 4, 1),
        ("dense 1x1 128->128", arr(n, s, s, f), arr(1, 1, f, f), 1, 1),
        ("upsampler dense 3x3 128->2048", arr(n, s, s, f), arr(3, 3, f, 2048), 1, 1),
        ("upsampler grouped 3x3 128->2048, g=8", arr(n, s, s, f), arr(3, 3, f // 8, 2048), 8, 1),
    ]
    for name, x, kernel, groups, dilation in rows:
        print("| " + " | ".join(conv_row(name, x, kernel, groups, dilation, args.repeats)) + " |")

    x = arr(n, s, s, f)
    print("\n| one LKB (F=128), value and grad | XLA | fast | speed-up |")
    print("|---|---|---|---|")
    times = {}
    for impl in ("xla", "fast"):
        block = LKB(conv_impl=impl)
        variables = block.init(jax.random.key(0), x)

        def loss(params, x, block=block, variables=variables):
            y, _ = block.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"])
            return jnp.sum(y ** 2)

        step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
        fwd = jax.jit(lambda x, block=block, variables=variables: block.apply(variables, x))
        times[impl] = (timeit(fwd, x, repeats=args.repeats), timeit(step, variables["params"], x,
                                                                    repeats=args.repeats))
    for i, what in enumerate(("forward (eval)", "forward+backward (train)")):
        xla, fast = times["xla"][i], times["fast"][i]
        print(f"| {what} | {xla * 1e3:.2f} ms | {fast * 1e3:.2f} ms | {xla / fast:.1f}x |")


if __name__ == "__main__":
    main()
