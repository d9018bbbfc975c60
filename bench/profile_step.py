"""Where one LKCA-Net train step spends its time, by model part, from a jax.profiler trace.

    python bench/profile_step.py [--bands 102] [--scale 4] [--batch 16] [--steps 3]

Runs the jitted step (forward, HLoss, backward, Adam) of configs/pavia.py:x4,net at the paper's
size on 16 x 16 LR patches, traces ``--steps`` calls, and adds up the executed XLA ops by the
model part their metadata names (``block*/lkca/dw1``, ``upsample``, ...), forward and backward
apart. Ops outside the model (loss, optimizer) are grouped as such.
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
import jax.numpy as jnp
import numpy as np
import optax

from lkca_jax import losses
from lkca_jax.config import load_config
from lkca_jax.models import build_model


def part_of(op_name: str) -> str:
    """'transpose(jvp(LKCANet))/LKCANet.backbone/block3/lkca/dw1/...' -> 'block lkca/dw1 backward'."""
    direction = "backward" if "transpose(" in op_name else "forward"
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
    args = ap.parse_args()
    c = load_config(f"configs/pavia.py:x{args.scale},net")
    c.model.bands, c.model.drop_path_rate = args.bands, 0.0
    model = build_model(c)
    rng = np.random.default_rng(0)
    lr = jnp.asarray(rng.random((args.batch, 16, 16, args.bands), np.float32))
    hr = jnp.asarray(rng.random((args.batch, 16 * args.scale, 16 * args.scale, args.bands), np.float32))
    variables = model.init(jax.random.key(0), lr[:1])
    tx = optax.adam(1e-4)
    state = (variables["params"], variables["batch_stats"], tx.init(variables["params"]))

    @jax.jit
    def step(state, lr, hr):
        params, stats, opt = state

        def loss_fn(params):
            (sr, _), upd = model.apply({"params": params, "batch_stats": stats}, lr, train=True,
                                       mutable=["batch_stats"])
            return losses.supervised(sr, hr)["loss"], upd["batch_stats"]

        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt = tx.update(grads, opt, params)
        return (optax.apply_updates(params, updates), stats, opt), loss

    jax.block_until_ready(step(state, lr, hr))
    names = dict(re.findall(r'%([\w.\-]+) = .*?op_name="([^"]*)"', step.lower(state, lr, hr).compile().as_text()))
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
            for _ in range(args.steps):
                jax.block_until_ready(step(state, lr, hr))
        (trace,) = glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True)
        events = json.load(gzip.open(trace))["traceEvents"]
    totals = collections.Counter()
    for e in events:
        if e.get("ph") == "X" and e["name"] in names:
            totals[part_of(names[e["name"]])] += e["dur"] / 1e3 / args.steps
    total = sum(totals.values())
    print(f"jax {jax.__version__} ({jax.default_backend()}); LKCA-Net x{args.scale}, {args.bands} bands, batch "
          f"{args.batch} of 16 x 16; ms per step summed over executed ops ({total:.0f} ms in all)\n")
    print("| part | ms per step | share |\n|---|---|---|")
    for part, ms in totals.most_common():
        print(f"| {part} | {ms:.1f} | {100 * ms / total:.0f}% |")


if __name__ == "__main__":
    main()
