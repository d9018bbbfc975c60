"""Training: the train state, the optimizer, the data-parallel step and the loop.

``train_and_evaluate(config, workdir)`` trains the config's model on its
dataset, validates every ``train.eval_every_steps``, checkpoints (the last few
and the best by validation MPSNR), resumes from the workdir if it holds a
checkpoint, logs to ``metrics.jsonl`` and TensorBoard event files, and finally
evaluates the test split into ``eval/test.{json,md}``. A non-finite loss stops
the run naming the step; checkpoints are only ever written from finite states.
"""

from __future__ import annotations

import json
import math
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from lkca_jax import checkpoint, evaluation, losses, parallel
from lkca_jax.data.datasets import load_splits
from lkca_jax.data.pipeline import SplitSource, prefetch, train_batches
from lkca_jax.methods import method_of
from lkca_jax.models import build_model


class TrainState(train_state.TrainState):
    """Student params and optimizer (from flax), BatchNorm statistics, the base RNG key (raw
    uint32 data), and, for distillation, the frozen teacher's variables (never optimised or saved)."""

    batch_stats: Any = None
    rng: Any = None
    teacher: Any = None


class NonFiniteLoss(RuntimeError):
    pass


def learning_rate_schedule(t, steps_per_epoch: int, total_steps: int) -> optax.Schedule:
    decay_steps = max(total_steps - t.warmup_steps, 1)
    if t.schedule == "cosine":
        main = optax.cosine_decay_schedule(t.learning_rate, decay_steps, alpha=t.min_learning_rate / t.learning_rate)
    elif t.schedule == "step":
        every = max(t.step_decay_epochs * steps_per_epoch, 1)
        main = optax.exponential_decay(t.learning_rate, every, t.step_decay_rate, staircase=True,
                                       end_value=t.min_learning_rate)
    elif t.schedule == "constant":
        main = optax.constant_schedule(t.learning_rate)
    else:
        raise ValueError(f"train.schedule must be cosine | step | constant, got {t.schedule!r}")
    if t.warmup_steps:
        warmup = optax.linear_schedule(0.0, t.learning_rate, t.warmup_steps)
        return optax.join_schedules([warmup, main], [t.warmup_steps])
    return main


def make_optimizer(t, schedule) -> optax.GradientTransformation:
    if t.optimizer == "adam":
        opt = optax.adam(schedule)
    elif t.optimizer == "adamw":
        opt = optax.adamw(schedule, weight_decay=t.weight_decay)
    else:
        raise ValueError(f"train.optimizer must be adam | adamw, got {t.optimizer!r}")
    return optax.chain(optax.clip_by_global_norm(t.grad_clip_norm), opt) if t.grad_clip_norm > 0 else opt


def init_variables(model, config, key) -> dict:
    lr = jnp.zeros((1, 16, 16, config.model.bands), jnp.float32)
    return jax.jit(lambda k: model.init(k, lr, train=False))(key)


def create_state(config, model, schedule, teacher=None) -> TrainState:
    key = jax.random.key(config.train.seed)
    variables = init_variables(model, config, jax.random.fold_in(key, 0))
    return TrainState.create(apply_fn=model.apply, params=variables["params"],
                             batch_stats=variables.get("batch_stats", {}),
                             tx=make_optimizer(config.train, schedule),
                             rng=jax.random.key_data(jax.random.fold_in(key, 1)), teacher=teacher)


def init_from_run(state: TrainState, t) -> TrainState:
    """The state with ``t.init_parts`` of the run ``t.init_from`` copied in (optimizer state anew)."""
    if t.init_parts not in ("all", "backbone"):
        raise ValueError(f"train.init_parts must be all | backbone, got {t.init_parts!r}")
    _, source, _ = checkpoint.restore_variables(t.init_from, "best")
    wanted = (lambda name: True) if t.init_parts == "all" else (lambda name: name == "head" or name.startswith("block"))
    merged = {}
    for collection, target in (("params", state.params), ("batch_stats", state.batch_stats)):
        target = dict(target)
        names = [n for n in target if wanted(n)]
        for name in names:
            theirs = source.get(collection, {}).get(name)
            same = theirs is not None and jax.tree.structure(theirs) == jax.tree.structure(target[name]) and all(
                np.shape(a) == np.shape(b) for a, b in zip(jax.tree.leaves(theirs), jax.tree.leaves(target[name])))
            if not same:
                raise ValueError(f"train.init_from {t.init_from}: its {collection}/{name} does not fit this model "
                                 f"(different depth, width or upsampler?)")
            target[name] = jax.tree.map(jnp.asarray, theirs)
        merged[collection] = target
    return state.replace(params=merged["params"], batch_stats=merged["batch_stats"],
                         opt_state=state.tx.init(merged["params"]))


