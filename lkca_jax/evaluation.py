"""Jitted batch evaluation: the paper's table for a split, and pictures of the results.

One jitted function super-resolves a padded batch and scores every image
(:mod:`lkca_jax.metrics`); the host keeps the real images (mask 1), averages per
image then over images in float64 (the paper's order), and times the forward
pass alone (after compilation) as seconds per image.
"""

from __future__ import annotations

import json
import pathlib
import time
import warnings

import jax
import numpy as np

from lkca_jax import checkpoint, metrics
from lkca_jax.accounting import count_config, human
from lkca_jax.atomic import atomic_write
from lkca_jax.data.datasets import load_splits
from lkca_jax.data.pipeline import SplitSource, eval_batches
from lkca_jax.data.registry import DATASETS
from lkca_jax.data.spec import DataSpec
from lkca_jax.inference import DEFAULT_TILE, predict_tiled, predictor
from lkca_jax.methods import method_name
from lkca_jax.models import build_model
from lkca_jax.ops.imresize import imresize

COLUMNS = ("Method", "Param", "Flops", *metrics.NAMES, "s/img")


def predict_split(model, variables, split, batch_size: int, scale: int, legacy_ergas: bool = False,
                  tile: int = 0):
    """Per-image metrics {name: float64 (n,)}, the SR images, and the forward seconds per image.

    Images whose LR side exceeds ``tile`` (> 0), or whose batch does not fit in device memory,
    run in tiles (:func:`lkca_jax.inference.predict_tiled`, the same result)."""
    predict = predictor(model)
    batch_size = max(1, min(batch_size, len(split)))  # never pad a short split up to a whole batch
    per_image = {k: [] for k in metrics.NAMES}
    images, seconds, timed = [], 0.0, 0
    compiled = set()
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
                sr[i] = predict_tiled(model, variables, lr[i], scale, tile)
        else:
            sr = jax.block_until_ready(predict(variables, lr))
        seconds += time.perf_counter() - start
        timed += int(keep.sum())
        for k, v in metrics.all_metrics_jit(hr, sr, float(scale), legacy_ergas).items():
            per_image[k].append(np.asarray(v, np.float64)[keep])
        images.extend(np.asarray(sr)[keep])
    return {k: np.concatenate(v) for k, v in per_image.items()}, images, seconds / max(timed, 1)


def mean_row(per_image: dict) -> dict:
    return {k: float(np.mean(v)) for k, v in per_image.items()}


