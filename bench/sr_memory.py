"""Full-scene SR of a Chikusei-sized scene: time and peak memory of ``python -m lkca_jax sr``.

    python bench/sr_memory.py --scratch /tmp/srbench            # 2304 x 2048 x 128 at x4, .npy out
    python bench/sr_memory.py --scratch /tmp/srbench --size 256,256 --output out.tif

Makes (once) a random float32 scene in ``--scratch`` and an LKCA-Net x4 / 128-band run with
initialised weights (time and memory do not depend on training), then runs the ``sr`` command
in a child process and reads the child's peak resident memory (``ru_maxrss``). The output (38.6
GB for the full size: 9216 x 8192 x 128 float32) is written block by block of rows and deleted
afterwards; it needs that much free disk.
"""

import argparse
import json
import pathlib
import platform
import resource
import subprocess
import sys
import time

import numpy as np


def make_run(workdir: pathlib.Path) -> None:
    import jax

    from lkca_jax import checkpoint, training
    from lkca_jax.config import load_config

    c = load_config("configs/chikusei.py:x4,net")
    model = training.build_model(c)
    variables = training.init_variables(model, c, jax.random.key(0))
    checkpoint.save_run(workdir, c, jax.device_get(dict(variables)), {"note": "initialised, for benchmarking"})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scratch", required=True, help="folder for the scene, the run and the output")
    ap.add_argument("--size", default="2304,2048", help="input H,W (LR pixels)")
    ap.add_argument("--output", default="out.npy", help="output file name (its suffix picks the format)")
    ap.add_argument("--tile", type=int, default=128)
    ap.add_argument("--overlap", type=int, default=16)
    ap.add_argument("--keep", action="store_true", help="keep the output")
    args = ap.parse_args()
    scratch = pathlib.Path(args.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    h, w = (int(v) for v in args.size.split(","))
    scene = scratch / f"scene_{h}x{w}.npy"
    if not scene.exists():
        out = np.lib.format.open_memmap(scene, "w+", np.float32, (h, w, 128))
        rng = np.random.default_rng(0)
        for r in range(0, h, 256):
            out[r:r + 256] = rng.random((min(256, h - r), w, 128), np.float32)
        out.flush()
        del out
    run = scratch / "run"
    if not (run / "config.json").exists():
        make_run(run)
    output = scratch / args.output
    cmd = [sys.executable, "-m", "lkca_jax", "sr", "--workdir", str(run), "--input", str(scene), "--output",
           str(output), "--tile", str(args.tile), "--overlap", str(args.overlap)]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    seconds = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2 ** 20  # KiB on Linux
    size_gb = output.stat().st_size / 1e9
    if not args.keep:
        output.unlink()
    print(json.dumps({"input": [h, w, 128], "scale": 4, "output": args.output, "output_gb": round(size_gb, 2),
                      "tile": args.tile, "overlap": args.overlap, "seconds": round(seconds, 1),
                      "peak_rss_gib": round(peak_gb, 2), "cpu": platform.processor() or platform.machine()}))


if __name__ == "__main__":
    main()
