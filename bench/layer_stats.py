"""Per-layer activation and gradient statistics over a method's first training steps.

    python bench/layer_stats.py --config configs/sample.py:x4,vdsr --steps 0,1,5,20,60,200
    python bench/layer_stats.py --config configs/sample.py:x4,vdsr --config.model.up_init_scale 1.0  # before
    python bench/layer_stats.py --config configs/cave.py:x4,kd --config.teacher.workdir runs/cave_study/lkca_net_s0 \
        --config.model.depth 4 --config.model.features 64 --config.train.batch_size 16 --steps 0,1,5

Trains with the trainer's own step (:func:`lkca_jax.training.assemble`, the config's
optimizer, schedule and loss) on the config's data, and at each listed step prints, for every
convolution in call order: the RMS of its output, the fraction of its output channels that are
negative at every pixel of the batch (a ReLU after it passes nothing: a dead unit), its kernel's
RMS and the RMS of the kernel's gradient; then the RMS of the model's learned residual (the
features the bicubic image is added to) and the batch loss. A distilled method (``kd``) trains
against its ``teacher.workdir``, and each step also prints the global gradient norm of the
supervised loss alone beside that of the whole loss. This is how VDSR's failure to learn was found
(docs/results.md, "VDSR that learns"), and why short KD runs clip their gradients (the CAVE study).
"""

from __future__ import annotations

import argparse
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp

from lkca_jax import training
from lkca_jax.config import load_config, split_overrides
from lkca_jax.data.datasets import load_splits
from lkca_jax.data.pipeline import SplitSource, train_batches
from lkca_jax.data.spec import DataSpec
from lkca_jax.ops.conv import Conv


def norm(tree) -> float:
    return float(jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in jax.tree.leaves(tree))))


def rms(x) -> float:
    return float(jnp.sqrt(jnp.mean(jnp.square(x))))


def conv_outputs(model, variables, lr):
    """[(module path, output)] of every Conv call in order, and the model's (sr, features)."""
    seen = []

    def interceptor(next_fun, args, kwargs, context):
        y = next_fun(*args, **kwargs)
        if isinstance(context.module, Conv) and context.method_name == "__call__":
            seen.append(("/".join(context.module.path), y))
        return y

    with nn.intercept_methods(interceptor):
        out = model.apply(variables, lr, train=False)
    return seen, out


def report(step, model, state, batch, grads) -> None:
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    seen, (_, feats) = conv_outputs(model, variables, batch["lr"])
    flat_p = {"/".join(k.key for k in p[:-1]): v for p, v in jax.tree_util.tree_leaves_with_path(state.params)
              if p[-1].key == "kernel"}
    flat_g = {"/".join(k.key for k in p[:-1]): v for p, v in jax.tree_util.tree_leaves_with_path(grads)
              if p[-1].key == "kernel"}
    print(f"\nstep {step}")
    print(f"{'layer':28s} {'out RMS':>10s} {'dead':>6s} {'W RMS':>10s} {'grad RMS':>10s}")
    for path, y in seen:
        dead = float(jnp.mean(jnp.all(y <= 0, axis=(0, 1, 2))))
        print(f"{path:28s} {rms(y):10.3e} {dead:6.2f} {rms(flat_p[path]):10.3e} {rms(flat_g[path]):10.3e}")
    print(f"{'residual (features)':28s} {rms(feats):10.3e}")


def main(argv=None) -> int:
    argv, overrides = split_overrides(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True)
    p.add_argument("--steps", default="0,1,5,20,60,200", help="steps to report, comma-separated")
    args = p.parse_args(argv)
    config = load_config(args.config, overrides)
    wanted = sorted({int(s) for s in args.steps.split(",")})
    t = config.train
    splits = load_splits(DataSpec.of(config))
    source = SplitSource(splits["train"])
    copies = 8 if t.augment == "all8" else 1
    steps_per_epoch = max(len(source) * copies // t.batch_size, 1)
    total = t.num_steps or t.num_epochs * steps_per_epoch
    schedule = training.learning_rate_schedule(t, steps_per_epoch, total)
    built = training.assemble(config, schedule, "jit", jax.local_devices()[:1])
    model, runner, kd = built.model, built.runner, built.kd
    state = runner.put_state(built.state)

    def gradient(with_kd):
        return jax.jit(lambda state, batch: jax.grad(lambda p: training.loss_fn(
            model, config, p, state.batch_stats, state.teacher, batch, jax.random.key(0), kd if with_kd else None)[0])(
            state.params))

    grad_fn, supervised_fn = gradient(True), gradient(False)

    def batches():
        epoch = 0
        while True:
            for b in train_batches(source, t.batch_size, 1, epoch, t.seed, t.augment):
                yield training.as_batch(b)  # (1 device, batch, ...)
            epoch += 1

    it = batches()
    step = 0
    for placed in it:
        if step in wanted:
            batch = {k: v[0] for k, v in placed.items()}
            grads = grad_fn(state, batch)
            report(step, model, state, batch, grads)
            if kd is not None:
                print(f"gradient norm: whole loss {norm(grads):.3e}, supervised loss alone "
                      f"{norm(supervised_fn(state, batch)):.3e}")
        if step >= wanted[-1]:
            break
        state, m = runner.step(state, placed)
        if step in wanted:
            print(f"loss {float(m['loss']):.5f}  grad norm {float(m['grad_norm']):.3e}")
        step += 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
