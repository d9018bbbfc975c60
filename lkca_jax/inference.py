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
size (see README); VDSR, 3D-FCNN and Bicubic are exact; SSPSR's channel attention pools globally
inside every block, so its tiles are an approximation too.
"""

from __future__ import annotations

import functools
import sys
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from lkca_jax import checkpoint, metrics
from lkca_jax.data.io import GEOREFERENCED, Cube, DataError, open_writer, read_cube, require_finite, writer_class
from lkca_jax.data.pipeline import SplitSource, eval_batches
from lkca_jax.data.protocols import RANGE_FACTOR, norm_value
from lkca_jax.methods import method_name
from lkca_jax.models import build_model

DEFAULT_TILE = 128  # LR pixels


def dihedral_mean(f, x):
    """The geometric self-ensemble: the mean of ``f`` over the 8 flips and quarter-turns of ``x``'s
    spatial axes -3 and -2 ((h, w, C) or (N, h, w, C)), each output turned back. The t-th transform is
    the training augmentation's (:func:`lkca_jax.data.pipeline.dihedral`): t quarter-turns, then a flip
    of the width for t >= 4. ``f`` maps such an array to one with the same layout (an SR model: larger
    by its scale). NumPy arrays stay NumPy; inside ``jax.jit`` all 8 passes trace into one program."""
    xp = jnp if isinstance(x, jax.Array) else np
    total = 0
    for t in range(8):
        turned = xp.rot90(x, t % 4, axes=(-3, -2))
        y = f(xp.flip(turned, -2) if t >= 4 else turned)
        total = total + xp.rot90(xp.flip(y, -2) if t >= 4 else y, -(t % 4), axes=(-3, -2))
    return total / 8


def predictor(model, self_ensemble: bool = False):
    """``predict(variables, lr) -> sr``, jitted once per model and ``self_ensemble`` (the mean over
    the 8 flips and turns, :func:`dihedral_mean`: 8 times the work)."""
    return _predictor(model, bool(self_ensemble))


@functools.cache
def _predictor(model, self_ensemble: bool):
    @jax.jit
    def predict(variables, lr):
        forward = lambda x: model.apply(variables, x, train=False)[0]
        return dihedral_mean(forward, lr) if self_ensemble else forward(lr)
    return predict


@functools.cache
def _parts(model):
    backbone = jax.jit(lambda v, lr: model.apply(v, lr, method="backbone"))
    upsample = jax.jit(lambda v, x, lr: model.apply(v, x, lr, method="upsample")[0])
    return backbone, upsample


def predict_tiled(model, variables, lr: np.ndarray, scale: int, tile: int = DEFAULT_TILE,
                  self_ensemble: bool = False) -> np.ndarray:
    """SR of one normalised (h, w, C) image in tiles, equal to the whole-image result.

    A model with a global part (LKCA-Net's squeeze-excitation) runs its ``backbone`` whole at LR
    resolution (small) and only its local ``upsample`` (where memory grows with r^2) in tiles;
    other models are local throughout. The overlap is twice the tiled part's ``tile_radius``, so
    every output pixel sees all the context it has in the whole image. ``self_ensemble``: the
    whole image's self-ensemble (:func:`dihedral_mean`), each of its 8 passes tiled."""
    if self_ensemble:
        return dihedral_mean(lambda x: predict_tiled(model, variables, x, scale, tile), lr)
    overlap = 2 * model.tile_radius
    if hasattr(model, "backbone"):
        backbone, upsample = _parts(model)
        feats = np.asarray(backbone(variables, lr[None]))[0]
        f = feats.shape[-1]
        x = np.concatenate([feats, lr], axis=-1)
        predict = lambda t: upsample(variables, t[..., :f], t[..., f:])
    else:
        x, predict = lr, functools.partial(predictor(model), variables)
    return super_resolve(predict, x, scale, max(tile, overlap), overlap, channels=lr.shape[-1])


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


def super_resolve_rows(predict, lr: np.ndarray, scale: int, tile: int = 128, overlap: int = 16, batch: int = 1,
                       norm: float = 1.0, progress: bool = True, channels: int | None = None):
    """SR of an (h, w, C) array as consecutive blocks of finished output rows: yields ``(row, block)``.

    ``predict(lr_batch) -> sr_batch`` works on normalised data: each tile is divided by ``norm``
    on its way in and multiplied on its way out, so ``lr`` is never copied. One row of tiles is
    held at a time (plus the few rows it shares with the next), so memory is bounded by the tile
    height times the output width. ``channels``: the output's, when not the input's."""
    h, w, c = lr.shape
    c = channels or c
    rows, cols = tile_plan(h, tile, overlap), tile_plan(w, tile, overlap)
    fade = overlap * scale
    began, done, total = time.perf_counter(), 0, len(rows) * len(cols)
    # One buffer for the tallest row of tiles: rows base .. base + filled are accumulating; the
    # rows a row of tiles shares with the next move to its front once the finished ones are out.
    buf = np.empty((max(r[1] - r[0] for r in rows) * scale, w * scale, c), np.float32)
    base, carried = 0, 0
    for i, r in enumerate(rows):
        filled = (r[1] - r[0]) * scale
        buf[carried:filled] = 0
        wr = _ramp(filled, (r[2] - r[0]) * scale if r[2] > 0 else None,
                   (r[3] - r[0]) * scale if r[3] < h else None, fade)
        groups: dict[int, list] = {}
        for q in cols:  # tiles of one width share a batch (and a compilation)
            groups.setdefault(q[1] - q[0], []).append(q)
        for shape_cols in groups.values():
            for k in range(0, len(shape_cols), batch):
                chunk = shape_cols[k:k + batch]
                x = np.stack([lr[r[0]:r[1], q[0]:q[1]] for q in chunk]) / np.float32(norm)
                y = np.asarray(predict(x))
                for q, sr in zip(chunk, y):
                    wc = _ramp(sr.shape[1], (q[2] - q[0]) * scale if q[2] > 0 else None,
                               (q[3] - q[0]) * scale if q[3] < w else None, fade)
                    weight = (wr[:, None] * wc[None, :])[..., None].astype(np.float32) * np.float32(norm)
                    buf[:filled, q[0] * scale:q[1] * scale] += sr * weight
                done += len(chunk)
                if progress:
                    rate = done / max(time.perf_counter() - began, 1e-9)
                    print(f"\rtiles {done}/{total} {rate:.2f} tiles/s ETA {(total - done) / max(rate, 1e-9):.0f}s",
                          end="", file=sys.stderr)
        finished = (rows[i + 1][0] if i + 1 < len(rows) else h) * scale - base
        yield base, buf[:finished]
        carried = filled - finished
        buf[:carried] = buf[finished:filled]
        base += finished
    if progress:
        print(file=sys.stderr)


def super_resolve(predict, lr: np.ndarray, scale: int, tile: int = 128, overlap: int = 16, batch: int = 1,
                  norm: float = 1.0, progress: bool = False, channels: int | None = None) -> np.ndarray:
    """The whole (H, W, C) result of :func:`super_resolve_rows` as one array."""
    h, w, c = lr.shape
    out = np.empty((h * scale, w * scale, channels or c), np.float32)
    for row, block in super_resolve_rows(predict, lr, scale, tile, overlap, batch, norm, progress, channels):
        out[row:row + len(block)] = block
    return out


def _fill_nodata(cube: Cube, path) -> np.ndarray | None:
    """Replace the nodata pixels of ``cube`` in place by each band's mean over the valid pixels, so
    the model sees no fill value as data; returns the (h, w) nodata mask (None when there is none)."""
    mask = cube.nodata_mask()
    if mask is None or not mask.any():
        return None
    if mask.all():
        raise DataError(path, "every pixel is nodata")
    cube.data[mask] = cube.data[~mask].mean(axis=0)
    return mask


def _check_range(cube: Cube, path, norm: float, config, warn) -> None:
    """Warn when the normalised input is far from the range the model was trained on (0..1)."""
    if config.data.normalisation != "constant":
        return  # divided by the file's own max, as in training: always in range
    peak = float(np.max(np.abs(cube.data))) / norm
    if peak > RANGE_FACTOR:
        warn(f"warning: {path}: values reach {peak * norm:g}, {peak:.0f}x the 0..1 range the model was trained "
             f"on (data / {norm:g}); if the file holds raw counts or scaled reflectance, pass --norm with its "
             f"full-scale value (for example --norm 10000)")
    elif 0 < peak < 1 / RANGE_FACTOR ** 4:
        warn(f"warning: {path}: values reach only {peak * norm:g}, {peak:.1e} of the 0..1 range the model was "
             f"trained on (data / {norm:g}); pass --norm with the file's full-scale value: 1 for values already in "
             f"0..1, 255 for an 8-bit TIFF or array")


def run_sr(workdir, input_path, output_path, key: str | None = None, tile: int = 128, overlap: int = 16,
           batch: int = 1, which: str = "best", progress: bool = True, norm: float | None = None,
           warn=lambda msg: print(msg, file=sys.stderr), pretrained: str | None = None, weights: str = "ema",
           dtype: str | None = None, self_ensemble: bool = False) -> dict:
    """Read, normalise as the run was trained (or divide by ``norm``), super-resolve, un-normalise,
    and write OUT block by block of rows (:func:`~lkca_jax.data.io.open_writer`: atomic, memory
    bounded by the tiles).

    The georeference of a GeoTIFF or ENVI input goes to a GeoTIFF or ENVI output with the same CRS
    and origin and pixels ``scale`` times smaller. Nodata pixels (the file's nodata value in any
    band) are filled with each band's valid mean before the model sees them, and written back as
    the nodata value over the HR pixels they cover, so no value is invented where there were no data.
    ``pretrained`` names a shipped model (:func:`lkca_jax.load_pretrained`) to use instead of a run;
    ``weights`` 'ema' (a run's EMA weights where it kept them) or 'raw'; ``dtype`` the compute dtype
    (None: float32; the output is float32 either way); ``self_ensemble`` each tile's mean over its 8
    flips and turns (:func:`dihedral_mean`: 8 times the work)."""
    if norm is not None and not norm > 0:
        raise ValueError(f"--norm must be positive, got {norm}")
    if pretrained:
        from lkca_jax.pretrained import load_pretrained

        model, variables, config = load_pretrained(pretrained)
        model = build_model(config, dtype=dtype)
        source = f"the pretrained model {pretrained}"
    else:
        model, variables, config = checkpoint.load_run(workdir, which, weights, dtype)
        source = f"the model in {workdir}"
    cube = read_cube(input_path, key)
    if cube.data.shape[2] != config.model.bands:
        raise DataError(input_path, f"has {cube.data.shape[2]} bands, {source} expects {config.model.bands}")
    writer_cls = writer_class(output_path)  # an unwritable suffix fails before any work
    nodata = _fill_nodata(cube, input_path)
    require_finite(cube, input_path)
    if np.array_equal(cube.data.min(axis=(0, 1)), cube.data.max(axis=(0, 1))):
        warn(f"warning: {input_path}: every band is constant (an empty or a fill-value image?); "
             "the output is a smooth image of no information")
    if norm is None:  # a constant as in training; a max-normalised dataset divides by the file's max
        mode = "constant" if config.data.normalisation == "constant" else "per_file_max"
        try:
            norm = norm_value(cube.data, mode, config.data.norm_value)
        except ValueError as err:
            raise DataError(input_path, str(err)) from None
        _check_range(cube, input_path, norm, config, warn)
    scale = config.model.scale
    georef = None if cube.georef is None else cube.georef.scaled(scale)
    kept = georef is not None and writer_cls in GEOREFERENCED  # open_writer drops it elsewhere
    if georef is not None and not kept:
        warn(f"note: {output_path} cannot hold the georeference of {input_path}; write .tif or .hdr to keep it")
    predict = functools.partial(predictor(model, self_ensemble), variables)
    h, w, c = cube.data.shape
    out_shape = (h * scale, w * scale, c)
    with open_writer(output_path, out_shape, np.float32, cube.wavelengths, georef) as writer:
        for row, block in super_resolve_rows(predict, cube.data, scale, tile, overlap, batch, norm, progress):
            if nodata is not None:
                lr_rows = nodata[row // scale:(row + len(block) + scale - 1) // scale]
                hr_mask = np.repeat(np.repeat(lr_rows, scale, 0), scale, 1)[row % scale:row % scale + len(block)]
                block[hr_mask] = georef.nodata
            writer.write_rows(row, block)
    return {"input": str(input_path), "output": str(output_path), "shape": list(out_shape), "norm": norm,
            "georeferenced": kept,
            "nodata_pixels": 0 if nodata is None else int(nodata.sum())}


def bicubic_config(config):
    """``config`` with the model replaced by Bicubic (same bands and scale)."""
    b = config.copy_and_resolve_references()
    b.variant, b.model.name = "bicubic", "bicubic"
    if "converted" in b:
        b.converted = ""
    return b


def uses_self_ensemble(config) -> bool:
    """Whether ``config``'s evaluation averages its model over 8 flips and turns (``eval.self_ensemble``;
    never Bicubic's, which turns with its input: its ensemble would be itself, at 8 times the work)."""
    return bool(config.eval.get("self_ensemble", False)) and config.model.name != "bicubic"


def row_name(config) -> str:
    """The name of ``config``'s table row and figure panel: the method's, "<method>+" for a self-ensemble."""
    return method_name(config) + "+" * uses_self_ensemble(config)


def predict_split(model, variables, split, batch_size: int, scale: int, legacy_ergas: bool = False,
                  tile: int = 0, self_ensemble: bool = False, progress: str = ""):
    """Per-image metrics {name: float64 (n,)}, the SR images, and the forward seconds per image.

    Images whose LR side exceeds ``tile`` (> 0), or whose batch does not fit in device memory,
    run in tiles (:func:`lkca_jax.inference.predict_tiled`, the same result). ``self_ensemble``:
    each image's mean over its 8 flips and turns (:func:`dihedral_mean`). ``progress``: a label;
    given, images done, images/s and ETA go to stderr while a split of several batches is scored."""
    predict = predictor(model, self_ensemble)
    batch_size = max(1, min(batch_size, len(split)))  # never pad a short split up to a whole batch
    per_image = {k: [] for k in metrics.NAMES}
    images, seconds, timed = [], 0.0, 0
    compiled = set()
    report = _Progress(progress, len(split)) if progress and len(split) > batch_size else None
    for batch in eval_batches(SplitSource(split), batch_size, 1):
        lr, hr, keep = batch.lr[0], batch.hr[0], batch.mask[0] > 0
        tiled = 0 < tile < max(lr.shape[1:3])
        if not tiled and lr.shape not in compiled:  # compile (and warm up) outside the timing
            try:
                jax.block_until_ready(predict(variables, lr))
                compiled.add(lr.shape)
            except jax.errors.JaxRuntimeError as err:
                if "RESOURCE_EXHAUSTED" not in str(err):
                    raise
                tile = tile or DEFAULT_TILE
                tiled = True
                warnings.warn(f"a batch of {lr.shape} does not fit in device memory; evaluating in tiles of "
                              f"{tile} (set eval.tile)", stacklevel=2)
        start = time.perf_counter()
        if tiled:
            sr = np.zeros(hr.shape, np.float32)
            for i in np.flatnonzero(keep):
                sr[i] = predict_tiled(model, variables, lr[i], scale, tile, self_ensemble)
        else:
            sr = jax.block_until_ready(predict(variables, lr))
        seconds += time.perf_counter() - start
        timed += int(keep.sum())
        for k, v in metrics.all_metrics_jit(hr, sr, float(scale), legacy_ergas).items():
            per_image[k].append(np.asarray(v, np.float64)[keep])
        images.extend(np.asarray(sr)[keep])
        if report:
            report(len(images))
    if report:
        report.close()
    return {k: np.concatenate(v) for k, v in per_image.items()}, images, seconds / max(timed, 1)


class _Progress:
    """'<label>: images k/n, r images/s, ETA s' on stderr once scoring has taken 2 s: rewritten in
    place on a terminal, a line every 10 s (and the last) in a log; nothing for a quick split."""

    def __init__(self, label: str, total: int):
        self.label, self.total, self.began = label, total, time.perf_counter()
        self.shown, self.tty = None, sys.stderr.isatty()

    def __call__(self, done: int) -> None:
        now = time.perf_counter()
        if now - self.began < 2 or (not self.tty and self.shown is not None and now - self.shown < 10
                                    and done < self.total):
            return
        self.shown = now
        rate = done / max(now - self.began, 1e-9)
        line = f"{self.label}: images {done}/{self.total}, {rate:.2f} images/s, ETA {(self.total - done) / rate:.0f}s"
        print(f"\r{line}" if self.tty else line, end="" if self.tty else "\n", file=sys.stderr)

    def close(self) -> None:
        if self.tty and self.shown is not None:
            print(file=sys.stderr)
