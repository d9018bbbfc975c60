"""MSDformer's deformable convolution: the gather form (lkca_jax.ops.deform) against alternatives.

    python bench/deform.py [--rounds 5]

Forms, all computing the same samples (checked against each other first):

* ``gather``: the library's: four gathers of whole channel vectors (the neighbours), weighted.
* ``gather4``: one gather of a 2 x 2 neighbourhood stacked on the channels (4C per point), weighted.
* ``matrix``: the bilinear weights as a dense (h w k^2) x (h+2)(w+2) interpolation matrix per image,
  one batched matrix product (no gather or scatter; quadratic in the pixels).
* ``torch``: the PyTorch reference's ``DeformConv2d`` (lkca_jax/reference/msdformer.py), same threads.

Sizes: F = 240 (MSDformer's), the training batch (16 x 16 LR, 16 images; forward and backward with
respect to the input, offsets and kernel) and inference (16 x 16 and 64 x 64 LR, 1 image; forward).
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch

from lkca_jax.ops.deform import deform_sample


def _coords(offsets, h, w, k=3):
    kk = k * k
    ti, tj = np.divmod(np.arange(kk), k)
    py = (np.arange(h)[:, None, None] + ti - 1).astype(np.float32) + offsets[..., :kk]
    px = (np.arange(w)[None, :, None] + tj - 1).astype(np.float32) + offsets[..., kk:]
    y0, x0 = jax.lax.stop_gradient(jnp.floor(py)), jax.lax.stop_gradient(jnp.floor(px))
    return py - y0, px - x0, y0.astype(jnp.int32) + 1, x0.astype(jnp.int32) + 1


def gather4(x, offsets):
    """One gather of the stacked 2 x 2 neighbourhood; two zero rows/columns on each side, so every
    clamped point's neighbourhood is all zeros."""
    n, h, w, c = x.shape
    fy, fx, iy, ix = _coords(offsets, h, w)
    xp = jnp.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))  # image row y is row y + 2
    quad = jnp.concatenate([xp[:, :-1, :-1], xp[:, :-1, 1:], xp[:, 1:, :-1], xp[:, 1:, 1:]], -1)
    iy, ix = jnp.clip(iy + 1, 0, h + 2), jnp.clip(ix + 1, 0, w + 2)
    flat = quad.reshape(n, (h + 3) * (w + 3), 4 * c)
    g = jax.vmap(lambda img, i: img[i])(flat, (iy * (w + 3) + ix).reshape(n, -1)).reshape(n, h, w, 9, 4, c)
    wts = jnp.stack([(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx], -1)
    return jnp.einsum("nhwtqc,nhwtq->nhwtc", g, wts)


def matrix(x, offsets):
    """Dense bilinear interpolation matrices, one batched product."""
    n, h, w, c = x.shape
    fy, fx, iy, ix = _coords(offsets, h, w)
    size = (h + 2) * (w + 2)
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))).reshape(n, size, c)
    m = 0
    for dy, dx, wt in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        yy, xx = iy + dy, ix + dx
        ok = (yy >= 0) & (yy <= h + 1) & (xx >= 0) & (xx <= w + 1)
        m = m + jax.nn.one_hot(jnp.where(ok, yy * (w + 2) + xx, -1), size) * wt[..., None]
    return jnp.einsum("nhwts,nsc->nhwtc", m, xp)


def timed(fn, rounds, iters=3):
    fn()
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(iters):
            fn()
        out.append((time.perf_counter() - t) / iters)
    return float(np.median(out))


FORMS = {"gather": deform_sample, "gather4": gather4, "matrix": matrix}


def case_row(n: int, size: int, train: bool, rounds: int, rng) -> str:
    from lkca_jax.reference.msdformer import DeformConv2d

    c = 240
    x = jnp.asarray(rng.normal(size=(n, size, size, c)), jnp.float32)
    off = jnp.asarray(rng.uniform(-2, 2, size=(n, size, size, 18)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(9, c, c)) / 50, jnp.float32)
    want = np.asarray(deform_sample(x, off))
    cells = []
    for name, sample in FORMS.items():
        if name == "matrix" and size > 32:  # (64*64*9) x (66*66) per image: 160 M weights
            cells.append("- (too large)")
            continue
        np.testing.assert_allclose(np.asarray(sample(x, off)), want, atol=1e-4, err_msg=name)
        conv = lambda a, o, k, s=sample: jnp.einsum("nhwtc,tco->nhwo", s(a, o), k)
        f = jax.jit(jax.grad(lambda a, o, k, g=conv: jnp.sum(g(a, o, k) ** 2), argnums=(0, 1, 2)) if train else conv)
        cells.append(f"{1e3 * timed(lambda f=f: jax.block_until_ready(f(x, off, kernel)), rounds):.1f}")
    net = DeformConv2d(c, c)
    xt = torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy()).requires_grad_(train)

    def step():
        if train:
            net.zero_grad()
            (net(xt) ** 2).sum().backward()
        else:
            with torch.inference_mode():
                net(xt)

    cells.append(f"{1e3 * timed(step, rounds):.1f}")
    return f"| {'train' if train else 'infer'} {n} x {size}x{size} | " + " | ".join(cells) + " |"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count())
    rng = np.random.default_rng(0)
    print(f"jax {jax.__version__}, torch {torch.__version__}, {os.cpu_count()} CPU threads; median of "
          f"{args.rounds} rounds, ms per call\n")
    print("| case | " + " | ".join(FORMS) + " | torch |\n|---|" + "---|" * (len(FORMS) + 1))
    for n, size, train in ((16, 16, True), (1, 16, False), (1, 64, False)):
        print(case_row(n, size, train, args.rounds, rng), flush=True)


if __name__ == "__main__":
    main()
