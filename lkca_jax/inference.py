"""Full-scene super-resolution of a user's file with overlapping, cross-faded tiles.

Tiles have a core of ``tile`` x ``tile`` LR pixels on a regular grid; each is
run with ``overlap`` extra LR pixels of context on every side (clipped at the
image border, where the model sees the same border as on the whole image).
Across each seam, the two tiles' outputs are cross-faded with complementary
linear weights over ``overlap`` LR pixels centred on the seam, so the weights sum
to one everywhere and there is no visible seam. Every output pixel then comes
from tiles that saw at least ``overlap / 2`` LR pixels of context around it: a
model whose receptive field (full width, in LR pixels) is at most ``overlap + 1``
gives exactly the untiled result. LKCA-Net's squeeze-excitation pools over the
whole input, so for it tiling is an approximation that improves with the tile
size (see README); VDSR and Bicubic are exact.
"""

from __future__ import annotations

import functools
import pathlib
import sys
import time

import numpy as np

from lkca_jax import checkpoint
from lkca_jax.data.io import DataError, atomic_write, read_cube, require_finite, write_cube
from lkca_jax.data.protocols import normalise
from lkca_jax.evaluation import predictor
from lkca_jax.models import build_model


def _ramp(n_out: int, lo_seam: float | None, hi_seam: float | None, fade: float) -> np.ndarray:
    """1-D weights over a tile's output pixels (coordinates relative to the tile's start)."""
    x = np.arange(n_out) + 0.5
    w = np.ones(n_out)
    if fade > 0:
        if lo_seam is not None:
            w = np.minimum(w, np.clip((x - (lo_seam - fade / 2)) / fade, 0, 1))
        if hi_seam is not None:
            w = np.minimum(w, np.clip(((hi_seam + fade / 2) - x) / fade, 0, 1))
    return w


def tile_plan(size: int, tile: int, overlap: int):
    """Per axis: (read_start, read_stop, core_start, core_stop) in LR pixels."""
    tile = min(tile, size) if tile > 0 else size
    if tile < overlap and tile < size:
        raise ValueError(f"tile ({tile}) must be at least the overlap ({overlap})")
    starts = list(range(0, size, tile))
    return [(max(a - overlap, 0), min(a + tile + overlap, size), a, min(a + tile, size)) for a in starts]


def super_resolve(predict, lr: np.ndarray, scale: int, tile: int = 128, overlap: int = 16, batch: int = 1,
                  out: np.ndarray | None = None, progress: bool = True) -> np.ndarray:
    """SR of a normalised (h, w, C) array; ``predict(lr_batch) -> sr_batch``. ``out`` (H, W, C), zeroed,
    may be a memory map to keep the result off the heap."""
    h, w, c = lr.shape
    out = np.zeros((h * scale, w * scale, c), np.float32) if out is None else out
    rows, cols = tile_plan(h, tile, overlap), tile_plan(w, tile, overlap)
    jobs = [(r, q) for r in rows for q in cols]
    fade = overlap * scale
    began = time.perf_counter()
    groups: dict[tuple, list] = {}
    for r, q in jobs:  # tiles of one shape share a batch (and a compilation)
        groups.setdefault((r[1] - r[0], q[1] - q[0]), []).append((r, q))
    done = 0
    for shape_jobs in groups.values():
        for i in range(0, len(shape_jobs), batch):
            chunk = shape_jobs[i:i + batch]
            x = np.stack([lr[r[0]:r[1], q[0]:q[1]] for r, q in chunk])
            y = np.asarray(predict(x))
            for (r, q), sr in zip(chunk, y):
                wr = _ramp(sr.shape[0], (r[2] - r[0]) * scale if r[2] > 0 else None,
                           (r[3] - r[0]) * scale if r[3] < h else None, fade)
                wc = _ramp(sr.shape[1], (q[2] - q[0]) * scale if q[2] > 0 else None,
                           (q[3] - q[0]) * scale if q[3] < w else None, fade)
                weight = (wr[:, None] * wc[None, :])[..., None].astype(np.float32)
                rs, cs = slice(r[0] * scale, r[1] * scale), slice(q[0] * scale, q[1] * scale)
                out[rs, cs] += sr * weight
            done += len(chunk)
            if progress:
                rate = done / max(time.perf_counter() - began, 1e-9)
                eta = (len(jobs) - done) / max(rate, 1e-9)
                print(f"\rtiles {done}/{len(jobs)} {rate:.2f} tiles/s ETA {eta:.0f}s", end="", file=sys.stderr)
    if progress:
        print(file=sys.stderr)
    return out


def run_sr(workdir, input_path, output_path, key: str | None = None, tile: int = 128, overlap: int = 16,
           batch: int = 1, which: str = "best", progress: bool = True) -> dict:
    """Read, normalise as the run was trained, super-resolve, un-normalise, write (atomically)."""
    output_path = pathlib.Path(output_path)
    config, variables, _ = checkpoint.restore_variables(workdir, which)
    cube = read_cube(input_path, key)
    require_finite(cube, input_path)
    if cube.data.shape[2] != config.model.bands:
        raise DataError(input_path, f"has {cube.data.shape[2]} bands, the model in {workdir} expects "
                                    f"{config.model.bands}")
    # A constant as in training; a max-normalised dataset divides this file by its own max.
    mode = "constant" if config.data.normalisation == "constant" else "per_file_max"
    try:
        lr, norm = normalise(cube.data, mode, config.data.norm_value)
    except ValueError as err:
        raise DataError(input_path, str(err)) from None
    scale = config.model.scale
    predict = functools.partial(predictor(build_model(config)), variables)
    h, w, c = lr.shape
    out_shape = (h * scale, w * scale, c)
    if output_path.suffix.lower() == ".npy":  # stream into a memory-mapped temporary .npy, then rename

        def write(tmp):
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=out_shape)
            super_resolve(predict, lr, scale, tile, overlap, batch, out, progress)
            out *= np.float32(norm)
            out.flush()

        atomic_write(output_path, write)
    else:
        sr = super_resolve(predict, lr, scale, tile, overlap, batch, None, progress)
        write_cube(output_path, sr * np.float32(norm), wavelengths=cube.wavelengths)
    return {"input": str(input_path), "output": str(output_path), "shape": list(out_shape), "norm": norm}
