"""Input-pipeline throughput (patches/s) against what the training step consumes.

    python bench/pipeline.py                       # the embedded sample, x4, batch 16
    python bench/pipeline.py --config configs/cave.py:x4 --batches 200
    python bench/pipeline.py --config configs/cave.py:x4 --tfds_dir ~/tensorflow_datasets   # the prepared cave/x4

Both measured in one run on this machine: the pipeline (epoch order, dihedral
copies, stacking, background prefetch) with nothing consuming it, then the
jitted LKCA-Net train step fed from it.
"""

import argparse
import itertools
import time

import jax
import numpy as np

from lkca_jax import training
from lkca_jax.config import load_config
from lkca_jax.data.datasets import load_splits
from lkca_jax.data.pipeline import SplitSource, prefetch, train_batches
from lkca_jax.data.spec import DataSpec


def epochs(source, per_device, devices, augment):
    for epoch in itertools.count():
        yield from train_batches(source, per_device, devices, epoch, augment=augment)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/sample.py:x4,net")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--batches", type=int, default=500, help="batches timed for the pipeline alone")
    ap.add_argument("--steps", type=int, default=30, help="train steps timed")
    ap.add_argument("--tfds_dir", help="read the prepared TFDS dataset here (config.data.source tfds)")
    ap.add_argument("--depth", type=int, help="LKCA blocks of the timed train step (default: the config's)")
    ap.add_argument("--features", type=int, help="its width (default: the config's)")
    args = ap.parse_args()
    c = load_config(args.config)
    c.train.batch_size = args.batch
    if args.tfds_dir:
        c.data.update(source="tfds", tfds_dir=args.tfds_dir)
    c.model.update({k: v for k, v in (("depth", args.depth), ("features", args.features)) if v})
    source = SplitSource(load_splits(DataSpec.of(c), ("train",))["train"])
    devices = jax.local_device_count()
    per_device = args.batch // devices

    it = prefetch(epochs(source, per_device, devices, c.train.augment), c.train.prefetch)
    next(it)
    start = time.perf_counter()
    for _ in range(args.batches):
        next(it)
    pipe = args.batches * args.batch / (time.perf_counter() - start)

    schedule = training.optax.constant_schedule(c.train.learning_rate)
    built = training.assemble(c, schedule)
    runner = built.runner
    state = runner.put_state(built.state)
    batches = prefetch(epochs(source, per_device, devices, c.train.augment), c.train.prefetch)
    state, m = runner.step(state, training.as_batch(next(batches)))  # compile
    jax.block_until_ready(m)
    start = time.perf_counter()
    for _ in range(args.steps):
        state, m = runner.step(state, training.as_batch(next(batches)))
    jax.block_until_ready(m)
    step = args.steps * args.batch / (time.perf_counter() - start)
    lr_shape = source[0]["lr"].shape
    print(f"| {args.config} ({c.data.source}) | {len(source)} patches, LR {lr_shape} | {args.batch} | {pipe:,.0f} | "
          f"{step:,.1f} | {pipe / step:,.0f}x |")
    print(f"# pipeline {pipe:,.0f} patches/s alone; train step consumes {step:,.1f} patches/s "
          f"({np.round(pipe / step, 1)}x headroom); jax {jax.__version__}, {devices} device(s)")


if __name__ == "__main__":
    main()
