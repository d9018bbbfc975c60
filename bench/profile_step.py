"""Where one LKCA-Net train step (or forward) spends its time, by model part, from a jax.profiler
trace, with the memory traffic of each part beside its time.

    python bench/profile_step.py [--bands 102] [--scale 4] [--batch 16] [--steps 3] [--kd]
    python bench/profile_step.py --forward 128 [--lr] [--bands 128]     # batch-1 inference, 128 x 128 LR

Runs the trainer's own step (``training.assemble``: the step under ``parallel.DataParallel``, as
train.py does: forward with drop path, HLoss, backward, Adam; bench/compare.py's
``jax_train_step``, on a random batch) of LKCA-Net at the paper's size on 16 x 16 LR patches, traces ``--steps``
calls, and adds up the executed XLA ops by the
model part their metadata names (``block*/lkca/dw1``, ``upsample``, ...), forward and backward
apart. Ops outside the model (loss, optimizer) are grouped as such. ``--kd`` profiles LKCA-KD's step
instead (the LKCA-LR student, the frozen teacher's forward and the KD loss, each reported apart).
``--forward SIZE`` profiles the jitted inference of one SIZE x SIZE LR image instead (LKCA-Net, or
LKCA-LR with ``--lr``), as ``sr`` and the claim benchmark run it.

Memory traffic: each executed XLA op (a fusion, a matrix product, a copy) reads its operands and
writes its result once, so its bytes are the sizes of those arrays in the optimized HLO; a part's
GB/s is its bytes over its time. The header gives this machine's streaming bandwidth, measured
the same way (an XLA element-wise pass over 256 MB, in place); a part near it is bound by memory
traffic.
"""

from __future__ import annotations

import argparse
import collections
import functools
import glob
import gzip
import json
import re
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from compare import jax_train_step, make_config

from lkca_jax import hostmem
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


DTYPE_BYTES = {"f32": 4, "s32": 4, "u32": 4, "f16": 2, "bf16": 2, "s8": 1, "u8": 1, "pred": 1, "f64": 8, "s64": 8,
               "u64": 8}
NO_TRAFFIC = {"parameter", "constant", "bitcast", "tuple", "get-tuple-element", "after-all", "partition-id"}


def hlo_ops(text: str) -> dict:
    """{instruction: (op_name, bytes read and written)} for every instruction of an optimized HLO text
    that moves memory: its result's bytes plus its operands' (fused computations' insides excluded:
    a fusion's traffic is its own operands and result)."""
    sizes, ops, fused = {}, {}, False
    for line in text.splitlines():
        if line.startswith(("%", "ENTRY")):
            fused = line.startswith("%fused") or "fused_computation" in line.split("(")[0]
        m = re.match(r"\s*(?:ROOT )?%([\w.\-]+) = (\(.*?\)|\S+) ([\w\-]+)\(([^)]*)\)", line)
        if not m:
            continue
        name, shape, opcode, args = m.groups()
        sizes[name] = sum(DTYPE_BYTES.get(t, 4) * int(np.prod([int(d) for d in dims.split(",") if d] or [1]))
                          for t, dims in re.findall(r"(\w+)\[([\d,]*)\]", shape))
        if fused or opcode in NO_TRAFFIC:
            continue
        op_name = re.search(r'op_name="([^"]*)"', line)
        traffic = sizes[name] + sum(sizes.get(a, 0) for a in re.findall(r"%([\w.\-]+)", args))
        ops[name] = (op_name.group(1) if op_name else "", traffic)
    return ops