def loss_fn(model, config, params, state: TrainState, batch: dict, rng, kd=None):
    """(loss, (terms, updated batch_stats)) of one training forward pass: the config's supervised
    loss (``train.loss``), plus for distillation the KD term at this epoch's weight."""
    t = config.train
    (sr, feats), updates = model.apply({"params": params, "batch_stats": state.batch_stats}, batch["lr"],
                                       train=True, rngs={"dropout": rng}, mutable=["batch_stats"])
    terms = losses.training_loss(t, sr, batch["hr"], batch["mask"])
    if kd is not None:
        terms.update(kd.terms(state.teacher, batch["lr"], feats, batch["mask"], batch["epoch"]))
        terms["loss"] = terms["loss"] + terms["kd_weight"] * terms["kd"]
    return terms["loss"], (terms, updates.get("batch_stats", {}))


def make_train_step(model, config, schedule, kd=None, axis_name: str | None = None):
    """``step(state, batch) -> (state, metrics)`` on the batch it is given: with ``axis_name``
    (pmap) one device's share, its gradients, metrics and BatchNorm statistics averaged over that
    axis; without (jit) the global batch. ``model`` must be built with the same ``axis_name``."""
    mean = (lambda tree: jax.lax.pmean(tree, axis_name)) if axis_name else (lambda tree: tree)

    def step(state: TrainState, batch: dict):
        # one key per step for the whole global batch (drop path takes each device's rows of it)
        rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
        grads, (terms, batch_stats) = jax.grad(
            lambda p: loss_fn(model, config, p, state, batch, rng, kd), has_aux=True)(state.params)
        grads, terms, batch_stats = mean(grads), mean(terms), mean(batch_stats)
        terms["grad_norm"] = jnp.sqrt(sum(jnp.sum(g * g) for g in jax.tree.leaves(grads)))
        terms["learning_rate"] = schedule(state.step)
        return state.apply_gradients(grads=grads, batch_stats=batch_stats), terms

    return step


def as_batch(b, within: float = 0.0) -> dict:
    """The step's arrays; ``epoch`` is fractional (``within``: how far into its epoch the batch is), so
    that a KD decay period shorter than an epoch (``teacher.decay_epochs`` < 1, a short run) decays
    on time; for a whole number of epochs floor(epoch / period) is the integer epoch's."""
    epoch = np.full(b.mask.shape, b.epoch + within, np.float32)
    return {"lr": b.lr, "hr": b.hr, "mask": b.mask, "epoch": epoch}


