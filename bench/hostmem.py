"""Host memory: one method's train step with glibc's heap kept, bounded or left as it is.

    python bench/hostmem.py --method essaformer --bands 128 --batch 16 --steps 3
    python bench/hostmem.py --method net --bands 128 --batch 16 --steps 15 --rounds 2
    python bench/hostmem.py --method essaformer --estimate    # XLA's estimate only, nothing run

Modes, each run in its own process (the allocator is set before JAX starts):

- ``keep``: :func:`lkca_jax.hostmem.keep_freed_memory`, as the entry points set it, never bounded
  (``LKCA_JAX_MALLOC=keep``);
- ``bounded``: the same, then :func:`lkca_jax.hostmem.bound_growth` forced after the first step (as
  the trainer calls it when that step peaked above 30 % of memory): blocks over 32 MB go back to
  ``mmap``;
- ``system``: ``LKCA_JAX_MALLOC=system``, the C library's defaults.

The step is the trainer's own (``bench/compare.py``'s ``jax_train_step``: the method's loss,
backward, Adam) on random data at 16 x 16 LR. Each row: the median and the fastest step after the
first (which compiles), the process's peak resident memory (VmHWM) and its resident memory after the
last step. ``--rounds`` repeats the modes, the order alternating. ``--estimate`` compiles the step
once and prints XLA's own estimate of its memory (``compiled.memory_analysis()``: arguments,
outputs, temporaries), without running it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

MODES = ("keep", "bounded", "system")


def _build(args):
    """The trainer's step for the method at 16 x 16 LR on random data: (runner, state, host batch)."""
    import numpy as np

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import compare

    c = compare.make_config(args.method, args.bands, args.scale)
    rng = np.random.default_rng(0)
    lr = rng.random((args.batch, 16, 16, args.bands), np.float32)
    hr = rng.random((args.batch, 16 * args.scale, 16 * args.scale, args.bands), np.float32)
    return compare.jax_train_step(c, lr, hr)


def estimate(args) -> None:
    runner, state, host = _build(args)
    mem = runner.compile(state, host).memory_analysis()
    gib = lambda n: f"{n / 2 ** 30:.2f}"  # noqa: E731
    print(f"{args.method} x{args.scale}, {args.bands} bands, batch {args.batch} of 16 x 16 LR: XLA's estimate, GiB: "
          f"arguments {gib(mem.argument_size_in_bytes)}, outputs {gib(mem.output_size_in_bytes)}, "
          f"temporaries {gib(mem.temp_size_in_bytes)}")


def worker(args) -> dict:
    from lkca_jax import hostmem  # before JAX: the arena limit reaches only threads started later

    kept = hostmem.keep_freed_memory()
    import jax

    runner, state, host = _build(args)
    times, note = [], ""
    for i in range(args.steps + 1):
        t = time.perf_counter()
        state, metrics = runner.step(state, host)
        jax.block_until_ready(metrics["loss"])
        times.append(time.perf_counter() - t)
        if i == 0 and args.mode == "bounded":
            note = hostmem.bound_growth(fraction=0.0)
    return {"kept": kept, "bounded": bool(note), "first_s": times[0], "median_s": statistics.median(times[1:]),
            "min_s": min(times[1:]), "peak_gib": hostmem.proc_kib("/proc/self/status", "VmHWM") / 2 ** 20,
            "rss_gib": hostmem.proc_kib("/proc/self/status", "VmRSS") / 2 ** 20}


def run(args, mode: str) -> dict:
    env = {**os.environ, "LKCA_JAX_MALLOC": {"keep": "keep", "bounded": "", "system": "system"}[mode]}
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", mode, "--method", args.method,
           *(f"--{k}={getattr(args, k)}" for k in ("bands", "scale", "batch", "steps"))]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:  # killed out of memory, say: the row says so
        return {"error": f"exit {out.returncode}: {(out.stderr.strip().splitlines() or [''])[-1][:120]}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--method", default="net", help="a model of configs/: net, lr, kd, vdsr, sspsr, msdformer, ...")
    ap.add_argument("--bands", type=int, default=128)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5, help="timed steps after the first")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--estimate", action="store_true", help="print XLA's memory estimate of the step only")
    ap.add_argument("--worker", choices=MODES, dest="mode", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.estimate:
        estimate(args)
        return
    if args.mode:
        print(json.dumps(worker(args)))
        return
    modes = [m.strip() for m in args.modes.split(",")]
    if any(m not in MODES for m in modes):
        ap.error(f"--modes: each of {', '.join(MODES)}")
    print(f"{args.method} x{args.scale}, {args.bands} bands, batch {args.batch} of 16 x 16 LR, "
          f"{args.steps} timed steps")
    print("\n| round | mode | step median s | step min s | first step s | peak RSS GiB | RSS after GiB |\n"
          "|---|---|---|---|---|---|---|")
    for r in range(args.rounds):
        for mode in (modes if r % 2 == 0 else modes[::-1]):
            row = run(args, mode)
            if "error" in row:
                print(f"| {r + 1} | {mode} | {row['error']} | | | | |", flush=True)
            else:
                print(f"| {r + 1} | {mode} | {row['median_s']:.2f} | {row['min_s']:.2f} | {row['first_s']:.1f} | "
                      f"{row['peak_gib']:.2f} | {row['rss_gib']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