def stream_bandwidth(mb: int = 256) -> float:
    """GB/s of an XLA element-wise pass that reads ``mb`` MB and writes them back in place (the input
    donated, so no new pages are touched: lkca_jax/hostmem.py), the best of 5."""
    f = jax.jit(lambda v: v * 1.0001 + 1.0, donate_argnums=0)
    x = f(jnp.ones((mb * 2 ** 18,), jnp.float32))
    times = []
    for _ in range(5):
        t = time.perf_counter()
        x = jax.block_until_ready(f(x))
        times.append(time.perf_counter() - t)
    return 2 * x.nbytes / min(times) / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def profile(call, args, text: str, steps: int):
    """{part: [ms per call, bytes per call]} over ``steps`` traced calls of ``call(*args)`` (whose
    optimized HLO is ``text``); ``call`` returns ``(args for the next call, output)``."""
    ops = hlo_ops(text)
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
            for _ in range(steps):
                args, out = call(*args)
                jax.block_until_ready(out)
        (trace,) = glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True)
        events = json.load(gzip.open(trace))["traceEvents"]
    totals = collections.defaultdict(lambda: [0.0, 0.0])
    for e in events:
        if e.get("ph") == "X" and e["name"] in ops:
            op_name, traffic = ops[e["name"]]
            totals[part_of(op_name)][0] += e["dur"] / 1e3 / steps
            totals[part_of(op_name)][1] += traffic / steps
    return totals


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bands", type=int, default=102)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--depth", type=int)
    ap.add_argument("--features", type=int)
    ap.add_argument("--kd", action="store_true", help="LKCA-KD's step: the LKCA-LR student, teacher forward, KD loss")
    ap.add_argument("--forward", type=int, metavar="SIZE", help="profile batch-1 inference of a SIZE x SIZE LR image")
    ap.add_argument("--lr", action="store_true", help="with --forward: LKCA-LR (LKCA-KD at inference)")
    args = ap.parse_args()
    bandwidth = stream_bandwidth()
    if args.forward:
        c = make_config("lr" if args.lr else "net", args.bands, args.scale, args.depth, args.features)
        model = build_model(c)
        x = jax.device_put(np.random.default_rng(0).random((1, args.forward, args.forward, args.bands), np.float32))
        variables = jax.device_put(model.init(jax.random.key(0), x[:, :16, :16]))
        predict = jax.jit(lambda v, lr: model.apply(v, lr, train=False)[0])
        compiled = predict.lower(variables, x).compile()
        jax.block_until_ready(compiled(variables, x))
        wall = min(_timed(lambda: jax.block_until_ready(compiled(variables, x))) for _ in range(args.steps))
        totals = profile(lambda v, lr: ((v, lr), compiled(v, lr)), (variables, x), compiled.as_text(), args.steps)
        what = (f"{'LKCA-LR' if args.lr else 'LKCA-Net'} forward x{args.scale}, {args.bands} bands, batch 1 of "
                f"{args.forward} x {args.forward} LR; best wall clock {wall * 1e3:.0f} ms")
    else:
        c = make_config("lr" if args.kd else "net", args.bands, args.scale, args.depth, args.features)
        teacher = None
        if args.kd:
            t_model = build_model(make_config("net", args.bands, args.scale, args.depth, args.features))
            teacher = (t_model, t_model.init(jax.random.key(1), np.zeros((1, 16, 16, args.bands), np.float32)))
        rng = np.random.default_rng(0)
        lr = rng.random((args.batch, 16, 16, args.bands), np.float32)
        hr = rng.random((args.batch, 16 * args.scale, 16 * args.scale, args.bands), np.float32)
        runner, state, batch = jax_train_step(c, lr, hr, teacher)
        step = runner.compile(state, batch)  # compiled once: its HLO names the traced ops
        placed = runner.put_batch(batch)
        state, _ = step(state, placed)  # the warm-up step; the state is donated, so keep the new one
        totals = profile(functools.partial(_step, step), (state, placed), step.as_text(), args.steps)
        what = f"{'LKCA-KD' if args.kd else 'LKCA-Net'} train step x{args.scale}, {args.bands} bands, batch " \
               f"{args.batch} of 16 x 16"
    total = sum(ms for ms, _ in totals.values())
    gb = sum(b for _, b in totals.values()) / 1e9
    print(f"jax {jax.__version__} ({jax.default_backend()}); {what}; ms per call summed over executed ops "
          f"({total:.0f} ms, {gb:.2f} GB moved, {gb / total * 1e3:.1f} GB/s in all); streaming bandwidth "
          f"{bandwidth:.1f} GB/s\n")
    print("| part | ms per call | share | MB moved | GB/s |\n|---|---|---|---|---|")
    for part, (ms, b) in sorted(totals.items(), key=lambda kv: -kv[1][0]):
        print(f"| {part} | {ms:.1f} | {100 * ms / total:.0f}% | {b / 1e6:.0f} | {b / ms / 1e6:.1f} |")


def _step(step, state, batch):
    state, metrics = step(state, batch)
    return (state, batch), metrics


if __name__ == "__main__":
    hostmem.keep_freed_memory()  # as the entry points do (lkca_jax/hostmem.py)
    main()
