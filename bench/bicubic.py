"""The models' bicubic branch at image sizes: dense resize matrices against the polyphase form.

    python bench/bicubic.py [--rounds 7]

``imresize(lr, r)`` for batch-1 LR images of 128 bands, x4: the two dense ``(out, in)`` matrix
products the library used before (97% zeros at 128 -> 512), and the polyphase form it uses now
(:func:`lkca_jax.ops.imresize.imresize`: 4 taps per output and axis, gathers of the mirrored rows),
alone and as the models run it, added to an SR-sized feature map. Outputs agree within 1e-6 first.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from lkca_jax import hostmem
from lkca_jax.ops.imresize import imresize, resize_matrix


def dense(x: jax.Array, scale: int) -> jax.Array:
    mh = jnp.asarray(resize_matrix(x.shape[1], scale), x.dtype)
    mw = jnp.asarray(resize_matrix(x.shape[2], scale), x.dtype)
    hi = jax.lax.Precision.HIGHEST
    return jnp.einsum("Ww,nHwc->nHWc", mw, jnp.einsum("Hh,nhwc->nHwc", mh, x, precision=hi), precision=hi)


def median_ms(fn, args, rounds):
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--scale", type=int, default=4)
    args = ap.parse_args()
    r, rng = args.scale, np.random.default_rng(0)
    print(f"jax {jax.__version__} ({jax.default_backend()}); x{r}, 128 bands, batch 1; median ms of {args.rounds}\n")
    print("| LR | dense alone | polyphase alone | dense + add | polyphase + add | speed-up (+ add) |\n"
          "|---|---|---|---|---|---|")
    for size in (64, 128, 256):
        x = jnp.asarray(rng.random((1, size, size, 128)), jnp.float32)
        feats = jnp.asarray(rng.random((1, r * size, r * size, 128)), jnp.float32)
        np.testing.assert_allclose(np.asarray(imresize(x, r)), np.asarray(dense(x, r)), atol=1e-6)
        row = [median_ms(jax.jit(lambda a, f=f: f(a, r)), (x,), args.rounds) for f in (dense, imresize)]
        row += [median_ms(jax.jit(lambda a, b, f=f: f(a, r) + b), (x, feats), args.rounds) for f in (dense, imresize)]
        print(f"| {size}x{size} | " + " | ".join(f"{ms:.1f}" for ms in row) + f" | {row[2] / row[3]:.1f}x |",
              flush=True)


if __name__ == "__main__":
    hostmem.keep_freed_memory()  # as the entry points do (lkca_jax/hostmem.py)
    main()
