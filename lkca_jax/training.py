"""Training: the train state, the optimizer, the data-parallel step and the loop.

``train_and_evaluate(config, workdir)`` trains the config's model on its
dataset, validates every ``train.eval_every_steps``, checkpoints (the last few
and the best by validation MPSNR), resumes from the workdir if it holds a
checkpoint, logs to ``metrics.jsonl`` and TensorBoard event files, and finally
evaluates the test split into ``eval/test.{json,md}``. A non-finite loss stops
the run naming the step; checkpoints are only ever written from finite states.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import pathlib
import signal
import sys
import threading
import time
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import dynamic_scale, train_state

from lkca_jax import checkpoint, evaluation, hostmem, inference, losses, parallel, precision
from lkca_jax.atomic import atomic_write
from lkca_jax.config import check as check_config
from lkca_jax.data import protocols as P
from lkca_jax.data.datasets import load_splits
from lkca_jax.data.pipeline import SplitSource, prefetch, train_batches
from lkca_jax.data.spec import DataSpec
from lkca_jax.distillation import Distiller, check_same_teacher, fingerprint, teacher_source
from lkca_jax.methods import method_name, method_of
from lkca_jax.models import build_model
from lkca_jax.pretrained import is_shipped, load_run_or_shipped


class TrainState(train_state.TrainState):
    """Student params and optimizer (from flax), BatchNorm statistics, the base RNG key (raw
    uint32 data), for distillation the frozen teacher's variables (never optimised or saved), the
    EMA of the params and BatchNorm statistics (``train.ema_decay`` > 0; else None) and float16's
    dynamic loss scale (flax's ``DynamicScale``; else None). Everything here is float32."""

    batch_stats: Any = None
    rng: Any = None
    teacher: Any = None
    ema: Any = None
    dynamic_scale: Any = None

    def variables(self, ema: bool = True) -> dict:
        """What inference uses: the EMA weights when there are (and ``ema``), else the raw ones."""
        if ema and self.ema is not None:
            return dict(self.ema)
        return {"params": self.params, "batch_stats": self.batch_stats}

    def saved(self) -> tuple[dict, dict]:
        """The checkpoint's ``variables`` (raw, and ``ema`` when on) and ``train`` items."""
        variables = {"params": self.params, "batch_stats": self.batch_stats}
        if self.ema is not None:
            variables["ema"] = self.ema
        train = {"opt_state": self.opt_state, "step": self.step, "rng": self.rng}
        if self.dynamic_scale is not None:
            train["loss_scale"] = {"scale": self.dynamic_scale.scale, "fin_steps": self.dynamic_scale.fin_steps}
        return variables, train

    def restored(self, variables: dict, train: dict) -> TrainState:
        """This state with the items :meth:`saved` wrote put back."""
        ds = self.dynamic_scale
        if ds is not None:
            ds = ds.replace(scale=train["loss_scale"]["scale"], fin_steps=train["loss_scale"]["fin_steps"])
        return self.replace(params=variables["params"], batch_stats=variables["batch_stats"],
                            ema=variables.get("ema"), opt_state=train["opt_state"], step=train["step"],
                            rng=train["rng"], dynamic_scale=ds)


class NonFiniteLoss(RuntimeError):
    pass


class Interrupted(RuntimeError):
    """Training stopped on SIGINT or SIGTERM at a step boundary, its state saved."""


class StopRequest:
    """While active, SIGINT (Ctrl-C) and SIGTERM only ask the training loop to stop at the next step
    boundary (several processes: the next multiple of ``train.log_every_steps``, all of them); a
    second one interrupts at once. Installed only in the main thread (where Python delivers
    signals); elsewhere it never fires."""

    def __init__(self):
        self.signal = None
        self.saved = {}

    def _handle(self, signum, frame):
        if self.signal is not None:  # asked twice: stop now
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name

    def requested(self, step: int, every: int) -> bool:
        """Whether to stop before ``step + 1``. With several processes they decide together, at the
        steps that are multiples of ``every`` (a signal to any one of them stops all), since each
        save and each step needs every process."""
        if jax.process_count() == 1:
            return self.signal is not None
        if step % every:
            return False
        from jax.experimental import multihost_utils

        asked = multihost_utils.process_allgather(np.int32(self.signal is not None))
        if np.any(asked) and self.signal is None:
            self.signal = "a signal to another process"
        return bool(np.any(asked))

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.saved = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc):
        for s, handler in self.saved.items():
            signal.signal(s, handler)



