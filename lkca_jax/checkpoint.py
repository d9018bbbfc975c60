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
Restoring for training walks back from the newest checkpoint; one that fails to load (a run killed
while writing, a damaged disk) is moved to ``WORKDIR/damaged/`` with a warning that names it, so
that training can write that step again. Reading for inference (``--which best|last``) falls back
the same way, without moving anything, to the newest checkpoint that loads.

One process trains in a workdir at a time: :class:`WorkdirLock` holds an OS file lock on
``WORKDIR/.lock`` while it trains, released by the OS when that process ends, however it ends.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import pathlib
import shutil
import socket
import warnings

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from lkca_jax.atomic import atomic_write, write_error
from lkca_jax.config import upgrade
from lkca_jax.data.io.base import reason
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
    """A saved config, in today's layout (:func:`lkca_jax.config.upgrade`: runs saved before the
    compared architectures' fields were nested load as they trained)."""
    return upgrade(ml_collections.ConfigDict(_tuples(json.loads(text))))


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


def _misfit(item: pathlib.Path, tree) -> str | None:
    """Where the arrays of a saved pytree item differ in shape from ``tree``'s, on one line (None: they
    match, or its metadata cannot be read, which restoring then reports)."""
    handler = ocp.StandardCheckpointHandler()
    try:
        stored = handler.metadata(item)
        have = {jax.tree_util.keystr(k): tuple(v.shape) for k, v in jax.tree.leaves_with_path(stored)}
    except Exception:  # damaged, or another orbax's layout: leave it to the restore
        return None
    finally:
        getattr(handler, "close", lambda: None)()  # not every orbax version's handler has one
    want = {jax.tree_util.keystr(k): tuple(np.shape(v)) for k, v in jax.tree.leaves_with_path(tree)}
    differ = [k for k in sorted(set(have) | set(want)) if have.get(k) != want.get(k)]
    if not differ or not set(have) & set(want):  # nothing in common: a metadata layout not read right
        return None
    k = differ[0]
    shape = lambda d: "absent" if k not in d else f"shape {d[k]}"
    return (f"{len(differ)} array(s) differ, first {k}: stored {shape(have)}, this run's model "
            f"{shape(want)}")


class WorkdirBusy(OSError):
    """Another process trains in this workdir."""