def format_table(rows: list[dict], legacy_ergas: bool = False, where: list[tuple[str, int]] | None = None) -> str:
    """A Markdown table in the paper's column order; ``where``: each row's (dataset, scale), shown
    in the paper's leading Dataset and Ratio columns."""
    cols = [c if c != "ERGAS" or not legacy_ergas else "ERGAS (ratio 4, legacy)" for c in COLUMNS]
    cols = ["Dataset", "Ratio", *cols] if where else cols
    fmt = {"MPSNR": "{:.4f}", "MSSIM": "{:.4f}", "SAM": "{:.4f}", "CC": "{:.4f}", "RMSE": "{:.4f}",
           "ERGAS": "{:.4f}", "s/img": "{:.4f}"}
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for n, r in enumerate(rows):
        cells = [where[n][0], f"x{where[n][1]}"] if where else []
        cells += [str(r["Method"]), human(r["Param"], "M") if r["Param"] else "-",
                  human(r["Flops"], "G") if r["Flops"] else "-"]
        cells += [fmt[c].format(r[c]) for c in COLUMNS[3:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


PER_IMAGE = ("MPSNR", "SAM", "ERGAS")  # the per-image table's metrics


def per_image_table(ids, scored: list[tuple[str, dict]], legacy_ergas: bool = False) -> str:
    """A Markdown table of each image's MPSNR, SAM and ERGAS for each (method, per-image metrics) in
    ``scored``; with two (Bicubic and the model), also the second's MPSNR gain over the first."""
    label = {"ERGAS": "ERGAS (ratio 4, legacy)"} if legacy_ergas else {}
    cols = ["Image", *(f"{name} {label.get(m, m)}" for m in PER_IMAGE for name, _ in scored)]
    cols += ["MPSNR gain (dB)"] if len(scored) == 2 else []
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for n, image in enumerate(ids):
        cells = [str(image), *(f"{per[m][n]:.4f}" for m in PER_IMAGE for _, per in scored)]
        if len(scored) == 2:
            cells.append(f"{scored[1][1]['MPSNR'][n] - scored[0][1]['MPSNR'][n]:+.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def rgb_bands(config, bands: int) -> tuple[int, int, int]:
    chosen = tuple(config.eval.get("rgb_bands", ()) or ())
    if chosen:
        if len(chosen) != 3 or not all(0 <= b < bands for b in chosen):
            raise ValueError(f"eval.rgb_bands must be 3 band indices below {bands}, got {chosen}")
        return chosen
    return (bands * 3 // 4, bands // 2, bands // 4)


def band_wavelengths(config) -> np.ndarray | None:
    """The nominal band centres (nm) of ``config``'s dataset, where its registry entry states them."""
    entry = DATASETS.get(config.data.protocol)
    return None if entry is None else entry.band_centres(config.model.bands)


def false_colour(cube: np.ndarray, bands, lo, hi) -> np.ndarray:
    """An (H, W, 3) image in [0, 1] from three bands, stretched between per-channel limits."""
    rgb = cube[..., list(bands)].astype(np.float64)
    return np.clip((rgb - lo) / np.maximum(hi - lo, 1e-12), 0, 1)


def save_pictures(folder, name: str, gt, bicubic, sr, bands, wavelengths=None) -> None:
    """A panel (false-colour GT, Bicubic, SR, |SR - GT| with a colour bar) and a spectra plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = name.replace("/", "_")
    rgb = gt[..., list(bands)]
    lo, hi = np.percentile(rgb, 1, axis=(0, 1)), np.percentile(rgb, 99, axis=(0, 1))
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.4))
    for ax, (title, img) in zip(axes[:3], [("Ground truth", gt), ("Bicubic", bicubic), ("SR", sr)]):
        ax.imshow(false_colour(img, bands, lo, hi))
        ax.set_title(f"{title} (bands {bands[0]}/{bands[1]}/{bands[2]})" if title == "Ground truth" else title)
        ax.axis("off")
    err = np.abs(sr - gt).mean(-1)
    im = axes[3].imshow(err, cmap="magma")
    axes[3].set_title("|SR - GT|, mean over bands")
    axes[3].axis("off")
    fig.colorbar(im, ax=axes[3], fraction=0.046)
    fig.suptitle(name)
    fig.tight_layout()
    atomic_write(folder / f"{stem}_panel.png", lambda tmp: fig.savefig(tmp, format="png", dpi=80))
    plt.close(fig)

    h, w = gt.shape[:2]
    pixels = [(h // 4, w // 4), (h // 2, w // 2), (3 * h // 4, 3 * w // 4)]
    x = np.arange(gt.shape[2]) if wavelengths is None else wavelengths
    fig, ax = plt.subplots(figsize=(7, 4))
    for py, px in pixels:
        line, = ax.plot(x, gt[py, px], label=f"GT ({py}, {px})")
        ax.plot(x, sr[py, px], "--", color=line.get_color(), label=f"SR ({py}, {px})")
    ax.set_xlabel("band" if wavelengths is None else "wavelength (nm, nominal)")
    ax.set_ylabel("normalised value")
    ax.set_title(f"Spectra of three pixels: {name}")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    atomic_write(folder / f"{stem}_spectra.png", lambda tmp: fig.savefig(tmp, format="png", dpi=80))
    plt.close(fig)


def bicubic_config(config):
    """``config`` with the model replaced by Bicubic (same bands and scale)."""
    b = config.copy_and_resolve_references()
    b.variant, b.model.name = "bicubic", "bicubic"
    if "converted" in b:
        b.converted = ""
    return b


def gain_line(row: dict, reference: dict) -> str:
    """What a row gains over the reference (Bicubic) in the metrics a reader looks at first."""
    better = row["MPSNR"] > reference["MPSNR"] and row["SAM"] < reference["SAM"]
    return (f"{row['Method']} against {reference['Method']}: MPSNR {row['MPSNR'] - reference['MPSNR']:+.4f} dB, "
            f"SAM {row['SAM'] - reference['SAM']:+.4f} deg, ERGAS {row['ERGAS'] - reference['ERGAS']:+.4f} "
            f"({'better in both MPSNR and SAM' if better else 'not better in both MPSNR and SAM'})\n")


def score(config, variables, split) -> tuple[dict, dict, list]:
    """The table row, the per-image metrics and the SR images of ``config``'s model on ``split``."""
    model = build_model(config, dtype=config.eval.get("dtype", "float32"))
    per_image, images, seconds = predict_split(model, variables, split, config.eval.batch_size,
                                               config.model.scale, bool(config.eval.legacy_ergas),
                                               config.eval.get("tile", 0))
    counts = count_config(config)
    row = {"Method": method_name(config), "Param": counts["params"], "Flops": counts["macs"],
           **mean_row(per_image), "s/img": seconds}
    return row, per_image, images


def evaluate(config, variables, split, workdir=None, split_name: str = "test", save_images: bool | None = None,
             echo=print) -> dict:
    """Score ``split`` (a :class:`lkca_jax.data.scenes.Split`), print the table (with the Bicubic
    row and the gain over it, unless ``eval.bicubic_row`` is off or the model is Bicubic; with
    ``eval.per_image``, each image's metrics under it) and, with a ``workdir``, write
    ``eval/<split>.json`` and ``.md`` (and pictures when asked)."""
    legacy = bool(config.eval.legacy_ergas)
    row, per_image, images = score(config, variables, split)
    rows, extra, scored = [row], "", [(row["Method"], per_image)]
    if config.eval.get("bicubic_row", True) and config.model.name != "bicubic":
        bicubic, bicubic_per_image, _ = score(bicubic_config(config), {}, split)
        rows, extra = [bicubic, row], "\n" + gain_line(row, bicubic)
        scored.insert(0, (bicubic["Method"], bicubic_per_image))
    table = format_table(rows, legacy) + extra
    if config.eval.get("per_image", False):
        table += "\nPer image:\n\n" + per_image_table(split.ids, scored, legacy)
    echo(table)
    if workdir is not None:
        out = pathlib.Path(workdir) / "eval"
        record = {"split": split_name, "dataset": config.data.protocol, "scale": config.model.scale,
                  "legacy_ergas": legacy, "mean": row,
                  "per_image": {i: {k: float(v[n]) for k, v in per_image.items()} for n, i in enumerate(split.ids)},
                  "norm": split.norm, "device": jax.devices()[0].device_kind}
        if len(rows) > 1:
            record["bicubic"] = rows[0]
        text = json.dumps(record, indent=2, default=float)
        atomic_write(out / f"{split_name}.json", lambda tmp: pathlib.Path(tmp).write_text(text))
        md = f"# {split_name} split\n\n{table}"
        atomic_write(out / f"{split_name}.md", lambda tmp: pathlib.Path(tmp).write_text(md))
        if config.eval.save_images if save_images is None else save_images:
            bands = rgb_bands(config, config.model.bands)
            nm = band_wavelengths(config)
            for name, lr, hr, sr in zip(split.ids, split.lr, split.hr, images):
                bic = np.asarray(imresize(lr[None], config.model.scale)[0])
                save_pictures(out / "images", name, hr, bic, sr, bands, nm)
    return row


def evaluate_workdir(workdir, config=None, split_name: str = "test", which: str = "best",
                     save_images: bool = False, echo=print, weights: str = "ema", dtype: str | None = None,
                     per_image: bool = False) -> dict:
    """Evaluate the run in ``workdir`` (or ``config``'s Bicubic, which needs no checkpoint): its
    ``weights`` ('ema' where it kept them, or 'raw'), computing in ``dtype`` (None: ``eval.dtype``);
    ``per_image``: each image's rows under the table, whatever ``eval.per_image`` says."""
    workdir = pathlib.Path(workdir)
    if config is not None and config.model.name == "bicubic":
        variables = {}
    else:
        _, variables, run_config = checkpoint.load_run(workdir, which, weights)
        if config is not None:  # the run's model with the given data and eval settings
            run_config.data, run_config.eval = config.data, config.eval
        config = run_config
    if dtype or per_image:
        config = config.copy_and_resolve_references()
        with config.unlocked():  # a run saved before eval.per_image existed lacks the field
            config.eval.dtype = dtype or config.eval.get("dtype", "float32")
            config.eval.per_image = per_image or config.eval.get("per_image", False)
    split = load_splits(DataSpec.of(config), (split_name,))[split_name]
    return evaluate(config, variables, split, workdir, split_name, save_images, echo)


def runs_table(workdirs, split_name: str = "test") -> str:
    """One Markdown table of several runs' ``eval/<split>.json`` rows (evaluated alike), each
    labelled with its dataset and scale."""
    rows, legacy, where = [], set(), []
    for workdir in workdirs:
        path = pathlib.Path(workdir) / "eval" / f"{split_name}.json"
        if not path.is_file():
            raise ValueError(f"{path}: missing; run evaluate.py --workdir {workdir} first")
        try:
            record = json.loads(path.read_text())
            rows.append(record["mean"])
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: not an evaluation record ({type(err).__name__}: {err})") from None
        legacy.add(record.get("legacy_ergas", False))
        dataset = record.get("dataset")  # records written before it was kept: the run's config
        if dataset is None:
            config_file = pathlib.Path(workdir) / checkpoint.CONFIG_FILE
            dataset = checkpoint.load_config(workdir).dataset if config_file.is_file() else "?"
        where.append((dataset, record.get("scale", "?")))
    if len(legacy) > 1:
        raise ValueError("the runs mix the legacy and the correct ERGAS; evaluate them alike")
    return format_table(rows, legacy.pop(), where)
