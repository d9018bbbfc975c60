"""Every picture the library draws, written atomically as PNGs (matplotlib's Agg backend).

* :func:`compare_runs`: one test image super-resolved by several trained runs (the same prediction
  and metrics as ``evaluate.py``: :func:`lkca_jax.inference.predict_split` on that image), drawn as

  - ``<image>_compare.png``: false-colour panels of the ground truth, Bicubic and every run, each
    titled with its PSNR and SAM on the image, a red box around a region (``box``, or by default the
    window of the ground truth with the most texture: :func:`default_box`), that region enlarged
    under each panel with one colour stretch for all of them, and a row of per-pixel error maps on
    one colour scale;
  - ``<image>_spectra.png``: the spectra of a few pixels (``pixels``, or by default the worst for
    Bicubic, spread apart) for the ground truth and every method, and each method's per-band PSNR,
    against wavelength where the dataset's registry entry gives its range (else band index).

  Memory is bounded by one SR image at a time: each method leaves only its three false-colour
  bands, its error map, its per-band MSE and the chosen pixels' spectra.
* :func:`save_pictures`: ``evaluate.py --save_images``'s panel and spectra of one image.
* :func:`plot_cumulative`: the upsampler spectra of :func:`lkca_jax.lowrank.rank_report` (the
  paper's Fig. 4).
* :func:`plot_parts`: parameters by part (the paper's Fig. 1), from ``count --parts``.
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from lkca_jax import checkpoint
from lkca_jax.accounting import PARTS
from lkca_jax.atomic import atomic_write
from lkca_jax.data.datasets import load_splits
from lkca_jax.data.registry import DATASETS
from lkca_jax.data.scenes import Split
from lkca_jax.data.spec import DataSpec
from lkca_jax.inference import bicubic_config, predict_split, row_name, uses_self_ensemble
from lkca_jax.lowrank import PAPER_RANK90, PAPER_SIZE, random_spectrum
from lkca_jax.models import build_model


@dataclasses.dataclass
class Panel:
    """What one method leaves for the figures."""

    title: str
    psnr: float
    sam: float
    rgb: np.ndarray  # (H, W, 3) the three false-colour bands, unstretched
    error: np.ndarray  # (H, W) mean over bands of |SR - GT|
    band_psnr: np.ndarray  # (C,)
    spectra: np.ndarray  # (pixels, C)


def same_task(configs: dict) -> None:
    """Refuse runs of different datasets, protocols, band counts or scales (one line)."""
    def key(c):
        return (c.dataset, c.data.protocol, c.model.bands, c.model.scale, tuple(c.data.get("test_scenes", ())))

    (first, c0), *rest = configs.items()
    for name, c in rest:
        if key(c) != key(c0):
            raise ValueError(f"runs {first} and {name} differ in dataset or scale ({c0.dataset} x{c0.model.scale}, "
                             f"{c.model.bands} vs {c0.model.bands} bands; {c.dataset} x{c.model.scale}): compare needs "
                             f"one dataset and scale")


def _band_psnr(gt, sr) -> np.ndarray:
    mse = np.mean((gt.astype(np.float64) - sr) ** 2, axis=(0, 1))
    return np.where(mse > 0, -10 * np.log10(np.maximum(mse, 1e-300)), np.inf)


def _window_sums(a: np.ndarray, k: int) -> np.ndarray:
    """Sums of ``a`` over every k x k window (index: the window's top-left corner)."""
    c = np.pad(np.cumsum(np.cumsum(a, 0), 1), ((1, 0), (1, 0)))
    return c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]