class WorkdirLock:
    """An exclusive lock on ``WORKDIR/.lock`` (created with the workdir), which records its
    holder; a second holder is refused with :class:`WorkdirBusy` naming the first one's pid. The OS
    drops the lock when the holding process ends, so there is never a stale lock to remove."""

    def __init__(self, workdir):
        self.path = pathlib.Path(workdir) / ".lock"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "a+")
        except OSError as err:  # a file of that name, or no right to write there
            raise write_error(workdir, err, "cannot make or write the workdir") from None
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            holder = self.file.read().strip() or "another process"
            self.file.close()
            raise WorkdirBusy(f"{workdir}: another training runs in it ({holder}); wait for it to end, "
                              "or give another --workdir") from None
        except OSError as err:  # a filesystem without flock (NFS without lockd, Lustre with noflock)
            self.file.close()
            warnings.warn(f"{self.path}: cannot lock the workdir ({err.strerror or err}); nothing stops a second "
                          "training in it", stacklevel=2)
            return
        try:
            self.file.seek(0)
            self.file.truncate()
            self.file.write(f"pid {os.getpid()} on {socket.gethostname()}, since "
                            f"{datetime.datetime.now().isoformat(timespec='seconds')}\n")
            self.file.flush()
        except BaseException:
            self.release()
            raise

    @classmethod
    def shared(cls, workdir):
        """Process 0's lock, its refusal raised in every process (else the others would wait for it
        in their first collective)."""
        lock = busy = None
        if jax.process_index() == 0:
            try:
                lock = cls(workdir)
            except WorkdirBusy as err:
                busy = err
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            if multihost_utils.broadcast_one_to_all(np.int32(busy is not None)) and busy is None:
                busy = WorkdirBusy(f"{workdir}: process 0 found another training in it")
        if busy is not None:
            raise busy
        return lock if lock is not None else contextlib.nullcontext()

    def release(self) -> None:
        if not self.file.closed:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def move_aside(step_dir: pathlib.Path, workdir: pathlib.Path) -> pathlib.Path:
    """Move a damaged checkpoint folder to ``workdir/damaged/<folder>-<step>[-n]``; returns where."""
    target = workdir / "damaged" / f"{step_dir.parent.name}-{step_dir.name}"
    n = 1
    while target.exists():
        target, n = workdir / "damaged" / f"{step_dir.parent.name}-{step_dir.name}-{n}", n + 1
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(step_dir), str(target))
    return target


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
            if step in self.best.all_steps():  # kept from before a resume behind it (a damaged checkpoint)
                self.best.delete(step)
            self.best.save(step, args=_save_args(variables, None, meta), force=True)

    def restore_latest(self, variables, train):
        """(variables, train, meta) of the newest loadable checkpoint shaped like the given trees,
        or None when there is none. Each one that does not load is moved aside (process 0 moves
        it; every process then sees the same steps)."""
        found, failed = None, []
        for step in sorted(self.last.all_steps(), reverse=True):
            misfit = _misfit(pathlib.Path(self.last.directory) / str(step) / "variables", variables)
            if misfit:  # told by the shapes alone, before orbax reads (and prints) anything
                failed.append((step, misfit))
                continue
            try:
                out = self.last.restore(step, args=ocp.args.Composite(
                    variables=ocp.args.StandardRestore(_abstract(variables)),
                    train=ocp.args.StandardRestore(_abstract(train)), meta=ocp.args.JsonRestore()))
                found = out["variables"], out["train"], dict(out["meta"])
                break
            except Exception as err:  # orbax raises many types for damaged files
                failed.append((step, f"{type(err).__name__}: {reason(err)}"))
        if failed and found is None:  # not one loads: a changed model config, not damage; move nothing
            step, why = failed[0]
            raise ValueError(f"{self.workdir}: none of its {len(failed)} checkpoints restores into this run's model "
                             f"(step {step}: {why}); resume with the config it trained with ({CONFIG_FILE}), or give "
                             "another --workdir")
        for step, why in failed:  # newer than one that loads: damaged, moved aside so training can go on
            where = pathlib.Path(self.last.directory) / str(step)
            if jax.process_index() == 0:
                where = move_aside(where, self.workdir)
                warnings.warn(f"checkpoint {self.last.directory}/{step} cannot be restored ({why}); moved to "
                              f"{where}; resuming from step {found[2].get('step')}", stacklevel=2)
        if failed:
            if jax.process_count() > 1:
                from jax.experimental import multihost_utils

                multihost_utils.sync_global_devices("lkca_jax checkpoints moved aside")
            self.last.reload()
        return found

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
    does); ``meta['weights']`` says which were given, ``meta['path']`` which checkpoint ('best'
    falls back to the newest where a run kept no best one)."""
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    workdir = pathlib.Path(workdir)
    config = load_config(workdir)
    folders = [workdir / "best", workdir / "checkpoints"] if which == "best" else [workdir / "checkpoints"]
    out = _newest_loadable(workdir, [f for f in folders if f.is_dir()], which)
    variables = jax.tree.map(np.asarray, dict(out["variables"]))
    ema = variables.pop("ema", None)
    meta = dict(out["meta"], weights="raw", path=str(out["path"]))
    if ema is not None and weights == "ema":
        variables, meta["weights"] = dict(ema), "ema"
    return config, variables, meta


def _newest_loadable(workdir, folders, which: str, attempts: int = 3) -> dict:
    """The restored items of the newest checkpoint that loads, the folders in order of preference;
    a warning for each one passed over. A training that writes meanwhile may replace ``best/``'s
    step between the listing and the read (a step that vanished is not damaged): the folders are
    listed again, up to ``attempts`` times."""
    skipped = []
    for _ in range(attempts):
        vanished = False
        for folder in folders:
            # orbax logs through absl at WARNING on every read-only restore ('Given directory is read
            # only', 'read_only=True, setting max_to_keep=None'): nothing a user can act on
            with quiet_logger("absl"):
                manager = _manager(folder, None, read_only=True)
                try:
                    for step in sorted(manager.all_steps(), reverse=True):
                        try:
                            out = manager.restore(step, args=ocp.args.Composite(
                                variables=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()))
                        except Exception as err:  # damaged, or removed by a training that runs
                            if not (folder / str(step)).exists():
                                vanished = True
                                break
                            skipped.append(f"{folder / str(step)} ({type(err).__name__}: {reason(err)})")
                            continue
                        for s in skipped:
                            warnings.warn(f"checkpoint {s} cannot be restored; using {folder / str(step)}",
                                          stacklevel=3)
                        return {"variables": out["variables"], "meta": out["meta"], "path": folder / str(step)}
                finally:
                    manager.close()
            if vanished:
                break
        if not vanished:
            break
        skipped = []
    if skipped:
        raise FileNotFoundError(f"{workdir}: no {which} checkpoint loads (" + "; ".join(skipped) + ")")
    raise FileNotFoundError(f"{workdir}: no checkpoints")


def load_run(workdir, which: str = "best", weights: str = "ema", dtype=None):
    """``(model, variables, config)`` of a trained run: ``which`` is 'best' (best validation MPSNR)
    or 'last'; ``weights`` 'ema' (the EMA weights where the run kept them) or 'raw'; ``dtype`` the
    compute dtype (None: float32, whatever the run trained in; the weights are float32 either way).
    ``model.apply(variables, lr, train=False)`` maps a normalised (N, h, w, C) float32 batch to
    float32 ``(sr, features)``; ``config.data`` says how the run normalised its data."""
    from lkca_jax.models import build_model

    config, variables, _ = restore_variables(workdir, which, weights)
    return build_model(config, dtype=dtype), variables, config
