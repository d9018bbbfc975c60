"""Command line: ``python -m lkca_jax <command> ...`` (``train.py`` and ``evaluate.py`` are its
``train`` and ``evaluate``). Every command that takes ``--config path/to/config.py[:arg]`` takes
overrides of any of its fields after it, ``--config.<field> value`` or ``--config.<field>=value``
(:func:`lkca_jax.config.load_config`).

    train    [--config=configs/sample.py[:x4,net]] --workdir RUN [--config.train.batch_size 16 ...]
             [--coordinator HOST:PORT --num_processes N --process_id I]
        Train, then evaluate on the test split; rerun with the same workdir to resume (--config may
        then be left out: the workdir's config.json).
    evaluate --workdir RUN|--pretrained NAME [--config C] [--split test] [--which best] [--save_images]
             [--per_image] [--self_ensemble] [--weights ema|raw] [--dtype D] [--out DIR]
        The paper's table for a trained run (or Bicubic with --config ...:bicubic), or for a shipped
        model on --config's data (e.g. every scene of a folder of CAVE scenes: --config
        configs/cave.py:x4,net,own --config.data.path DIR; without --config, the data it was trained
        on, from the working folder); written to the run's eval/ or to --out.
    count    --config=configs/chikusei.py:x4,net [--config=...] [--config.model.depth 32 ...] [--json]
             [--parts FIG.png]
        Parameters and FLOPs in the paper's convention, fvcore's (one 16 x 16 LR input); any
        config field can be overridden as for train.py. --parts: also each model's parameters by
        part (backbone, learnable upsampler, reconstruction) in the table and as a PNG (Fig. 1).
    inspect  FILE [--key K] [--json]
        Shape, data type and value range of a cube (.mat, .npy/.npz, .tif, ENVI, PNG folder), and its
        CRS, pixel size and nodata value when it has them.
    sr       --workdir RUN|--pretrained NAME --input IN --output OUT [--key K] [--tile T] [--overlap O]
             [--batch B] [--norm V] [--self_ensemble]
        Super-resolve a whole scene with a trained run, in overlapping cross-faded tiles; OUT's
        suffix picks the format (.mat, .npy, .tif, .hdr for ENVI). A GeoTIFF or ENVI input's
        georeference goes to a .tif or .hdr output with pixels r times smaller.
    convert  --workdir RUN --to model.pt  |  --from model.pt --workdir NEW_RUN [--config C]
        Weights to and from the PyTorch reference (lkca_jax/reference/): a .pt state dict.
    rank     --workdir RUN [--workdir RUN2 ...] [--out DIR]
        Singular values of the trained upsampler (the paper's Fig. 4): rank.json and rank.png.
    compare  --workdir RUN [--workdir RUN2 ...] --out DIR [--image ID] [--box Y,X,SIZE] [--pixel Y,X ...]
        Several runs side by side on one test image (the paper's Figs. 6-8: false colour, an enlarged
        box, error maps on one scale, PSNR and SAM in the titles), and their spectra and per-band PSNR.
    lowrank convert --workdir DENSE_RUN --to grouped:G|svd:R --out NEW_RUN [--evaluate]
        Compress a trained dense upsampler (block-diagonal part, or truncated SVD) into a new run.
    table    --workdir RUN [--workdir RUN2 ...] [--split test] [--out FILE]
        One table (the paper's columns) from the runs' eval/<split>.json.
    export   --workdir RUN --format stablehlo|onnx --lr_size H,W --out FILE
        A deployment artifact (jax.export StableHLO, or ONNX through the PyTorch reference),
        verified against the Flax model before it is written.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import signal
import sys
import warnings

from lkca_jax import atomic, hostmem
from lkca_jax.config import split_overrides
from lkca_jax.pretrained import available

ENSEMBLE_HELP = ("average the model over the 8 flips and quarter-turns of its input, each output turned back "
                 "(8 times the work; what it gains: docs/results.md)")


def _load(spec: str, overrides: dict):
    """The config of ``spec`` with its overrides, checked (:func:`lkca_jax.config.check`); whatever
    the config file raises becomes one line naming the file."""
    from lkca_jax.config import check, load_config

    try:
        config = load_config(spec, overrides)
    except (ValueError, OSError):
        raise
    except Exception as err:  # the config file's own error
        raise ValueError(f"{spec}: {type(err).__name__}: {err}") from None
    check(config)
    return config


def _train(args) -> int:
    from absl import logging

    from lkca_jax import parallel, training

    logging.set_verbosity(logging.WARNING)  # orbax logs every step of its work at INFO
    sys.stdout.reconfigure(line_buffering=True)  # progress lines reach logs as they happen
    if args.config:
        config = _load(args.config, args.overrides)
    else:  # a resume: the config the run saved, with the overrides given (a longer schedule, ...)
        from lkca_jax.checkpoint import CONFIG_FILE, load_config
        from lkca_jax.config import apply_overrides, check

        try:
            config = load_config(args.workdir)
        except FileNotFoundError:
            raise ValueError(f"{args.workdir}: no {CONFIG_FILE} to resume from; give --config") from None
        check(apply_overrides(config, args.overrides, f"{args.workdir}/{CONFIG_FILE}"))
    parallel.initialize_distributed(args.coordinator, args.num_processes, args.process_id)
    try:
        training.train_and_evaluate(config, args.workdir)
    except training.NonFiniteLoss as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    except training.Interrupted as err:  # Ctrl-C or SIGTERM: saved at a step boundary
        print(f"stopped: {err}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:  # before the first step, or a second Ctrl-C
        print(f"stopped: interrupted; {args.workdir} keeps its last saved checkpoint", file=sys.stderr)
        return 130
    return 0


def _evaluate(args) -> int:
    from absl import logging

    from lkca_jax import evaluation

    logging.set_verbosity(logging.WARNING)
    config = _load(args.config, args.overrides) if args.config else None
    if args.pretrained and (args.which != "best" or args.weights != "ema"):
        raise ValueError("--which and --weights choose among a run's checkpoints: they need --workdir, "
                         "not --pretrained (a shipped model is one set of weights)")
    if args.pretrained and args.save_images and not args.out:
        raise ValueError("--save_images with --pretrained needs --out DIR (a shipped model has no run folder to "
                         "write into)")
    if args.pretrained and config is not None and config.model.name == "bicubic":
        raise ValueError("--pretrained scores the shipped model: give a config of its method, not :bicubic")
    evaluation.evaluate_workdir(args.workdir, config, args.split, args.which, args.save_images,
                                weights=args.weights, dtype=args.dtype, per_image=args.per_image,
                                pretrained=args.pretrained, self_ensemble=args.self_ensemble, out=args.out)
    return 0


def _count(args) -> int:
    from lkca_jax.accounting import PARTS, count_config, human, parts_config
    from lkca_jax.config import load_config
    from lkca_jax.figures import plot_parts
    from lkca_jax.methods import method_name

    if args.json and len(args.config) != 1:
        raise ValueError("--json takes exactly one --config")
    rows = []
    for spec in args.config:
        config = load_config(spec, args.overrides)
        n = count_config(config)
        if args.parts:
            n["parts"] = parts_config(config)
        rows.append((config, n))
    if args.json:
        print(json.dumps(rows[0][1]))
    else:
        extra = "".join(f" {p.capitalize()} |" for p in PARTS) if args.parts else ""
        print(f"| Dataset | Ratio | Method | Param | Flops (MACs) |{extra}")
        print("|---|---|---|---|---|" + "---|" * len(PARTS) * bool(args.parts))
        for config, n in rows:
            params = human(n["params"], "M") if n["params"] else "-"
            macs = human(n["macs"], "G") if n["macs"] else "-"
            parts = "".join(f" {human(n['parts'][p], 'M')} |" for p in PARTS) if args.parts else ""
            print(f"| {config.dataset} | x{config.model.scale} | {method_name(config)} | {params} | {macs} |{parts}")
    if args.parts:
        datasets = sorted({f"{c.dataset} x{c.model.scale}" for c, _ in rows})
        plot_parts([(method_name(c), n["parts"]) for c, n in rows], args.parts,
                   f"Parameters by part, {', '.join(datasets)} (the paper's Fig. 1)")
        print(f"wrote {args.parts}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _inspect(args) -> int:
    import numpy as np

    from lkca_jax.data.io import read_cube

    cube = read_cube(args.file, args.key)
    data = cube.data
    finite = data[np.isfinite(data)]
    info = {"shape": list(data.shape), "dtype": cube.source_dtype,
            "min": float(finite.min()) if finite.size else None, "max": float(finite.max()) if finite.size else None}
    if cube.scaled != 1:  # min and max are of the values as read (8-bit band PNGs: on the 16-bit scale)
        info["scaled"] = cube.scaled
    g = cube.georef
    if g is not None:
        info.update(crs=g.crs_name, pixel_size=list(g.pixel_size), origin=[g.transform.c, g.transform.f],
                    nodata=g.nodata)
    if cube.nonfinite:
        print(f"warning: {args.file}: {cube.nonfinite} NaN or Inf value(s) (training refuses this file)",
              file=sys.stderr)
    if args.json:
        print(json.dumps(info))
    else:
        h, w, c = data.shape
        values = f"values {info['min']:g} .. {info['max']:g}" if finite.size else "no finite value"
        scaled = f" (read x {cube.scaled}, on the 16-bit scale)" if cube.scaled != 1 else ""
        print(f"{args.file}: {h} x {w} pixels, {c} bands, {cube.source_dtype}{scaled}, {values}"
              + ("" if cube.wavelengths is None else
              f", wavelengths {cube.wavelengths[0]:g} .. {cube.wavelengths[-1]:g}"))
        if g is not None:
            print(f"  CRS {g.crs_name}, pixel size {g.pixel_size[0]:g} x {g.pixel_size[1]:g}, origin "
                  f"({g.transform.c:g}, {g.transform.f:g})" + ("" if g.nodata is None else f", nodata {g.nodata:g}"))
    return 0


def _sr(args) -> int:
    from lkca_jax.inference import run_sr

    info = run_sr(args.workdir, args.input, args.output, args.key, args.tile, args.overlap, args.batch, args.which,
                  norm=args.norm, pretrained=args.pretrained, weights=args.weights, dtype=args.dtype,
                  self_ensemble=args.self_ensemble)
    print(f"wrote {info['output']}: {info['shape'][0]} x {info['shape'][1]} x {info['shape'][2]}"
          + (", georeferenced" if info["georeferenced"] else "")
          + (f", {info['nodata_pixels']} nodata LR pixels kept as nodata" if info["nodata_pixels"] else ""))
    return 0


def _convert(args) -> int:
    from lkca_jax import checkpoint, convert
    from lkca_jax.config import load_config

    if bool(args.to) == bool(args.from_):
        raise ValueError("give exactly one of --to model.pt (export a run) or --from model.pt (import one)")
    if args.to:
        _, variables, config = checkpoint.load_run(args.workdir, args.which, args.weights)
        convert.save_pt(args.to, variables, config)
        print(f"wrote {args.to}: {len(convert.flax_to_torch(variables, config))} tensors")
        return 0
    state_dict, config = convert.load_pt(args.from_)
    if args.config:
        config = load_config(args.config, args.overrides)
    elif args.overrides:
        raise ValueError("--config.<field> overrides need --config")
    if config is None:
        raise ValueError(f"{args.from_}: holds no config; name the model with --config configs/<dataset>.py:<arg>")
    try:
        variables = convert.torch_to_flax(state_dict, config)
    except ValueError as err:  # a missing, extra or misshapen tensor: name the file it came from
        raise ValueError(f"{args.from_}: {err}") from None
    checkpoint.save_run(args.workdir, config, variables, {"converted_from": str(args.from_)})
    print(f"wrote {args.workdir}: a run of {config.model.name} converted from {args.from_}")
    return 0


def _rank(args) -> int:
    from lkca_jax.figures import plot_cumulative
    from lkca_jax.lowrank import rank_report

    spectra, out = rank_report(args.workdir, args.which, args.out, args.weights)
    plot_cumulative(spectra, out / "rank.png")
    for name, sp in spectra.items():
        print(f"{name}: {sp['shape'][0]} x {sp['shape'][1]} matrix; 90% of the cumulative sum at rank "
              f"{sp['rank90']}, 95% at {sp['rank95']}, 99% at {sp['rank99']}")
    print(f"wrote {out / 'rank.json'} and {out / 'rank.png'}")
    return 0


def _pairs(text: str, n: int, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != n:
        raise ValueError(f"{what} {text!r}: expected {n} comma-separated integers")
    return values


def _compare(args) -> int:
    from lkca_jax.figures import compare_runs

    box = _pairs(args.box, 3, "--box") if args.box else None
    pixels = [_pairs(p, 2, "--pixel") for p in args.pixel] or None
    result = compare_runs(args.workdir, args.out, args.image, box, pixels, args.which, weights=args.weights)
    for p in result["panels"]:
        print(f"{p['title']}: PSNR {p['psnr']:.4f} dB, SAM {p['sam']:.4f} deg")
    print(f"box (y, x, size) {result['box']}; pixels {result['pixels']}")
    print("wrote " + " and ".join(result["files"]))
    return 0


def _lowrank(args) -> int:
    from lkca_jax.lowrank import convert_run

    err, updates = convert_run(args.workdir, args.to, args.out, args.which, args.weights)
    made = f"svd:{updates['rank']}" if updates["upsampler"] == "svd" else f"grouped:{updates['groups']}"
    note = "" if made == args.to else f" ({args.to} does not divide the upsampler's channels; the largest that does)"
    print(f"wrote {args.out}: upsampler {made}{note}, relative Frobenius error {err:.4f}")
    if args.evaluate:
        from lkca_jax.evaluation import evaluate_workdir

        quiet = lambda *a: None
        before = evaluate_workdir(args.workdir, which=args.which, echo=quiet, weights=args.weights)
        after = evaluate_workdir(args.out, echo=quiet)
        print(f"test MPSNR before fine-tuning: {after['MPSNR']:.4f} (the dense run: {before['MPSNR']:.4f})")
    return 0


def _table(args) -> int:
    from lkca_jax.atomic import atomic_write
    from lkca_jax.evaluation import runs_table

    table = runs_table(args.workdir, args.split)
    print(table, end="")
    if args.out:
        atomic_write(args.out, lambda tmp: pathlib.Path(tmp).write_text(table))
    return 0


def _export(args) -> int:
    from lkca_jax.export import export

    try:
        h, w = (int(v) for v in args.lr_size.split(","))
    except ValueError:
        raise ValueError(f"--lr_size must be H,W in LR pixels, got {args.lr_size!r}") from None
    info = export(args.workdir, args.format, (h, w), args.out, args.which, weights=args.weights, dtype=args.dtype)
    print(f"wrote {info['output']} ({info['format']}, LR {info['lr_shape']}, {info['bytes']} bytes); "
          f"max |artifact - Flax| = {info['max_abs_error']:.2e}")
    return 0


def _which(p, dtype: bool = False) -> None:
    """The checkpoint flags every command that reads a run shares (and the compute dtype)."""
    p.add_argument("--which", choices=("best", "last"), default="best",
                   help="the best-validation or the latest checkpoint")
    p.add_argument("--weights", choices=("ema", "raw"), default="ema",
                   help="the EMA weights where the run kept them (train.ema_decay > 0), or the raw ones")
    if dtype:
        p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32",
                       help="compute dtype of the forward pass (the output is float32 either way)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lkca_jax", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train a model from a config, then evaluate it on the test split")
    p.add_argument("--config", help="path/to/config.py[:scale,method] (to resume: optional, the workdir's "
                                    "config.json)")
    p.add_argument("--workdir", required=True, help="run directory: checkpoints, logs, evaluation")
    p.add_argument("--coordinator", default="", help="host:port of process 0, for multi-process training")
    p.add_argument("--num_processes", type=int, default=0, help="number of processes (multi-process training)")
    p.add_argument("--process_id", type=int, default=-1, help="this process's index (multi-process training)")
    p.set_defaults(run=_train)
    p = sub.add_parser("evaluate", help="the paper's table for a trained run (or Bicubic) on a split")
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--workdir", help="run directory (checkpoints read, results written)")
    model.add_argument("--pretrained", help=f"a model shipped with lkca_jax ({', '.join(available())}) instead "
                                            "of a run, on --config's data: the table is printed (and written "
                                            "with --out)")
    p.add_argument("--config", help="config file (optional when --workdir holds a run): its data and eval "
                                    "blocks are used with the run's model")
    p.add_argument("--split", choices=("test", "validation", "train"), default="test")
    p.add_argument("--which", choices=("best", "last"), default="best",
                   help="the best-validation or the latest checkpoint")
    p.add_argument("--save_images", action="store_true", help="write a PNG panel and a spectra plot per image")
    p.add_argument("--out", help="write the table (<split>.json, .md) and pictures here instead of the run's eval/ "
                                 "folder (with --pretrained: nowhere unless given)")
    p.add_argument("--per_image", action="store_true", help="print each image's MPSNR, SAM and ERGAS under the table")
    p.add_argument("--self_ensemble", action="store_true", help=ENSEMBLE_HELP)
    p.add_argument("--weights", choices=("ema", "raw"), default="ema",
                   help="the EMA weights where the run kept them, or the raw ones")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"),
                   help="compute dtype of the forward pass (default: the config's eval.dtype, float32)")
    p.set_defaults(run=_evaluate)
    p = sub.add_parser("count", help="parameters and MACs in the paper's convention")
    p.add_argument("--config", action="append", required=True,
                   help="configs/<dataset>.py:<scale>,<variant>; repeat for a table")
    p.add_argument("--json", action="store_true", help="print one JSON object {params, macs[, parts]}")
    p.add_argument("--parts", help="also split each model's parameters into backbone, learnable upsampler and "
                                   "reconstruction, and draw them in this PNG (the paper's Fig. 1)")
    p.set_defaults(run=_count)
    p = sub.add_parser("inspect", help="shape, dtype and value range of a hyperspectral file")
    p.add_argument("file")
    p.add_argument("--key", help="variable (.mat) or array (.npz) to read")
    p.add_argument("--json", action="store_true", help="print one JSON object {shape, dtype, min, max}")
    p.set_defaults(run=_inspect)
    p = sub.add_parser("sr", help="super-resolve a whole file with a trained run")
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--workdir", help="a training run (config.json and checkpoints)")
    model.add_argument("--pretrained", help=f"a model shipped with lkca_jax: {', '.join(available())}")
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True, help=".mat, .npy, .tif or .hdr (ENVI)")
    p.add_argument("--key", help="variable (.mat) or array (.npz) to read")
    p.add_argument("--tile", type=int, default=128, help="tile core size in LR pixels (0: whole image)")
    p.add_argument("--overlap", type=int, default=16, help="LR pixels of context on each side of a tile")
    p.add_argument("--batch", type=int, default=1, help="tiles per forward pass")
    p.add_argument("--norm", type=float, help="divide the input by this (default: as the run was trained)")
    p.add_argument("--self_ensemble", action="store_true", help=ENSEMBLE_HELP)
    _which(p, dtype=True)
    p.set_defaults(run=_sr)
    p = sub.add_parser("convert", help="weights to or from a PyTorch .pt state dict")
    p.add_argument("--workdir", required=True, help="the run to export, or the new run to create")
    p.add_argument("--to", help="write this .pt from the run")
    p.add_argument("--from", dest="from_", help="read this .pt into a new run")
    p.add_argument("--config", help="the model's config (configs/<dataset>.py:<arg>) when the .pt has none "
                                    "(e.g. a state dict saved by SSPSR's public code); --config.<field> value "
                                    "overrides follow it")
    _which(p)
    p.set_defaults(run=_convert)
    p = sub.add_parser("rank", help="singular values of trained upsamplers (the paper's Fig. 4)")
    p.add_argument("--workdir", action="extend", nargs="+", required=True,
                   help="one or more runs (or repeat the flag) for one plot of several")
    p.add_argument("--out", help="folder for rank.json and rank.png (default: the first run's rank/)")
    _which(p)
    p.set_defaults(run=_rank)
    p = sub.add_parser("compare", help="several runs side by side on one test image (the paper's Figs. 6-8), "
                                       "with spectra and per-band PSNR")
    p.add_argument("--workdir", action="extend", nargs="+", required=True,
                   help="trained runs of one dataset and scale (several, or repeat the flag)")
    p.add_argument("--out", required=True, help="folder for <image>_compare.png and <image>_spectra.png")
    p.add_argument("--image", help="a test image id (default: the first of the test split)")
    p.add_argument("--box", help="y,x,size of the enlarged region in HR pixels (default: the window of the "
                                 "ground truth with the most texture)")
    p.add_argument("--pixel", action="append", default=[],
                   help="y,x of a pixel whose spectra to plot; repeat (default: three where Bicubic errs most)")
    _which(p)
    p.set_defaults(run=_compare)
    p = sub.add_parser("lowrank", help="compress a trained dense upsampler into a new run")
    p.add_argument("action", choices=("convert",))
    p.add_argument("--workdir", required=True, help="a trained run with a dense upsampler (any method)")
    p.add_argument("--to", required=True, help="grouped:G (block-diagonal part) or svd:R (truncated SVD)")
    p.add_argument("--out", required=True, help="the new run")
    p.add_argument("--evaluate", action="store_true", help="also report test MPSNR before fine-tuning")
    _which(p)
    p.set_defaults(run=_lowrank)
    p = sub.add_parser("table", help="one table from several runs' evaluations")
    p.add_argument("--workdir", action="extend", nargs="+", required=True,
                   help="runs with eval/<split>.json, one table row each (several, or repeat the flag)")
    p.add_argument("--split", default="test", help="which eval/<split>.json (test+: the self-ensemble's)")
    p.add_argument("--out", help="also write the Markdown table here")
    p.set_defaults(run=_table)
    p = sub.add_parser("export", help="a verified StableHLO or ONNX artifact for deployment")
    p.add_argument("--workdir", required=True)
    p.add_argument("--format", required=True, choices=("stablehlo", "onnx"))
    p.add_argument("--lr_size", required=True, help="H,W of the LR input, in pixels")
    p.add_argument("--out", required=True)
    _which(p, dtype=True)
    p.set_defaults(run=_export)
    try:
        argv, overrides = split_overrides(sys.argv[1:] if argv is None else list(argv))
    except ValueError as err:
        parser.error(str(err))
    args = parser.parse_args(argv)
    args.overrides = overrides
    if overrides and not getattr(args, "config", None) and args.command != "train":
        parser.error("--config.<field> overrides need --config (count, convert --from, evaluate; train without "
                     "it applies them to the workdir's config.json)")
    previous = signal.signal(signal.SIGTERM, _terminate)  # as Ctrl-C: temporary files are removed
    formatwarning = warnings.formatwarning
    warnings.formatwarning = _one_line  # the project's own warnings as its errors: one line
    try:
        return args.run(args)
    except (ValueError, OSError) as err:  # DataError is a ValueError and names the file
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stopped: {args.command} interrupted; nothing half-written is left", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        warnings.formatwarning = formatwarning
        atomic.remove_unfinished()  # what an interrupt left before a writer's own cleanup could take over


def _one_line(message, category, filename, lineno, line=None) -> str:
    """This package's own warnings (UserWarnings raised in its modules) as one 'warning: ...' line;
    others (NumPy's, JAX's, a RuntimeWarning at one of our lines) as Python prints them."""
    if category is UserWarning and pathlib.Path(filename).resolve().is_relative_to(PACKAGE):
        return f"warning: {message}\n"
    return _FORMAT_WARNING(message, category, filename, lineno, line)


_FORMAT_WARNING = warnings.formatwarning
PACKAGE = pathlib.Path(__file__).resolve().parent


def _terminate(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    hostmem.keep_freed_memory()  # before JAX's first computation
    sys.exit(main())