SCHEDULES = ("cosine", "step", "constant")
OPTIMIZERS = ("adam", "adamw")


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


def check_train_config(t, n_devices: int) -> None:
    """The optimizer, the schedule, and the batch that the devices and the micro-batches divide
    (with lkca_jax.config.check: every field before anything is written)."""
    for name, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES)):
        if t[name] not in allowed:
            raise ValueError(f"config: train.{name} must be one of {' | '.join(allowed)}, got {t[name]!r}")
    precision.resolve(t.get("compute_dtype", "float32"))
    k = t.get("grad_accum_steps", 1)
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"train.grad_accum_steps must be a positive integer, got {k!r}")
    if t.batch_size < 1 or t.batch_size % n_devices:
        raise ValueError(f"train.batch_size {t.batch_size} is not a positive multiple of the {n_devices} devices")
    if (t.batch_size // n_devices) % k:
        raise ValueError(f"train.grad_accum_steps {k} must divide the per-device batch "
                         f"{t.batch_size // n_devices} (train.batch_size {t.batch_size} on {n_devices} devices)")


def check_resumable(workdir, t) -> dict | None:
    """A workdir's checkpoints hold an EMA and a loss scale exactly when the config has them (else
    none would restore and the run would silently start again): checked before anything is written.
    Returns the newest checkpoint's meta (None: a fresh run)."""
    meta = checkpoint.newest_meta(workdir)
    if meta is None:
        return None
    theirs = (meta.get("ema_decay", 0.0) > 0, meta.get("compute_dtype", "float32") == "float16")
    ours = (t.get("ema_decay", 0.0) > 0, precision.resolve(t.get("compute_dtype", "float32")) == jnp.float16)
    if theirs != ours:
        raise ValueError(f"{workdir}: its checkpoints were trained with train.ema_decay {meta.get('ema_decay', 0.0)} "
                         f"and train.compute_dtype {meta.get('compute_dtype', 'float32')}; resume it with the EMA "
                         f"{'on' if theirs[0] else 'off'} and {'in' if theirs[1] else 'not in'} float16, or train "
                         f"in a new workdir")
    return meta


def create_state(config, model, schedule, teacher=None) -> TrainState:
    t = config.train
    key = jax.random.key(t.seed)
    variables = init_variables(model, config, jax.random.fold_in(key, 0))
    params, batch_stats = variables["params"], variables.get("batch_stats", {})
    # copies: the step donates the state, and a buffer shared by params and EMA would be donated twice
    ema = None
    if t.get("ema_decay", 0.0) > 0:
        ema = jax.tree.map(jnp.copy, {"params": params, "batch_stats": batch_stats})
    float16 = precision.resolve(t.get("compute_dtype", "float32")) == jnp.float16
    scale = dynamic_scale.DynamicScale(fin_steps=jnp.int32(0), scale=jnp.float32(2.0 ** 16)) if float16 else None
    return TrainState.create(apply_fn=model.apply, params=params, batch_stats=batch_stats,
                             tx=make_optimizer(t, schedule), rng=jax.random.key_data(jax.random.fold_in(key, 1)),
                             teacher=teacher, ema=ema, dynamic_scale=scale)


def init_from_run(state: TrainState, t) -> TrainState:
    """The state with ``t.init_parts`` of the run ``t.init_from`` (its ``t.init_which`` checkpoint, EMA
    weights where kept; or a shipped model of that name) copied in (optimizer state anew)."""
    if t.init_parts not in ("all", "backbone"):
        raise ValueError(f"train.init_parts must be all | backbone, got {t.init_parts!r}")
    _, source, _ = load_run_or_shipped(t.init_from, t.get("init_which", "best"))
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
    merged_state = state.replace(params=merged["params"], batch_stats=merged["batch_stats"],
                                 opt_state=state.tx.init(merged["params"]))
    return merged_state.replace(ema=jax.tree.map(jnp.copy, merged)) if state.ema is not None else merged_state


def loss_fn(model, config, params, batch_stats, teacher, batch: dict, rng, kd=None):
    """(loss, (terms, updated batch_stats)) of one training forward pass: the config's supervised
    loss (``train.loss``), plus for distillation the KD term at this epoch's weight. The model's
    outputs are float32 whatever its compute dtype, and so are the losses."""
    t = config.train
    # a model that draws per sample (drop path, Dropout2d) takes each sample's row in the global
    # batch, so that pmap and jit draw alike (lkca_jax/models/dropout.py)
    rows = {"rows": batch.get("row")} if "rows" in inspect.signature(model.__call__).parameters else {}
    (sr, feats), updates = model.apply({"params": params, "batch_stats": batch_stats}, batch["lr"],
                                       train=True, rngs={"dropout": rng}, mutable=["batch_stats"], **rows)
    terms = losses.training_loss(t, sr, batch["hr"], batch["mask"])
    if kd is not None:
        terms.update(kd.terms(teacher, batch["lr"], feats, batch["mask"], batch["epoch"]))
        terms["loss"] = terms["loss"] + terms["kd_weight"] * terms["kd"]
    return terms["loss"], (terms, updates.get("batch_stats", {}))


def micro_batches(batch: dict, k: int) -> dict:
    """(rows, ...) arrays -> (k, rows / k, ...): micro-batch j takes rows j, j + k, j + 2k, ... Strided,
    so that the global micro-batch j is the same rows whether a device holds a share (pmap: rows
    ``d n + i``, n divisible by k) or the whole batch (jit), and in the same order (drop path's mask)."""
    return jax.tree.map(lambda x: x.reshape(x.shape[0] // k, k, *x.shape[1:]).swapaxes(0, 1), batch)


def make_train_step(model, config, schedule, kd=None, axis_name: str | None = None):
    """``step(state, batch) -> (state, metrics)`` on the batch it is given: with ``axis_name``
    (pmap) one device's share, its gradients, metrics and BatchNorm statistics averaged over that
    axis; without (jit) the global batch. ``model`` must be built with the same ``axis_name``; the
    step runs it in ``train.compute_dtype`` (:mod:`lkca_jax.precision`).

    ``train.grad_accum_steps`` k > 1: the batch is cut into k micro-batches (:func:`micro_batches`)
    whose gradients are computed one after another (a ``lax.scan``: one micro-batch's activations
    in memory at a time) and averaged, then one optimizer update. The loss is a mean over images, so
    this is the whole batch's gradient (LayerNorm); BatchNorm normalises each micro-batch by its own
    statistics and updates its running averages k times. Each micro-batch j draws drop path from the
    step's key folded with j. float16: each (micro-)batch's gradient goes through the dynamic loss
    scale (flax's ``DynamicScale``: it averages over ``axis_name`` and checks them finite); a step
    with a non-finite gradient leaves the parameters, optimizer state, statistics and EMA unchanged,
    halves the scale, and is counted in the ``skipped`` metric; with micro-batches the scale is
    updated after each one (flax's ``DynamicScale`` per gradient it computes: its growth interval
    counts micro-batches, and one step may halve it up to k times). ``train.ema_decay`` d > 0: after the
    t-th update, ema += (new - ema) (1 - d) / (1 - d^t), for the params and the BatchNorm statistics:
    the debiased average (as Adam's moments: zero-initialised, divided by 1 - d^t), so the weights
    and statistics the run started from count for nothing (BatchNorm's initial running variance of
    1, against trained values near 0.003 on the sample, dragged a plain EMA's statistics 2x off
    for thousands of steps). t counts steps, float16's skipped ones included (they leave the EMA
    unchanged), so skips before the first taken step leave a trace of the initial weights."""
    t = config.train
    dtype = precision.resolve(t.get("compute_dtype", "float32"))
    model = model.clone(dtype=dtype)
    if kd is not None:  # the teacher's forward in the same precision
        kd = dataclasses.replace(kd, teacher_model=kd.teacher_model.clone(dtype=dtype))
    k = t.get("grad_accum_steps", 1)
    decay = t.get("ema_decay", 0.0)
    mean = (lambda tree: jax.lax.pmean(tree, axis_name)) if axis_name else (lambda tree: tree)

    def gradients(state: TrainState, batch_stats, batch: dict, rng, ds):
        """(ds, finite, terms, batch_stats, grads) of one (micro-)batch; with ``ds`` the gradients
        are already averaged over the devices."""
        fn = lambda p: loss_fn(model, config, p, batch_stats, state.teacher, batch, rng, kd)
        if ds is None:
            (_, (terms, stats)), grads = jax.value_and_grad(fn, has_aux=True)(state.params)
            return None, jnp.array(True), terms, stats, grads
        ds, finite, (_, (terms, stats)), grads = ds.value_and_grad(fn, has_aux=True, axis_name=axis_name)(
            state.params)
        return ds, finite, terms, stats, grads

    def step(state: TrainState, batch: dict):
        # one key per step for the whole global batch (drop path takes each device's rows of it)
        rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
        ds = state.dynamic_scale
        if k == 1:
            ds, finite, terms, batch_stats, grads = gradients(state, state.batch_stats, batch, rng, ds)
        else:
            def body(carry, xs):
                ds, finite, terms, stats, grads = carry
                j, mb = xs
                ds, fin, t_j, stats, g_j = gradients(state, stats, mb, jax.random.fold_in(rng, j), ds)
                add = lambda a, b: jax.tree.map(jnp.add, a, b)
                return (ds, finite & fin, add(terms, t_j), stats, add(grads, g_j)), None

            mbs = micro_batches(batch, k)
            zeros = jax.tree.map(jnp.zeros_like, state.params)
            terms0 = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), jax.eval_shape(
                lambda: gradients(state, state.batch_stats, jax.tree.map(lambda x: x[0], mbs), rng, ds)[2]))
            (ds, finite, terms, batch_stats, grads), _ = jax.lax.scan(
                body, (ds, jnp.array(True), terms0, state.batch_stats, zeros), (jnp.arange(k), mbs))
            grads, terms = jax.tree.map(lambda g: g / k, grads), jax.tree.map(lambda x: x / k, terms)
        if ds is None:
            grads = mean(grads)
        terms, batch_stats = mean(terms), mean(batch_stats)
        terms["grad_norm"] = jnp.sqrt(sum(jnp.sum(g * g) for g in jax.tree.leaves(grads)))
        terms["learning_rate"] = schedule(state.step)
        new = state.apply_gradients(grads=grads, batch_stats=batch_stats)
        if decay > 0:  # debiased: the t-th update weighs in by (1 - d) / (1 - d^t), 1 at t = 1
            rate = (1 - decay) / (1 - decay ** new.step.astype(jnp.float32))
            ema = optax.incremental_update({"params": new.params, "batch_stats": new.batch_stats}, state.ema, rate)
            new = new.replace(ema=ema)
        if ds is not None:  # a non-finite step changes nothing but the scale and the step count
            keep = lambda a, b: jax.tree.map(lambda x, y: jnp.where(finite, x, y), a, b)
            new = new.replace(params=keep(new.params, state.params), opt_state=keep(new.opt_state, state.opt_state),
                              batch_stats=keep(new.batch_stats, state.batch_stats), ema=keep(new.ema, state.ema),
                              dynamic_scale=ds)
            terms["skipped"] = 1.0 - finite.astype(jnp.float32)
            terms["loss_scale"] = ds.scale
        return new, terms

    return step


def as_batch(b, within: float = 0.0) -> dict:
    """The step's arrays; ``epoch`` is fractional (``within``: how far into its epoch the batch is), so
    that a KD decay period shorter than an epoch (``teacher.decay_epochs`` < 1, a short run) decays
    on time; for a whole number of epochs floor(epoch / period) is the integer epoch's."""
    epoch = np.full(b.mask.shape, b.epoch + within, np.float32)
    row = b.row if b.row is not None else np.arange(b.mask.size, dtype=np.int32).reshape(b.mask.shape)
    return {"lr": b.lr, "hr": b.hr, "mask": b.mask, "epoch": epoch, "row": row}


def _summary_writer(path: pathlib.Path, purge_step: int | None = None):
    """tensorboardX's writer, imported without PyTorch: tensorboardX imports torch when it is installed
    (2 s, only to accept torch tensors, which are never logged here)."""
    if "torch" in sys.modules:
        from tensorboardX import SummaryWriter
    else:
        sys.modules["torch"] = None  # makes `import torch` raise ImportError, which tensorboardX expects
        try:
            from tensorboardX import SummaryWriter
        finally:
            del sys.modules["torch"]
    return SummaryWriter(str(path), purge_step=purge_step)


def _logged_step(line: str) -> int:
    """The step of one metrics.jsonl line (a torn last line, from a kill mid-write: past every step)."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return sys.maxsize


class Logger:
    """JSONL and TensorBoard event files (process 0 only), and a progress line. A run resumed at
    ``start`` first drops what was logged after that step (a kill after the checkpoint: those steps
    run again), so each step is in the log once."""

    def __init__(self, workdir, active: bool, start: int = 0):
        self.active = active
        self.path = pathlib.Path(workdir) / "metrics.jsonl"
        self.tb = None
        if active:
            if start and self.path.is_file():
                lines = self.path.read_text().splitlines(keepends=True)
                kept = [line for line in lines if _logged_step(line) <= start]
                if len(kept) < len(lines):
                    atomic_write(self.path, lambda tmp: pathlib.Path(tmp).write_text("".join(kept)))
            try:  # purge_step: TensorBoard hides the events at and after it that an earlier process wrote
                self.tb = _summary_writer(pathlib.Path(workdir) / "tensorboard", start + 1 if start else None)
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
    """Mean validation MPSNR of ``variables`` (None without a validation split)."""
    if not len(split):
        return None
    per_image, _, _ = inference.predict_split(model, variables, split, config.eval.validation_batch_size,
                                               config.model.scale)
    return float(np.mean(per_image["MPSNR"]))


@dataclasses.dataclass(frozen=True)
class Assembly:
    """What a training run steps with: the model (built for the runner's parallel mode), the initial
    train state on the host, the train step under its data-parallel runner
    (``runner.step(runner.put_state(state), batch) -> (state, metrics)``), and the same step as a
    plain function of one device's state and batch (``step``; for ``jax.jit`` in tests)."""

    model: Any
    state: TrainState
    runner: parallel.DataParallel
    step: Any
    kd: Distiller | None = None  # a KD run's


def assemble(config, schedule, mode: str | None = None, devices=None, teacher=None) -> Assembly:
    """The model, state and step as ``train.py`` builds them (the trainer, the benchmarks and the
    tests all build them here): ``mode`` defaults to ``config.train.parallel``, ``devices`` to every
    local device. A KD method's teacher is restored from ``config.teacher.workdir``, or is
    ``teacher = (model, variables)`` when given (a benchmark's random teacher)."""
    mode = mode or config.train.parallel
    kd = teacher_variables = None
    if teacher is not None:
        kd, teacher_variables = Distiller.of_teacher(config, teacher[0]), teacher[1]
    elif method_of(config).teacher:
        kd, teacher_variables = Distiller.from_config(config)
    axis = parallel.axis_name(mode)
    model = build_model(config, axis_name=axis)
    step = make_train_step(model, config, schedule, kd, axis)
    runner = parallel.DataParallel(step, mode, devices)
    return Assembly(model, create_state(config, model, schedule, teacher_variables), runner, step, kd)


def epoch_steps(config, patches: int) -> int:
    """Steps in an epoch of ``patches`` training patches (x 8 with the dihedral augmentation);
    refused when they make no batch."""
    t, d = config.train, config.data
    if patches * copies(t) < t.batch_size:
        size, _ = P.default_patch(config.model.scale, d.patch_size or None, d.stride or None)
        raise ValueError(f"{d.path or d.protocol}: {patches} training patches of {size} x {size} pixels "
                         f"(x {copies(t)}) make no batch of {t.batch_size}: smaller config.data.patch_size and "
                         "stride, a smaller config.train.batch_size, or larger scenes")
    return patches * copies(t) // t.batch_size


def copies(t) -> int:
    """How many copies of each patch an epoch sees: the 8 flips and turns (augment 'all8') or 1."""
    return 8 if t.augment == "all8" else 1


def warn_changed_data(workdir: pathlib.Path, config) -> None:
    """Not silently: a resume on other data than the run trained on so far (its saved config's)."""
    if not (workdir / checkpoint.CONFIG_FILE).is_file():
        return
    before = checkpoint.load_config(workdir).data.to_dict()
    changed = [f"data.{k} {before[k]!r} -> {v!r}" for k, v in config.data.to_dict().items()
               if k in before and before[k] != v]
    if changed:
        warnings.warn(f"{workdir}: resumed on other data than it trained on so far ({'; '.join(changed)})",
                      stacklevel=2)


def train_and_evaluate(config, workdir, echo=print) -> dict:
    """Train (or resume) and evaluate; returns the test row of the table. Only process 0 reports
    (``echo``): the others' progress and table would repeat its."""
    workdir = pathlib.Path(workdir)
    lead = jax.process_index() == 0
    echo = echo if lead else (lambda *a, **k: None)
    check_config(config)  # bad values, bad data and a workdir of other settings fail before anything is written
    if config.model.name != "bicubic":
        check_train_config(config.train, jax.device_count())
    splits = load_splits(DataSpec.of(config))
    if config.model.name != "bicubic":
        epoch_steps(config, len(splits["train"]))  # at least one batch, or a refusal before the workdir exists
    resuming = check_resumable(workdir, config.train) is not None
    if method_of(config).teacher:  # the runs it learns from, before the workdir is locked
        teacher_source(config)
    if config.train.get("init_from", "") and not resuming:  # a resume does not read it
        is_shipped(config.train.init_from, "train.init_from")
    with checkpoint.WorkdirLock.shared(workdir):  # one training per workdir (process 0 holds the lock)
        return _train_and_evaluate(config, workdir, splits, lead, echo)


def _train_and_evaluate(config, workdir: pathlib.Path, splits, lead: bool, echo) -> dict:
    eval_model = build_model(config, dtype=config.eval.get("dtype", "float32"))
    if config.model.name == "bicubic":  # nothing to train
        if lead:
            checkpoint.save_config(workdir, config)
        return evaluation.evaluate(config, {}, splits["test"], evaluation.eval_dir(workdir if lead else None),
                                   echo=echo)

    t = config.train
    n_devices = jax.device_count()
    per_device = t.batch_size // n_devices
    float16 = precision.resolve(t.get("compute_dtype", "float32")) == jnp.float16
    source = SplitSource(splits["train"])
    steps_per_epoch = epoch_steps(config, len(source))
    total = t.num_steps or t.num_epochs * steps_per_epoch

    schedule = learning_rate_schedule(t, steps_per_epoch, total)
    built = assemble(config, schedule)
    state, runner, kd = built.state, built.runner, built.kd
    ckpts = checkpoint.Checkpoints(workdir, t.keep_checkpoints)
    best = -math.inf
    teacher_digest = fingerprint(state.teacher) if kd else ""
    try:
        restored = ckpts.restore_latest(*state.saved())
        if restored is not None and kd:  # the same teacher, or a refusal before anything is written
            check_same_teacher(restored[2], teacher_digest, config, workdir)
        if restored is None and t.get("init_from", ""):  # a fresh run only; a misfit refused before the config is saved
            state = init_from_run(state, t)
    except BaseException:
        ckpts.close()
        raise
    if restored is not None and lead:
        warn_changed_data(workdir, config)
    if lead:  # once the checkpoints proved to fit it: a refused resume leaves the run's config as it was
        checkpoint.save_config(workdir, config)
    if restored is not None:
        v, tr, meta = restored
        state = state.restored(v, tr)
        best = meta.get("best_val_mpsnr", -math.inf)
        echo(f"resumed from step {int(state.step)} in {workdir}")
    start = int(state.step)

    state = runner.put_state(state)
    logger = Logger(workdir, lead, start)
    local_devices = runner.num_local

    def batches():
        for epoch in range(start // steps_per_epoch, math.ceil(total / steps_per_epoch)):
            skip = start - epoch * steps_per_epoch if epoch == start // steps_per_epoch else 0
            it = train_batches(source, per_device, local_devices, epoch, t.seed, t.augment,
                               jax.process_index(), jax.process_count(), skip=skip)
            for i, b in enumerate(it):
                yield as_batch(b, (skip + i) / steps_per_epoch)

    def mean_metrics(pending) -> dict:
        """Fetch each pending step's metrics once; stop at the first non-finite loss (float16: the
        steps its loss scale skipped are counted, not stopped at, unless every step since the last
        report was skipped and the scale has fallen below 1, where no scaling can help: it takes 17
        overflows in a row from its start at 2^16); average (the loss over the steps taken)."""
        rows = [(step_no, runner.metrics(m)) for step_no, m in pending]
        taken = [(step_no, row) for step_no, row in rows if not row.get("skipped", 0.0)]
        if not taken and rows[-1][1]["loss_scale"] < 1:
            raise NonFiniteLoss(f"every float16 step from {rows[0][0]} to {rows[-1][0]} overflowed (loss scale "
                                f"{rows[-1][1]['loss_scale']:g}); stopping. The last good checkpoint in "
                                f"{workdir / 'checkpoints'} is kept; try train.compute_dtype bfloat16")
        for step_no, row in taken:
            if not math.isfinite(row["loss"]):
                raise NonFiniteLoss(f"loss is {row['loss']} at step {step_no}; stopping. The last good checkpoint in "
                                    f"{workdir / 'checkpoints'} is kept; lower train.learning_rate or check the data")
        out = {k: float(np.mean([row[k] for _, row in taken or rows])) for k in rows[0][1]}
        if float16:
            out["skipped"] = float(sum(row["skipped"] for _, row in rows))  # steps, not a mean
            out["loss_scale"] = rows[-1][1]["loss_scale"]
        return out

    def save(host, step_no, is_best, val=None):  # every process calls save; orbax writes once
        meta = {"epoch": step_no // steps_per_epoch, "val_mpsnr": val, "best_val_mpsnr": best,
                "teacher_workdir": config.teacher.workdir if kd else "", "teacher_digest": teacher_digest,
                "compute_dtype": precision.resolve(t.get("compute_dtype", "float32")).name,
                "ema_decay": t.get("ema_decay", 0.0)}
        variables, train = host.saved()
        ckpts.save(step_no, variables, train, meta, best=is_best)

    extras = [f"{t.compute_dtype}" if t.get("compute_dtype", "float32") != "float32" else "",
              f"EMA {t.ema_decay:g}" if t.get("ema_decay", 0.0) else "",
              f"{t.grad_accum_steps} micro-batches a step" if t.get("grad_accum_steps", 1) > 1 else ""]
    if kd:
        k = config.teacher
        extras.append(f"distilling from {k.workdir} ({k.which}), KD weight {k.lambda0:g} x {k.gamma:g} every "
                      f"{k.decay_epochs:g} epochs")
    echo(f"training {method_name(config)}: {len(source)} patches x {copies(t)}, {steps_per_epoch} steps "
         f"per epoch, {total} steps, batch {t.batch_size} on {n_devices} device(s) ({t.parallel})"
         + "".join(f", {e}" for e in extras if e))
    pending = []
    tick, tick_step, began = time.perf_counter(), start, time.perf_counter()
    settled = None  # (time, step) after the first report: the ETA's base, past compilation
    step_no = saved = start
    with StopRequest() as stop:  # Ctrl-C: save and stop at the next step boundary
        try:
            for batch in prefetch(batches(), t.prefetch):
                if stop.requested(step_no, t.log_every_steps):
                    break
                if step_no >= total:
                    break
                state, m = runner.step(state, batch)
                step_no += 1
                if step_no == start + 1:  # its peak memory says whether the heap may keep freed blocks
                    jax.block_until_ready(m)
                    if note := hostmem.bound_growth():
                        echo(note)
                pending.append((step_no, m))
                last = step_no == total
                if step_no % t.log_every_steps == 0 or last or step_no % t.eval_every_steps == 0 \
                        or step_no % t.checkpoint_every_steps == 0:
                    values = mean_metrics(pending)
                    pending = []
                    now = time.perf_counter()
                    rate = (step_no - tick_step) / max(now - tick, 1e-9)  # training alone: the window
                    values["steps_per_second"] = rate                      # starts after the last report
                    values["epoch"] = step_no / steps_per_epoch
                    val = None
                    validating = step_no % t.eval_every_steps == 0 or last
                    saving = step_no % t.checkpoint_every_steps == 0 or last
                    host = runner.get_state(state) if validating or saving else None  # one fetch for both
                    if validating:  # the EMA weights when there are
                        val = validate(eval_model, host.variables(), splits["validation"], config)
                        if val is not None:
                            values["val_mpsnr"] = val
                    logger.write(step_no, values)
                    # the ETA at the mean pace since the first report (validation and saving included)
                    eta = (total - step_no) * ((now - settled[0]) / max(step_no - settled[1], 1) if settled
                                               else 1 / max(rate, 1e-9))
                    extra = f" val MPSNR {val:.3f}" if val is not None else ""
                    if float16:
                        extra += f" loss scale {values['loss_scale']:g}, {values['skipped']:g} skipped"
                    echo(f"step {step_no}/{total} epoch {step_no / steps_per_epoch:.2f} loss {values['loss']:.5f}"
                         f" lr {values['learning_rate']:.2e} {rate:.2f} steps/s ETA {_eta(eta)}{extra}")
                    is_best = val is not None and val > best
                    if is_best:
                        best = val
                    if saving or is_best:
                        save(host, step_no, is_best, val)
                        saved = step_no
                    tick, tick_step = time.perf_counter(), step_no
                    settled = settled or (tick, step_no)
            if stop.signal is not None:  # asked during the run, or during its last steps
                if pending:
                    mean_metrics(pending)  # a non-finite state is never saved
                if step_no > saved:
                    save(runner.get_state(state), step_no, False)
                ckpts.wait()
                raise Interrupted(f"{stop.signal} at step {step_no}: its checkpoint is in "
                                  f"{workdir / 'checkpoints'}; the same command resumes from it")
        finally:
            ckpts.wait()
            ckpts.close()
            logger.close()
    echo(f"trained {step_no - start} steps in {_eta(time.perf_counter() - began)}")
    host = runner.get_state(state)
    weights = "EMA" if host.ema is not None else "raw"
    return evaluation.evaluate_run(config, host.variables(), splits["test"], workdir if lead else None, echo=echo,
                                   source=f"the weights at the end of training: step {step_no}, {weights} weights")
