"""What each of the paper's training runs costs: device memory and step time, for every method.

    python bench/cost.py                                    # everything below, float32 and bfloat16
    python bench/cost.py --methods net,kd --datasets pavia --scales 4 --dtypes bfloat16 --steps 5
    python bench/cost.py --memory-only                      # compile and read the memory, no timing
    python bench/cost.py --estimate-only                    # the H100 estimate alone (no compile: seconds)

For each method at the paper's width (``configs/<dataset>.py:x<scale>,<method>`` as shipped: LKCA 16 x
128, SSPSR 256, MSDformer 240, ESSAformer 256), the paper's training shape (batch 32 of 16 x 16 LR
patches: 64 x 64 HR at x4, 128 x 128 at x8) and each dataset's band count (Chikusei 128, Houston 48,
Pavia 102), it builds the trainer's own step (:func:`lkca_jax.training.assemble`, under
:class:`lkca_jax.parallel.DataParallel` on one device, as ``train.py`` runs it: forward with drop
path, the method's loss, backward, the optimizer; LKCA-KD with its frozen LKCA-Net teacher's forward
and the KD loss) in ``--dtypes``, compiles it and reads XLA's memory analysis of the compiled step
(arguments + outputs + temporaries - donated aliases: what one device holds at the peak), then times
``--steps`` steps after a warm-up.

The 300-epoch time is 300 x steps per epoch x the step time, with steps per epoch = training patches
x 8 dihedral copies / 32; the patch counts come from the project's own protocol
(:func:`lkca_jax.data.protocols.top_strip`) on each scene's size: Chikusei cropped to 2304 x 2048,
Pavia Centre 1096 x 715, and Houston 2018 taken as the 601 x 2384 scene of the 2018 Data Fusion
Contest (an assumption: ``--scene houston=H,W`` for another). Rows print as they finish (progress on
stderr); ``--out FILE.json`` keeps them.

The last column is an **estimate** for one H100-class GPU, not a measurement, from the H100 numbers in
docs/benchmarks.md (jax 0.11.2, 2026-11): a step takes the longer of (a) the LKCA-Net train step measured
there (batch 32, x4, 102 bands: 515 patches/s, 62 ms; LKCA-KD 69 ms), a floor of small kernels that
the H100 tables show barely moving with bands or scale, and (b) 3 x the forward multiply-adds of the batch
(forward + backward) at the rate VDSR's dense 3x3 convs reached there (31.4 GMACs in 2.3 ms: 13.7 TMAC/s
in float32 (TF32), 28.6 in bfloat16 at 1.1 ms).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import sys
import time

import jax
import numpy as np

from lkca_jax import hostmem, training
from lkca_jax.accounting import count
from lkca_jax.config import load_config
from lkca_jax.data.protocols import top_strip
from lkca_jax.data.registry import DATASETS
from lkca_jax.methods import METHODS
from lkca_jax.models import build_model

ROOT = pathlib.Path(__file__).resolve().parents[1]
TRAINABLE = ("net", "lr", "kd", "vdsr", "fcnn3d", "sspsr", "msdformer", "essaformer")  # Bicubic: nothing to train
SCENES = {"chikusei": (2304, 2048), "houston": (601, 2384), "pavia": (1096, 715)}
EPOCHS, BATCH, LR_SIDE = 300, 32, 16
# The H100 estimate's constants (docs/benchmarks.md, "GPU: XLA vs PyTorch on one H100")
H100_FLOOR_S = {"kd": 0.069}  # measured train steps; every other method: LKCA-Net's
H100_FLOOR_DEFAULT_S = 0.062
H100_MACS_PER_S = {"float32": 31.4e9 / 2.3e-3, "bfloat16": 31.4e9 / 1.1e-3}


def steps_per_epoch(dataset: str, scale: int, scene: tuple[int, int]) -> int:
    entry = DATASETS[dataset]
    split = top_strip(dataset, *scene, scale, entry.n_test, entry.test_size)
    return len(split["train"]) * 8 // BATCH


def build_step(dataset: str, scale: int, method: str, dtype: str):
    """(runner, placed state, host batch) of the trainer's step at the paper's settings."""
    c = load_config(f"{ROOT / 'configs' / dataset}.py:x{scale},{method}")
    c.train.update(batch_size=BATCH, compute_dtype=dtype)
    schedule = training.learning_rate_schedule(c.train, steps_per_epoch=100, total_steps=10_000)
    teacher = None
    if METHODS[method].teacher:  # the teacher: LKCA-Net of the same bands and scale (random weights)
        tc = load_config(f"{ROOT / 'configs' / dataset}.py:x{scale},net")
        t_model = build_model(tc)
        teacher = (t_model, training.init_variables(t_model, tc, jax.random.key(1)))
    built = training.assemble(c, schedule, "pmap", jax.local_devices()[:1], teacher)
    runner = built.runner
    state = runner.put_state(built.state)
    rng = np.random.default_rng(0)
    bands, hr = c.model.bands, LR_SIDE * scale
    batch = {"lr": rng.random((1, BATCH, LR_SIDE, LR_SIDE, bands), np.float32),
             "hr": rng.random((1, BATCH, hr, hr, bands), np.float32),
             "mask": np.ones((1, BATCH), np.float32), "epoch": np.zeros((1, BATCH), np.float32)}
    return runner, state, batch, c


def peak_bytes(compiled) -> int | None:
    m = compiled.memory_analysis()
    if m is None:
        return None
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes)


def gpu_step_estimate(dataset: str, scale: int, method: str, dtype: str) -> float:
    """The H100 estimate of one step (see the module doc), seconds."""
    config = lambda m: load_config(f"{ROOT / 'configs' / dataset}.py:x{scale},{m}")
    c = config(method)
    macs = 3 * BATCH * count(build_model(c), c.model.bands, LR_SIDE)["macs"]
    if METHODS[method].teacher:  # the teacher's forward too (no backward)
        macs += BATCH * count(build_model(config("net")), c.model.bands, LR_SIDE)["macs"]
    rate = H100_MACS_PER_S.get(dtype, H100_MACS_PER_S["bfloat16"])  # float16: tensor cores as bfloat16's
    return max(H100_FLOOR_S.get(method, H100_FLOOR_DEFAULT_S), macs / rate)


def measure(dataset, scale, method, dtype, steps: int, memory_only: bool, max_gib: float,
            estimate_only: bool = False) -> dict:
    row = {"dataset": dataset, "scale": scale, "method": METHODS[method].display,
           "bands": DATASETS[dataset].bands, "dtype": dtype, "peak_gib": None, "compile_s": None, "step_s": None,
           "gpu_step_est_s": gpu_step_estimate(dataset, scale, method, dtype)}
    if estimate_only:
        return row
    began = time.perf_counter()
    runner, state, batch, c = build_step(dataset, scale, method, dtype)
    compiled = runner.compile(state, batch)
    peak = peak_bytes(compiled)
    row["peak_gib"] = None if peak is None else peak / 2 ** 30
    if not memory_only and row["peak_gib"] is not None and row["peak_gib"] > max_gib:
        row["note"] = f"not run: over --max-gib {max_gib:g}"
    elif not memory_only:
        state, m = runner.step(state, batch)  # compile (the jit cache) and warm up
        jax.block_until_ready(m)
        row["compile_s"] = time.perf_counter() - began
        times = []
        for _ in range(steps):
            t = time.perf_counter()
            state, m = runner.step(state, batch)
            jax.block_until_ready(m)
            times.append(time.perf_counter() - t)
        row["step_s"] = float(np.median(times))
    return row


def hours(step_s, row, scenes) -> float | None:
    if step_s is None:
        return None
    return EPOCHS * steps_per_epoch(row["dataset"], row["scale"], scenes[row["dataset"]]) * step_s / 3600


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default=",".join(TRAINABLE))
    ap.add_argument("--datasets", default="chikusei,houston,pavia")
    ap.add_argument("--scales", default="4,8")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--steps", type=int, default=3, help="timed steps (the median is reported)")
    ap.add_argument("--memory-only", action="store_true", help="compile and read the memory analysis only")
    ap.add_argument("--estimate-only", action="store_true", help="the H100 estimate only (no compile)")
    ap.add_argument("--max-gib", type=float, default=12.0,
                    help="compile but do not run steps whose peak memory exceeds this (this machine's RAM)")
    ap.add_argument("--scene", action="append", default=[], help="DATASET=H,W: a scene size (patch counts)")
    ap.add_argument("--out", help="append the rows to this JSON-lines file")
    args = ap.parse_args()
    scenes = dict(SCENES)
    for s in args.scene:
        name, _, hw = s.partition("=")
        scenes[name] = tuple(int(v) for v in hw.split(","))
    grid = [(d, int(s), m, t) for d in args.datasets.split(",") for s in args.scales.split(",")
            for m in args.methods.split(",") for t in args.dtypes.split(",")]
    dev = jax.devices()[0]
    print(f"device: {dev.device_kind} ({dev.platform}, {jax.local_device_count()} device(s)), "
          f"{platform.processor() or platform.machine()}; jax {jax.__version__}; batch {BATCH} of "
          f"{LR_SIDE} x {LR_SIDE} LR; {EPOCHS} epochs")
    for d in sorted({g[0] for g in grid}):
        print(f"{d}: scene {scenes[d][0]} x {scenes[d][1]}, steps per epoch "
              + ", ".join(f"x{s}: {steps_per_epoch(d, s, scenes[d])}" for s in sorted({g[1] for g in grid})))
    print("\n| dataset | scale | method | bands | dtype | peak memory (GiB) | compile (s) | step (s) | "
          "300 epochs (h) | H100 estimate: 300 epochs (h) |\n|---|---|---|---|---|---|---|---|---|---|")
    began = time.perf_counter()
    for i, (d, s, m, t) in enumerate(grid):
        row = measure(d, s, m, t, args.steps, args.memory_only, args.max_gib, args.estimate_only)
        row["epochs_h"] = hours(row["step_s"], row, scenes)
        row["gpu_epochs_est_h"] = hours(row["gpu_step_est_s"], row, scenes)
        fmt = lambda v, f: "-" if v is None else format(v, f)
        note = f" {row['note']}" if "note" in row else ""
        print(f"| {d} | x{s} | {row['method']} | {row['bands']} | {t} | {fmt(row['peak_gib'], '.2f')} | "
              f"{fmt(row['compile_s'], '.0f')} | {fmt(row['step_s'], '.3f')} | {fmt(row['epochs_h'], '.1f')} | "
              f"{fmt(row['gpu_epochs_est_h'], '.1f')} |{note}",
              flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
        done = time.perf_counter() - began
        print(f"[{i + 1}/{len(grid)}] {done:.0f} s, ETA {done / (i + 1) * (len(grid) - i - 1):.0f} s",
              file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    hostmem.keep_freed_memory()
    sys.exit(main())
