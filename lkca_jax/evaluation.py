"""The paper's table for a split: scored by :func:`lkca_jax.inference.predict_split`, printed, written.

One jitted function super-resolves a padded batch and scores every image
(:mod:`lkca_jax.metrics`); the host keeps the real images (mask 1), averages per
image then over images in float64 (the paper's order), and times the forward
pass alone (after compilation) as seconds per image.
"""

from __future__ import annotations

import json
import pathlib
import sys

import jax
import numpy as np

from lkca_jax import checkpoint, metrics
from lkca_jax.accounting import count_config, human
from lkca_jax.atomic import atomic_write
from lkca_jax.data.datasets import load_splits
from lkca_jax.data.spec import DataSpec
from lkca_jax.figures import band_wavelengths, rgb_bands, save_pictures
from lkca_jax.inference import bicubic_config, predict_split, row_name, uses_self_ensemble
from lkca_jax.models import build_model
from lkca_jax.ops.imresize import imresize
from lkca_jax.pretrained import load_pretrained

COLUMNS = ("Method", "Param", "Flops", *metrics.NAMES, "s/img")


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


def gain_line(row: dict, reference: dict) -> str:
    """What a row gains over the reference (Bicubic) in the metrics a reader looks at first."""
    better = row["MPSNR"] > reference["MPSNR"] and row["SAM"] < reference["SAM"]
    return (f"{row['Method']} against {reference['Method']}: MPSNR {row['MPSNR'] - reference['MPSNR']:+.4f} dB, "
            f"SAM {row['SAM'] - reference['SAM']:+.4f} deg, ERGAS {row['ERGAS'] - reference['ERGAS']:+.4f} "
            f"({'better in both MPSNR and SAM' if better else 'not better in both MPSNR and SAM'})\n")


def score(config, variables, split) -> tuple[dict, dict, list]:
    """The table row, the per-image metrics and the SR images of ``config``'s model on ``split``
    (a self-ensemble's row: "<method>+", its Flops the 8 passes')."""
    model = build_model(config, dtype=config.eval.get("dtype", "float32"))
    ensemble = uses_self_ensemble(config)
    per_image, images, seconds = predict_split(model, variables, split, config.eval.batch_size,
                                               config.model.scale, bool(config.eval.legacy_ergas),
                                               config.eval.get("tile", 0), ensemble, progress=row_name(config))
    counts = count_config(config)
    row = {"Method": row_name(config), "Param": counts["params"],
           "Flops": counts["macs"] * (8 if ensemble else 1),
           **mean_row(per_image), "s/img": seconds}
    return row, per_image, images


def evaluate(config, variables, split, out=None, split_name: str = "test", save_images: bool | None = None,
             echo=print, source: str | None = None) -> dict:
    """Score ``split`` (a :class:`lkca_jax.data.scenes.Split`), print the table (with the Bicubic
    row and the gain over it, unless ``eval.bicubic_row`` is off or the model is Bicubic; with
    ``eval.per_image``, each image's metrics under it) and, with an ``out`` folder (a run's ``eval/``),
    write ``<split>.json`` and ``.md`` there (and pictures when asked, ``images/``; a self-ensemble's
    ``<split>+.json``, ``.md`` and ``images+/``, beside the plain model's, which the recipes and the
    shipped models read)."""
    legacy = bool(config.eval.legacy_ergas)
    row, per_image, images = score(config, variables, split)
    rows, extra, scored = [row], "", [(row["Method"], per_image)]
    if config.eval.get("bicubic_row", True) and config.model.name != "bicubic":
        bicubic, bicubic_per_image, _ = score(bicubic_config(config), {}, split)
        rows, extra = [bicubic, row], "\n" + gain_line(row, bicubic)
        scored.insert(0, (bicubic["Method"], bicubic_per_image))
    table = (f"Scored: {source}\n\n" if source else "") + format_table(rows, legacy) + extra
    if config.eval.get("per_image", False):
        table += "\nPer image:\n\n" + per_image_table(split.ids, scored, legacy)
    echo(table)
    if out is not None:
        out = pathlib.Path(out)
        ensemble = uses_self_ensemble(config)
        stem = split_name + "+" * ensemble
        record = {"split": split_name, "dataset": config.data.protocol, "scale": config.model.scale,
                  "test_crop": int(config.data.test_crop), "self_ensemble": ensemble,
                  "legacy_ergas": legacy, "scored": source, "mean": row,
                  "per_image": {i: {k: float(v[n]) for k, v in per_image.items()} for n, i in enumerate(split.ids)},
                  "norm": split.norm, "device": jax.devices()[0].device_kind}
        if len(rows) > 1:
            record["bicubic"] = rows[0]
        text = json.dumps(record, indent=2, default=float)
        atomic_write(out / f"{stem}.json", lambda tmp: pathlib.Path(tmp).write_text(text))
        md = f"# {split_name} split{', self-ensemble' * ensemble}\n\n{table}"
        atomic_write(out / f"{stem}.md", lambda tmp: pathlib.Path(tmp).write_text(md))
        if config.eval.save_images if save_images is None else save_images:
            bands = rgb_bands(config, config.model.bands)
            nm = band_wavelengths(config)
            for name, lr, hr, sr in zip(split.ids, split.lr, split.hr, images):
                bic = np.asarray(imresize(lr[None], config.model.scale)[0])
                save_pictures(out / f"images{'+' * ensemble}", name, hr, bic, sr, bands, nm)
    return row