class Logger:
    """JSONL and TensorBoard event files (process 0 only), and a progress line."""

    def __init__(self, workdir, active: bool):
        self.active = active
        self.path = pathlib.Path(workdir) / "metrics.jsonl"
        self.tb = None
        if active:
            try:
                from tensorboardX import SummaryWriter

                self.tb = SummaryWriter(str(pathlib.Path(workdir) / "tensorboard"))
            except ImportError:  # optional: JSONL is always written
                self.tb = None

    def write(self, step: int, values: dict) -> None:
        if not self.active:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, step)
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _eta(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m{seconds % 60:02d}s" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s"


def validate(model, variables, split, config) -> float | None:
    if not len(split):
        return None
    per_image, _, _ = evaluation.predict_split(model, variables, split, config.eval.validation_batch_size,
                                               config.model.scale)
    return float(np.mean(per_image["MPSNR"]))


def train_and_evaluate(config, workdir, echo=print) -> dict:
    """Train (or resume) and evaluate; returns the test row of the table."""
    workdir = pathlib.Path(workdir)
    lead = jax.process_index() == 0
    splits = load_splits(config)  # bad data fail here, before the workdir is made
    if lead:
        workdir.mkdir(parents=True, exist_ok=True)
        checkpoint.save_config(workdir, config)
    eval_model = build_model(config)
    if config.model.name == "bicubic":  # nothing to train
        return evaluation.evaluate(config, {}, splits["test"], workdir if lead else None, echo=echo)

    t = config.train
    n_devices = jax.device_count()
    if t.batch_size % n_devices:
        raise ValueError(f"train.batch_size {t.batch_size} is not divisible by the {n_devices} devices")
    per_device = t.batch_size // n_devices
    source = SplitSource(splits["train"])
    copies = 8 if t.augment == "all8" else 1
    steps_per_epoch = len(source) * copies // t.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"{len(source)} training patches x {copies} make no batch of {t.batch_size}")
    total = t.num_steps or t.num_epochs * steps_per_epoch

    schedule = learning_rate_schedule(t, steps_per_epoch, total)
    kd = None
    teacher = None
    if method_of(config).teacher:
        from lkca_jax.distillation import Distiller

        kd, teacher = Distiller.from_config(config)
    axis = parallel.axis_name(t.parallel)
    model = build_model(config, axis_name=axis)
    state = create_state(config, model, schedule, teacher)
    if t.get("init_from", ""):
        state = init_from_run(state, t)
    ckpts = checkpoint.Checkpoints(workdir, t.keep_checkpoints)
    best = -math.inf
    restored = ckpts.restore_latest({"params": state.params, "batch_stats": state.batch_stats},
                                    {"opt_state": state.opt_state, "step": state.step, "rng": state.rng})
    if restored is not None:
        v, tr, meta = restored
        state = state.replace(params=v["params"], batch_stats=v["batch_stats"], opt_state=tr["opt_state"],
                              step=tr["step"], rng=tr["rng"])
        best = meta.get("best_val_mpsnr", -math.inf)
        echo(f"resumed from step {int(state.step)} in {workdir}")
    start = int(state.step)

    runner = parallel.DataParallel(make_train_step(model, config, schedule, kd, axis), t.parallel)
    state = runner.put_state(state)
    logger = Logger(workdir, lead)
    local_devices = runner.num_local

    def batches():
        for epoch in range(start // steps_per_epoch, math.ceil(total / steps_per_epoch)):
            skip = start - epoch * steps_per_epoch if epoch == start // steps_per_epoch else 0
            it = train_batches(source, per_device, local_devices, epoch, t.seed, t.augment,
                               jax.process_index(), jax.process_count(), skip=skip)
            for i, b in enumerate(it):
                yield as_batch(b, (skip + i) / steps_per_epoch)

    def mean_metrics(pending) -> dict:
        """Fetch each pending step's metrics once; stop at the first non-finite loss; average."""
        rows = [(step_no, runner.metrics(m)) for step_no, m in pending]
        for step_no, row in rows:
            if not math.isfinite(row["loss"]):
                raise NonFiniteLoss(f"loss is {row['loss']} at step {step_no}; stopping. The last good checkpoint in "
                                    f"{workdir / 'checkpoints'} is kept; lower train.learning_rate or check the data")
        return {k: float(np.mean([row[k] for _, row in rows])) for k in rows[0][1]}

    def save(host, step_no, is_best, val=None):  # every process calls save; orbax writes once
        meta = {"epoch": step_no // steps_per_epoch, "val_mpsnr": val, "best_val_mpsnr": best,
                "teacher_workdir": config.teacher.workdir if kd else ""}
        ckpts.save(step_no, {"params": host.params, "batch_stats": host.batch_stats},
                   {"opt_state": host.opt_state, "step": host.step, "rng": host.rng}, meta, best=is_best)

    echo(f"training {evaluation.method_name(config)}: {len(source)} patches x {copies}, {steps_per_epoch} steps "
         f"per epoch, {total} steps, batch {t.batch_size} on {n_devices} device(s) ({t.parallel})")
    pending = []
    tick, tick_step, began = time.perf_counter(), start, time.perf_counter()
    step_no = start
    try:
        for batch in prefetch(batches(), t.prefetch):
            if step_no >= total:
                break
            state, m = runner.step(state, batch)
            step_no += 1
            pending.append((step_no, m))
            last = step_no == total
            if step_no % t.log_every_steps == 0 or last or step_no % t.eval_every_steps == 0 \
                    or step_no % t.checkpoint_every_steps == 0:
                values = mean_metrics(pending)
                pending = []
                now = time.perf_counter()
                rate = (step_no - tick_step) / max(now - tick, 1e-9)
                tick, tick_step = now, step_no
                values["steps_per_second"] = rate
                values["epoch"] = step_no / steps_per_epoch
                val = None
                validating = step_no % t.eval_every_steps == 0 or last
                saving = step_no % t.checkpoint_every_steps == 0 or last
                host = runner.get_state(state) if validating or saving else None  # one fetch for both
                if validating:
                    val = validate(eval_model, {"params": host.params, "batch_stats": host.batch_stats},
                                   splits["validation"], config)
                    if val is not None:
                        values["val_mpsnr"] = val
                logger.write(step_no, values)
                eta = (total - step_no) / max(rate, 1e-9)
                extra = f" val MPSNR {val:.3f}" if val is not None else ""
                echo(f"step {step_no}/{total} epoch {step_no / steps_per_epoch:.2f} loss {values['loss']:.5f}"
                     f" lr {values['learning_rate']:.2e} {rate:.2f} steps/s ETA {_eta(eta)}{extra}")
                is_best = val is not None and val > best
                if is_best:
                    best = val
                if saving or is_best:
                    save(host, step_no, is_best, val)
    finally:
        ckpts.wait()
        ckpts.close()
        logger.close()
    echo(f"trained {step_no - start} steps in {_eta(time.perf_counter() - began)}")
    host = runner.get_state(state)
    variables = {"params": host.params, "batch_stats": host.batch_stats}
    return evaluation.evaluate(config, variables, splits["test"], workdir if lead else None, echo=echo)