def default_box(gt: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left (y, x) of the size x size window of the ground truth with the most texture: the
    largest sum of the smaller eigenvalue of the structure tensor (3 x 3 sums of the gradient's outer
    product) of its band mean, Shi and Tomasi's corner measure. A straight step edge, as between a
    colour chart's patches, has one large eigenvalue and scores about 0; texture has two."""
    img = gt.astype(np.float64).mean(-1)
    gy, gx = np.gradient(img)
    a, b, c = (np.pad(_window_sums(g, 3), 1) for g in (gx * gx, gx * gy, gy * gy))
    smaller = (a + c) / 2 - np.sqrt(((a - c) / 2) ** 2 + b ** 2)
    sums = _window_sums(np.maximum(smaller, 0), size)
    y, x = np.unravel_index(np.argmax(sums), sums.shape)
    return int(y), int(x)


def worst_pixels(gt, bicubic, n: int = 3) -> list[tuple[int, int]]:
    """The ``n`` pixels where Bicubic's spectrum is furthest from the ground truth (RMS over bands),
    at least an eighth of the image apart."""
    err = np.sqrt(np.mean((bicubic - gt.astype(np.float64)) ** 2, axis=-1))
    gap = max(min(err.shape) // 8, 1)
    chosen = []
    for flat in np.argsort(err, axis=None)[::-1]:
        y, x = np.unravel_index(flat, err.shape)
        if all(max(abs(y - a), abs(x - b)) >= gap for a, b in chosen):
            chosen.append((int(y), int(x)))
            if len(chosen) == n:
                break
    return chosen


def _predict(config, variables, one: Split) -> tuple[dict, np.ndarray]:
    """The evaluation's per-image metrics and SR image of the one-image split ``one``."""
    per_image, images, _ = predict_split(build_model(config), variables, one, 1, config.model.scale,
                                         bool(config.eval.legacy_ergas), config.eval.get("tile", 0),
                                         uses_self_ensemble(config))
    return per_image, np.asarray(images[0])


def _panel(title, per_image, sr, gt, bands, pixels) -> Panel:
    return Panel(title, float(per_image["MPSNR"][0]), float(per_image["SAM"][0]),
                 sr[..., list(bands)].astype(np.float32), np.abs(sr - gt).mean(-1), _band_psnr(gt, sr),
                 np.stack([sr[y, x] for y, x in pixels]))


def compare_runs(workdirs, out, image: str | None = None, box: tuple[int, int, int] | None = None,
                 pixels: list[tuple[int, int]] | None = None, which: str = "best", names=None,
                 weights: str = "ema") -> dict:
    """Draw the comparison and spectra PNGs of ``image`` (a test-split id; default the first) into
    ``out``; returns {"image", "box", "pixels", "panels": [{title, psnr, sam}], "files"}."""
    runs = {}
    for i, workdir in enumerate(workdirs):
        label = names[i] if names else pathlib.Path(workdir).name
        runs[label] = (workdir, checkpoint.load_config(workdir))
    same_task({name: c for name, (_, c) in runs.items()})
    config = next(iter(runs.values()))[1]
    split = load_splits(DataSpec.of(config), ("test",))["test"]
    if image is None:
        image = split.ids[0]
    if image not in split.ids:
        raise ValueError(f"image {image!r} is not in the test split of {config.dataset}; it has: "
                         f"{', '.join(split.ids)}")
    i = split.ids.index(image)
    one = Split([split.hr[i]], [split.lr[i]], [image], split.norm)
    del split
    gt = one.hr[0]
    h, w, c = gt.shape
    if box is not None and not (box[0] >= 0 and box[1] >= 0 and box[2] > 0 and box[0] + box[2] <= h
                                and box[1] + box[2] <= w):
        raise ValueError(f"box {box} (y, x, size) does not fit in {image} ({h} x {w})")
    bands = rgb_bands(config, c)

    per_image, bic = _predict(bicubic_config(config), {}, one)
    worst = pixels is None
    if worst:
        pixels = worst_pixels(gt, bic)
    for y, x in pixels:
        if not (0 <= y < h and 0 <= x < w):
            raise ValueError(f"pixel ({y}, {x}) is outside {image} ({h} x {w})")
    panels = [_panel("Bicubic", per_image, bic, gt, bands, pixels)]
    del bic
    for label, (workdir, _) in runs.items():
        _, variables, run_config = checkpoint.load_run(workdir, which, weights)
        run_config.data, run_config.eval = config.data, config.eval
        per_image, sr = _predict(run_config, variables, one)
        panels.append(_panel(f"{row_name(run_config)} ({label})", per_image, sr, gt, bands, pixels))
        del sr

    if box is None:
        size = max(8, min(h, w) // 8)
        box = (*default_box(gt, size), size)
    out = pathlib.Path(out)
    stem = image.replace("/", "_")
    files = [out / f"{stem}_compare.png", out / f"{stem}_spectra.png"]
    truth = Panel("Ground truth", np.inf, 0.0, gt[..., list(bands)].astype(np.float32), np.zeros((h, w)),
                  np.full(c, np.inf), np.stack([gt[py, px] for py, px in pixels]))
    columns = _draw_comparison(files[0], image, bands, truth, panels, box)
    _draw_spectra(files[1], image, truth, panels, pixels, worst, band_wavelengths(config))
    return {"image": image, "box": box, "pixels": pixels, "files": [str(f) for f in files], "columns": columns,
            "panels": [{"title": p.title, "psnr": p.psnr, "sam": p.sam} for p in panels]}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path, dpi=None) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    _plt().close(fig)


def panel_title(p: Panel) -> str:
    return f"{p.title}\n{p.psnr:.2f} dB, SAM {p.sam:.2f}°"


def _draw_comparison(path, image, bands, truth: Panel, panels: list[Panel], box) -> list[str]:
    """Draw the figure; returns the titles of its columns, as drawn."""
    plt = _plt()
    from matplotlib.patches import Rectangle

    y, x, size = box
    cols = [truth, *panels]
    # the whole image stretched between the ground truth's 1st and 99th percentiles of each channel,
    # the enlarged box between those of the box itself over its three channels together: one stretch
    # for every column and channel (a stretch per channel of a small box turns tiny differences into
    # strong colour casts), fitted to the box so that a bright region's detail is not clipped away
    whole = np.percentile(truth.rgb, (1, 99), axis=(0, 1))
    part = np.percentile(truth.rgb[y:y + size, x:x + size], (1, 99.5))
    vmax = float(np.percentile(np.stack([p.error for p in panels]), 99.5)) or 1e-6
    fig, axes = plt.subplots(3, len(cols), figsize=(2.6 * len(cols), 8.4), squeeze=False,
                             gridspec_kw={"height_ratios": [1, 1, 1]})
    for j, p in enumerate(cols):
        top, zoom, err = axes[:, j]
        top.imshow(false_colour(p.rgb, (0, 1, 2), *whole))
        top.add_patch(Rectangle((x - 0.5, y - 0.5), size, size, fill=False, ec="red", lw=1.5))
        top.set_title("Ground truth" if j == 0 else panel_title(p), fontsize=8)
        zoom.imshow(false_colour(p.rgb[y:y + size, x:x + size], (0, 1, 2), *part),
                    interpolation="nearest")
        for side in zoom.spines.values():
            side.set_edgecolor("red")
        if j == 0:
            err.axis("off")
        else:
            im = err.imshow(p.error, cmap="magma", vmin=0, vmax=vmax)
        for ax in (top, zoom, err):
            ax.set_xticks([])
            ax.set_yticks([])
    axes[1, 0].set_ylabel(f"box ({y}, {x}), {size} px", fontsize=8)
    axes[2, 1].set_ylabel("|SR - GT|, mean over bands", fontsize=8)
    fig.colorbar(im, ax=axes[2, 0], fraction=0.8, location="left")
    fig.suptitle(f"{image}\nfalse colour (bands {bands[0]}/{bands[1]}/{bands[2]}); the red box enlarged "
                 f"(one stretch, all columns); per-pixel error on one scale", fontsize=9)
    fig.tight_layout()
    columns = [ax.get_title() for ax in axes[0]]
    _save(fig, path)
    return columns


def _draw_spectra(path, image, truth: Panel, panels: list[Panel], pixels, worst: bool, nm=None) -> None:
    """Spectra at ``pixels`` and each band's PSNR, against wavelength where ``nm`` gives the band
    centres, else the band index."""
    plt = _plt()
    n = len(pixels)
    fig, axes = plt.subplots(1, n + 1, figsize=(4 * (n + 1), 3.8), squeeze=False)
    colours = plt.get_cmap("tab10")
    bands = np.arange(truth.spectra.shape[1]) if nm is None else nm
    xlabel = "band" if nm is None else "wavelength (nm, nominal)"
    for k, (py, px) in enumerate(pixels):
        ax = axes[0, k]
        ax.plot(bands, truth.spectra[k], "k-", lw=2, label="Ground truth")
        for j, p in enumerate(panels):
            ax.plot(bands, p.spectra[k], color=colours(j % 10), lw=1, ls=("--", "-.", ":")[j % 3], label=p.title)
        ax.set_title(f"pixel ({py}, {px})", fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("normalised value")
        ax.grid(alpha=0.3)
    ax = axes[0, n]
    for j, p in enumerate(panels):
        ax.plot(bands, p.band_psnr, color=colours(j % 10), lw=1, ls=("--", "-.", ":")[j % 3], label=p.title)
    ax.set_title("PSNR of each band", fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("dB")
    ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=8)
    where = "where Bicubic errs most" if worst else "of the chosen pixels"
    fig.suptitle(f"{image}: spectra {where}, and where in the spectrum each method loses", fontsize=10)
    fig.tight_layout(rect=(0, 0.06 + 0.04 * (len(labels) // 4), 1, 1))
    _save(fig, path)


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
    plt = _plt()
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
    _save(fig, folder / f"{stem}_panel.png", dpi=80)

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
    _save(fig, folder / f"{stem}_spectra.png", dpi=80)


def plot_cumulative(spectra: dict, path, first: int | None = None) -> dict:
    """The paper's Fig. 4: normalised cumulative singular values of each run (the first ``first``
    indices; all by default), each run's 90 % rank marked on its curve and named in the legend (outside
    the axes, so that nine curves stay readable: ten colours, three dash styles), written atomically as
    a PNG. One matrix: against the singular value's index; several: against the index as a fraction
    of each matrix's number of singular values, so that matrices of different sizes compare.

    Beside them: for each matrix shape, a random Gaussian matrix of that shape (grey), the curve of a
    matrix with no low-rank structure; and the paper's 90 % points (about 60 of 1152 on Chikusei and
    Houston, 130 on Pavia), at the same fraction of the size on a matrix of another size. Returns what
    was drawn: {"curves": {label: (x, y)}, "paper": {label: (x, y)}}."""
    plt = _plt()
    n = len(spectra)
    fig, ax = plt.subplots(figsize=(9.5 if n > 1 else 6, 4 + 0.12 * max(n - 5, 0)), dpi=120)
    colours, styles = plt.get_cmap("tab10"), ("-", "--", "-.")
    relative = n > 1
    drawn = {"curves": {}, "paper": {}}

    def draw(label, cumulative, size, **style):
        c = np.asarray(cumulative)[:first]
        x = np.arange(1, len(c) + 1) / (size if relative else 1)
        drawn["curves"][label] = (x, c)
        return ax.plot(x, c, label=label, **style)[0], x, c

    for i, (name, sp) in enumerate(spectra.items()):
        r90, size = sp["rank90"], len(sp["cumulative"])
        line, x, c = draw(f"{name}: 90% at {r90} of {size}", sp["cumulative"], size, color=colours(i % 10),
                          ls=styles[(i // 10) % 3], lw=1.2)
        if r90 <= len(c):
            ax.plot([x[r90 - 1]], [c[r90 - 1]], "o", ms=5, mfc="white", color=line.get_color())
    for shape in dict.fromkeys(tuple(sp["shape"]) for sp in spectra.values()):
        ref, rank = random_spectrum(shape), min(shape)
        draw(f"random {shape[0]} x {shape[1]} matrix: 90% at {ref['rank90']} of {rank}", ref["cumulative"], rank,
             color="0.55", ls=":", lw=1.4)
    size = len(next(iter(spectra.values()))["cumulative"])
    for k, (where, rank) in enumerate(PAPER_RANK90.items()):
        x = rank / PAPER_SIZE * (1 if relative else size)
        label = f"paper, {where}: 90% at about {rank} of {PAPER_SIZE}"
        drawn["paper"][label] = (x, 0.9)
        ax.plot([x], [0.9], "*^"[k], ms=9, color="black", mfc="gold", ls="none", label=label)
    ax.axhline(0.9, color="k", ls=":", lw=0.8)
    ax.text(ax.get_xlim()[1], 0.9, " 90%", va="center", ha="left", fontsize=8)
    ax.set_xlabel("singular value index / number of singular values" if relative else "singular value index")
    ax.set_ylabel("normalised cumulative sum")
    ax.set_title("Upsampler weight spectrum (o: 90% rank)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    if n > 1:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.04, 1.0), frameon=False)
    else:
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    _save(fig, path)
    return drawn


def plot_parts(rows: list[tuple[str, dict]], path, title: str = "") -> None:
    """Fig. 1 for every method: horizontal bars of parameters (M) by part, the upsampler's share
    written beside each bar; written atomically as a PNG."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.4), dpi=120)
    colours = {"backbone": "#4c72b0", "learnable upsampler": "#dd8452", "reconstruction": "#8c8c8c"}
    for i, (_, parts) in enumerate(rows):
        left = 0.0
        for part in PARTS:
            ax.barh(i, parts[part] / 1e6, left=left, color=colours[part], label=part if i == 0 else None)
            left += parts[part] / 1e6
        total = sum(parts.values())
        share = f"{100 * parts['learnable upsampler'] / total:.0f}% upsampler" if total else "no parameters"
        ax.text(left, i, f"  {total / 1e6:.2f}M, {share}", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), [name for name, _ in rows])
    ax.invert_yaxis()
    ax.set_xlabel("parameters (M)")
    ax.set_xlim(0, 1.35 * max(sum(p.values()) for _, p in rows) / 1e6 or 1)
    ax.set_title(title or "Parameters by part (the paper's Fig. 1)")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
