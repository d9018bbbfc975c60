"""Where one LKCA-Net train step spends its time, by model part, from a jax.profiler trace.

    python bench/profile_step.py [--bands 102] [--scale 4] [--batch 16] [--steps 3] [--kd]

Runs the trainer's own step (``training.make_train_step`` under ``parallel.DataParallel``, as
train.py does: forward with drop path, HLoss, backward, Adam; bench/compare.py's
``jax_train_step``) of LKCA-Net at the paper's size on 16 x 16 LR patches, traces ``--steps``
calls, and adds up the executed XLA ops by the
model part their metadata names (``block*/lkca/dw1``, ``upsample``, ...), forward and backward
apart. Ops outside the model (loss, optimizer) are grouped as such. ``--kd`` profiles LKCA-KD's step
instead (the LKCA-LR student, the frozen teacher's forward and the KD loss, each reported apart).
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import re
import tempfile

import jax
import numpy as np
from compare import jax_train_step, make_config

from lkca_jax.models import build_model


def part_of(op_name: str) -> str:
    """'transpose(jvp(LKCANet))/LKCANet.backbone/block3/lkca/dw1/...' -> 'block lkca/dw1 backward'."""
    direction = "backward" if "transpose(" in op_name else "forward"
    if "(teacher)" in op_name:
        return "teacher forward"
    if "(kd_loss)" in op_name:
        return f"kd loss {direction}"
    block = re.search(r"/block\d+/(\w+)(?:/(\w+))?", op_name)
    if block:
        name = block.group(1) + (f"/{block.group(2)}" if block.group(1) == "lkca" and block.group(2) else "")
        return f"blocks: {name} {direction}"
    for part in ("upsample", "head"):
        if f"LKCANet.{part}" in op_name or f"/{part}/" in op_name:
            return f"{part} {direction}"
    return f"loss {direction}" if "jvp(" in op_name else "optimizer, other"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bands", type=int, default=102)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--depth", type=int)
    ap.add_argument("--features", type=int)
    ap.add_argument("--kd", action="store_true", help="LKCA-KD's step: the LKCA-LR student, teacher forward, KD loss")
    args = ap.parse_args()
    c = make_config("lr" if args.kd else "net", args.bands, args.scale, args)
    teacher = None
    if args.kd:
        t_model = build_model(make_config("net", args.bands, args.scale, args))
        teacher = (t_model, t_model.init(jax.random.key(1), np.zeros((1, 16, 16, args.bands), np.float32)))
    runner, state, batch = jax_train_step(c, args.batch, teacher)
    step = runner.compile(state, batch)  # compiled once: its HLO names the traced ops
    names = dict(re.findall(r'%([\w.\-]+) = .*?op_name="([^"]*)"', step.as_text()))
    placed = runner.put_batch(batch)
    state, _ = step(state, placed)  # the warm-up step; the state is donated, so keep the new one
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
            for _ in range(args.steps):
                state, metrics = step(state, placed)
                jax.block_until_ready(metrics)
        (trace,) = glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True)
        events = json.load(gzip.open(trace))["traceEvents"]
    totals = collections.Counter()
    for e in events:
        if e.get("ph") == "X" and e["name"] in names:
            totals[part_of(names[e["name"]])] += e["dur"] / 1e3 / args.steps
    total = sum(totals.values())
    name = "LKCA-KD" if args.kd else "LKCA-Net"
    print(f"jax {jax.__version__} ({jax.default_backend()}); {name} x{args.scale}, {args.bands} bands, batch "
          f"{args.batch} of 16 x 16; ms per step summed over executed ops ({total:.0f} ms in all)\n")
    print("| part | ms per step | share |\n|---|---|---|")
    for part, ms in totals.most_common():
        print(f"| {part} | {ms:.1f} | {100 * ms / total:.0f}% |")


if __name__ == "__main__":
    main()
