"""A run's workdir: its config and its orbax checkpoints.

Layout::

    WORKDIR/config.json          the run's config (ml_collections, as JSON)
    WORKDIR/checkpoints/<step>/  the last ``keep`` checkpoints
    WORKDIR/best/<step>/         the one with the best validation MPSNR so far

Each checkpoint has three items: ``variables`` (``params`` and ``batch_stats``:
all inference needs; and ``ema``, the same two as exponential moving averages, when the run kept
them: ``train.ema_decay``), ``train`` (optimizer state, step, RNG; absent in converted
checkpoints) and ``meta`` (JSON: epoch, validation MPSNR, the teacher's workdir
for distilled students). A frozen teacher is never saved with its student.
Restoring for training walks back from the newest checkpoint, skipping any that
fail to load with a warning (a run killed while writing, a damaged disk).
"""

from __future__ import annotations

import json
import pathlib
import warnings

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from lkca_jax.atomic import atomic_write
from lkca_jax.quiet import quiet_logger

CONFIG_FILE = "config.json"


def save_config(workdir, config) -> None:
    text = config.to_json_best_effort(indent=2, sort_keys=True)
    atomic_write(pathlib.Path(workdir) / CONFIG_FILE, lambda tmp: pathlib.Path(tmp).write_text(text))


def _tuples(x):
    """JSON lists back to tuples (the configs' sequences are tuples)."""
    if isinstance(x, dict):
        return {k: _tuples(v) for k, v in x.items()}
    if isinstance(x, list):
        return tuple(_tuples(v) for v in x)
    return x


def load_config(workdir) -> ml_collections.ConfigDict:
    path = pathlib.Path(workdir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no run config here (is {workdir} a training workdir?)")
    try:
        return config_from_json(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


def config_from_json(text: str) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(_tuples(json.loads(text)))


def _manager(path, keep: int | None, read_only: bool = False) -> ocp.CheckpointManager:
    # the folder name prefixes orbax's multi-process barrier keys: 'checkpoints' and 'best' save the
    # same step concurrently, and unprefixed keys would collide
    multiprocessing = ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=pathlib.Path(path).name)
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=not read_only, read_only=read_only,
                                           multiprocessing_options=multiprocessing)
    return ocp.CheckpointManager(pathlib.Path(path).absolute(), options=options,
                                 item_names=("variables", "train", "meta"))


def _save_args(variables, train, meta):
    items = {"variables": ocp.args.StandardSave(variables), "meta": ocp.args.JsonSave(meta)}
    if train is not None:
        items["train"] = ocp.args.StandardSave(train)
    return ocp.args.Composite(**items)


def _abstract(tree):
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


class Checkpoints:
    """The last ``keep`` checkpoints of a run and its best one."""

    def __init__(self, workdir, keep: int = 3):
        self.workdir = pathlib.Path(workdir)
        self.last = _manager(self.workdir / "checkpoints", keep)
        self.best = _manager(self.workdir / "best", 1)

    def save(self, step: int, variables, train=None, meta=None, best: bool = False) -> None:
        """Save (asynchronously); ``best=True`` also replaces the best checkpoint."""
        meta = dict(meta or {}, step=int(step))
        self.last.save(step, args=_save_args(variables, train, meta), force=True)
        if best:
            self.best.save(step, args=_save_args(variables, None, meta), force=True)

    def restore_latest(self, variables, train):
        """(variables, train, meta) of the newest loadable checkpoint shaped like the given trees,
        or None when there is none."""
        for step in sorted(self.last.all_steps(), reverse=True):
            try:
                out = self.last.restore(step, args=ocp.args.Composite(
                    variables=ocp.args.StandardRestore(_abstract(variables)),
                    train=ocp.args.StandardRestore(_abstract(train)), meta=ocp.args.JsonRestore()))
                return out["variables"], out["train"], dict(out["meta"])
            except Exception as err:  # orbax raises many types for damaged files
                warnings.warn(f"checkpoint {self.last.directory}/{step} cannot be restored "
                              f"({type(err).__name__}: {str(err)[:200]}); trying the previous one", stacklevel=2)
        return None

    def wait(self) -> None:
        self.last.wait_until_finished()
        self.best.wait_until_finished()

    def close(self) -> None:
        self.last.close()
        self.best.close()


def newest_meta(workdir) -> dict | None:
    """The ``meta`` item of a run's newest checkpoint with a readable one (None: none), read
    without writing anything."""
    folder = pathlib.Path(workdir) / "checkpoints"
    if not folder.is_dir():
        return None
    with quiet_logger("absl"):
        manager = _manager(folder, None, read_only=True)
        try:
            for step in sorted(manager.all_steps(), reverse=True):
                try:
                    return dict(manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"])
                except Exception:  # a damaged one: restore_latest warns about it
                    continue
        finally:
            manager.close()
    return None


def save_run(workdir, config, variables, meta=None, step: int = 0) -> None:
    """A run made without training (converted, imported, initialised): its config and one
    checkpoint of ``variables`` only, written synchronously."""
    save_config(workdir, config)
    ckpts = Checkpoints(workdir)
    try:
        ckpts.save(step, variables, meta=meta)
        ckpts.wait()
    finally:
        ckpts.close()


WEIGHTS = ("ema", "raw")


def restore_variables(workdir, which: str = "best", weights: str = "ema"):
    """(config, variables, meta) of a workdir for inference: ``which`` is 'best' or 'last';
    ``weights`` 'ema' gives the EMA weights where the run kept them (else the raw ones, as 'raw'
    does); ``meta['weights']`` says which were given."""
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    workdir = pathlib.Path(workdir)
    config = load_config(workdir)
    has_steps = lambda f: f.is_dir() and any(p.name.isdigit() for p in f.iterdir())
    folder = workdir / ("best" if which == "best" and has_steps(workdir / "best") else "checkpoints")
    if not folder.is_dir():
        raise FileNotFoundError(f"{workdir}: no checkpoints")
    # orbax logs through absl at WARNING on every read-only restore ('Given directory is read only',
    # 'read_only=True, setting max_to_keep=None'): nothing a user can act on, so not shown
    with quiet_logger("absl"):
        manager = _manager(folder, None, read_only=True)
        try:
            step = manager.latest_step()
            if step is None:
                raise FileNotFoundError(f"{folder}: no checkpoints")
            out = manager.restore(step, args=ocp.args.Composite(variables=ocp.args.StandardRestore(),
                                                                meta=ocp.args.JsonRestore()))
        finally:
            manager.close()
    variables = jax.tree.map(np.asarray, dict(out["variables"]))
    ema = variables.pop("ema", None)
    meta = dict(out["meta"], weights="raw")
    if ema is not None and weights == "ema":
        variables, meta["weights"] = dict(ema), "ema"
    return config, variables, meta


def load_run(workdir, which: str = "best", weights: str = "ema", dtype=None):
    """``(model, variables, config)`` of a trained run: ``which`` is 'best' (best validation MPSNR)
    or 'last'; ``weights`` 'ema' (the EMA weights where the run kept them) or 'raw'; ``dtype`` the
    compute dtype (None: float32, whatever the run trained in; the weights are float32 either way).
    ``model.apply(variables, lr, train=False)`` maps a normalised (N, h, w, C) float32 batch to
    float32 ``(sr, features)``; ``config.data`` says how the run normalised its data."""
    from lkca_jax.models import build_model

    config, variables, _ = restore_variables(workdir, which, weights)
    return build_model(config, dtype=dtype), variables, config
