"""Command line: ``python -m lkca_jax <command> ...``.

    count    --config=configs/chikusei.py:x4,net [--config=...] [--json]
        Parameters and MACs in the paper's convention (one 16 x 16 LR input).
    inspect  FILE [--key K] [--json]
        Shape, data type and value range of a cube (.mat, .npy/.npz, .tif, ENVI, PNG folder).
    sr       --workdir RUN --input IN --output OUT [--key K] [--tile T] [--overlap O] [--batch B]
        Super-resolve a whole scene with a trained run, in overlapping cross-faded tiles; OUT's
        suffix picks the format (.mat, .npy, .tif, .hdr for ENVI).
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
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError) as err:  # DataError is a ValueError and names the file
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