def eval_dir(workdir) -> pathlib.Path | None:
    """Where a run's tables and pictures go: its ``eval/`` folder (None: nowhere)."""
    return None if workdir is None else pathlib.Path(workdir) / "eval"


def evaluate_run(config, variables, split, workdir=None, echo=print, source: str | None = None) -> dict:
    """A finished training's test table: the plain model's (``eval/test.json``, which the recipes,
    ``table`` and shipping read) and, with ``eval.self_ensemble``, the self-ensemble's after it
    (``eval/test+.json``). Returns the last row."""
    if uses_self_ensemble(config):
        plain = config.copy_and_resolve_references()
        plain.eval.self_ensemble = False
        evaluate(plain, variables, split, eval_dir(workdir), echo=echo, source=source)
    return evaluate(config, variables, split, eval_dir(workdir), echo=echo, source=source)


def _require_same_model(config, run_config, source) -> None:
    """Refuse a ``--config`` of another scale or method than the model it lends its data to: its scale
    would be silently ignored (the model's own is used) and the table would not be what was asked."""
    asked = (config.model.scale, config.get("variant"))
    have = (run_config.model.scale, run_config.get("variant"))
    if asked[0] != have[0] or (None not in (asked[1], have[1]) and asked[1] != have[1]):
        raise ValueError(f"--config is x{asked[0]},{asked[1]} but {source} is an x{have[0]},{have[1]} model: "
                         f"give a config of its scale and method (':x{have[0]},{have[1]}')")


def evaluate_workdir(workdir, config=None, split_name: str = "test", which: str = "best",
                     save_images: bool = False, echo=print, weights: str = "ema", dtype: str | None = None,
                     per_image: bool = False, pretrained: str | None = None, self_ensemble: bool = False,
                     out=None) -> dict:
    """Evaluate the run in ``workdir`` (or ``config``'s Bicubic, which needs no checkpoint): its
    ``weights`` ('ema' where it kept them, or 'raw'), computing in ``dtype`` (None: ``eval.dtype``);
    ``per_image``: each image's rows under the table, whatever ``eval.per_image`` says;
    ``self_ensemble``: the model's mean over 8 flips and turns, whatever ``eval.self_ensemble`` says. With
    ``pretrained`` (a shipped model's name) that model instead. The table (and pictures) go to ``out``,
    by default the run's ``eval/`` folder; a shipped model's nowhere."""
    workdir = pathlib.Path(workdir) if workdir is not None else None
    seen, source = set(), None  # the scenes the model trained or was validated on; what is scored
    if config is not None and config.model.name == "bicubic":
        variables = {}
    else:
        if pretrained:
            _, variables, run_config = load_pretrained(pretrained)
            source = f"{pretrained} (a shipped model)"
        else:
            run_config, variables, meta = checkpoint.restore_variables(workdir, which, weights)
            kind = "EMA" if meta["weights"] == "ema" else "raw"
            source = f"{meta['path']} (step {meta.get('step')}), {kind} weights"
        if config is not None:  # the run's model with the given data and eval settings
            # scenes it learnt from or was chosen on, where its split names them (CAVE's; a folder's is
            # a shuffle, not checked)
            seen = {*run_config.data.get("train_scenes", ()), *run_config.data.get("val_scenes", ())}
            _require_same_model(config, run_config, pretrained or workdir)
            run_config.data, run_config.eval = config.data, config.eval
        config = run_config
    if dtype or per_image or self_ensemble:
        config = config.copy_and_resolve_references()
        with config.unlocked():  # a run saved before eval.per_image existed lacks the field
            config.eval.dtype = dtype or config.eval.get("dtype", "float32")
            config.eval.per_image = per_image or config.eval.get("per_image", False)
            config.eval.self_ensemble = self_ensemble or config.eval.get("self_ensemble", False)
    split = load_splits(DataSpec.of(config), (split_name,))[split_name]
    if known := sorted({i.split("/")[0] for i in split.ids} & seen):
        print(f"warning: {', '.join(known)}: scene(s) the model trained or was validated on; their scores "
              f"overstate what it does on new scenes", file=sys.stderr)
    out = out if out is not None else eval_dir(workdir)
    return evaluate(config, variables, split, out, split_name, save_images, echo, source)


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
