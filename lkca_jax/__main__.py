"""Command line: ``python -m lkca_jax <command> ...``.

    count    --config=configs/chikusei.py:x4,net [--config=...] [--json]
        Parameters and MACs in the paper's convention (one 16 x 16 LR input).
    inspect  FILE [--key K] [--json]
        Shape, data type and value range of a cube (.mat, .npy/.npz, .tif, ENVI, PNG folder).
    sr       --workdir RUN --input IN --output OUT [--key K] [--tile T] [--overlap O] [--batch B]
        Super-resolve a whole scene with a trained run, in overlapping cross-faded tiles; OUT's
        suffix picks the format (.mat, .npy, .tif, .hdr for ENVI).
    convert  --workdir RUN --to model.pt  |  --from model.pt --workdir NEW_RUN [--config C]
        Weights to and from the PyTorch reference (lkca_jax/torch_ref.py): a .pt state dict.
    export   --workdir RUN --format stablehlo|onnx --lr_size H,W --out FILE
        A deployment artifact (jax.export StableHLO, or ONNX through the PyTorch reference),
        verified against the Flax model before it is written.
"""

from __future__ import annotations

import argparse
import json
import sys


def _count(args) -> int:
    from lkca_jax.accounting import count_config, human
    from lkca_jax.config import VARIANT_NAMES, load_config

    if args.json and len(args.config) != 1:
        raise ValueError("--json takes exactly one --config")
    rows = []
    for spec in args.config:
        config = load_config(spec)
        rows.append((config, count_config(config)))
    if args.json:
        print(json.dumps(rows[0][1]))
        return 0
    print("| Dataset | Ratio | Method | Param | Flops (MACs) |")
    print("|---|---|---|---|---|")
    for config, n in rows:
        params = human(n["params"], "M") if n["params"] else "-"
        macs = human(n["macs"], "G") if n["macs"] else "-"
        print(f"| {config.dataset} | x{config.model.scale} | {VARIANT_NAMES.get(config.variant, config.variant)} "
              f"| {params} | {macs} |")
    return 0


def _inspect(args) -> int:
    import numpy as np

    from lkca_jax.data.io import read_cube

    cube = read_cube(args.file, args.key)
    data = cube.data
    finite = data[np.isfinite(data)]
    info = {"shape": list(data.shape), "dtype": cube.source_dtype,
            "min": float(finite.min()) if finite.size else None, "max": float(finite.max()) if finite.size else None}
    if cube.nonfinite:
        print(f"warning: {args.file}: {cube.nonfinite} NaN or Inf value(s) (training refuses this file)",
              file=sys.stderr)
    if args.json:
        print(json.dumps(info))
    else:
        h, w, c = data.shape
        print(f"{args.file}: {h} x {w} pixels, {c} bands, {cube.source_dtype}, "
              f"values {info['min']:g} .. {info['max']:g}" + ("" if cube.wavelengths is None else
              f", wavelengths {cube.wavelengths[0]:g} .. {cube.wavelengths[-1]:g}"))
    return 0


def _sr(args) -> int:
    from lkca_jax.inference import run_sr

    info = run_sr(args.workdir, args.input, args.output, args.key, args.tile, args.overlap, args.batch, args.which)
    print(f"wrote {info['output']}: {info['shape'][0]} x {info['shape'][1]} x {info['shape'][2]}")
    return 0


def _convert(args) -> int:
    from lkca_jax import checkpoint, convert
    from lkca_jax.config import load_config

    if bool(args.to) == bool(args.from_):
        raise ValueError("give exactly one of --to model.pt (export a run) or --from model.pt (import one)")
    if args.to:
        config, variables, _ = checkpoint.restore_variables(args.workdir, args.which)
        convert.save_pt(args.to, variables, config)
        print(f"wrote {args.to}: {len(convert.flax_to_torch(variables))} tensors")
        return 0
    state_dict, config = convert.load_pt(args.from_)
    if args.config:
        config = load_config(args.config)
    if config is None:
        raise ValueError(f"{args.from_}: holds no config; name the model with --config configs/<dataset>.py:<arg>")
    variables = convert.torch_to_flax(state_dict, config)
    checkpoint.save_config(args.workdir, config)
    ckpts = checkpoint.Checkpoints(args.workdir)
    ckpts.save(0, variables, meta={"converted_from": str(args.from_)})
    ckpts.wait()
    ckpts.close()
    print(f"wrote {args.workdir}: a run of {config.model.name} converted from {args.from_}")
    return 0


def _export(args) -> int:
    from lkca_jax.export import export

    try:
        h, w = (int(v) for v in args.lr_size.split(","))
    except ValueError:
        raise ValueError(f"--lr_size must be H,W in LR pixels, got {args.lr_size!r}") from None
    info = export(args.workdir, args.format, (h, w), args.out, args.which)
    print(f"wrote {info['output']} ({info['format']}, LR {info['lr_shape']}, {info['bytes']} bytes); "
          f"max |artifact - Flax| = {info['max_abs_error']:.2e}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lkca_jax", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("count", help="parameters and MACs in the paper's convention")
    p.add_argument("--config", action="append", required=True,
                   help="configs/<dataset>.py:<scale>,<variant>; repeat for a table")
    p.add_argument("--json", action="store_true", help="print one JSON object {params, macs}")
    p.set_defaults(run=_count)
    p = sub.add_parser("inspect", help="shape, dtype and value range of a hyperspectral file")
    p.add_argument("file")
    p.add_argument("--key", help="variable (.mat) or array (.npz) to read")
    p.add_argument("--json", action="store_true", help="print one JSON object {shape, dtype, min, max}")
    p.set_defaults(run=_inspect)
    p = sub.add_parser("sr", help="super-resolve a whole file with a trained run")
    p.add_argument("--workdir", required=True, help="a training run (config.json and checkpoints)")
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True, help=".mat, .npy, .tif or .hdr (ENVI)")
    p.add_argument("--key", help="variable (.mat) or array (.npz) to read")
    p.add_argument("--tile", type=int, default=128, help="tile core size in LR pixels (0: whole image)")
    p.add_argument("--overlap", type=int, default=16, help="LR pixels of context on each side of a tile")
    p.add_argument("--batch", type=int, default=1, help="tiles per forward pass")
    p.add_argument("--which", choices=("best", "last"), default="best")
    p.set_defaults(run=_sr)
    p = sub.add_parser("convert", help="weights to or from a PyTorch .pt state dict")
    p.add_argument("--workdir", required=True, help="the run to export, or the new run to create")
    p.add_argument("--to", help="write this .pt from the run")
    p.add_argument("--from", dest="from_", help="read this .pt into a new run")
    p.add_argument("--config", help="the model's config (configs/<dataset>.py:<arg>) when the .pt has none")
    p.add_argument("--which", choices=("best", "last"), default="best")
    p.set_defaults(run=_convert)
    p = sub.add_parser("export", help="a verified StableHLO or ONNX artifact for deployment")
    p.add_argument("--workdir", required=True)
    p.add_argument("--format", required=True, choices=("stablehlo", "onnx"))
    p.add_argument("--lr_size", required=True, help="H,W of the LR input, in pixels")
    p.add_argument("--out", required=True)
    p.add_argument("--which", choices=("best", "last"), default="best")
    p.set_defaults(run=_export)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError) as err:  # DataError is a ValueError and names the file
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
