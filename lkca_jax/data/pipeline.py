"""Batches for the data-parallel step, from any random-access source of (HR, LR) pairs.

A source is anything with ``len()`` whose items are mappings with ``'hr'`` and
``'lr'`` arrays (a TFDS data source, or :class:`SplitSource` over an in-memory
split). Batches are NumPy arrays shaped ``(devices, per_device, h, w, C)``.

Training: the order is a permutation seeded by ``(seed, epoch)``, so every run
and every process sees the same global order, cut into global batches; process
``p`` of ``P`` takes the ``p``-th contiguous block of each, so device ``d`` of
process ``p`` gets the same items as global device ``p * local_devices + d`` of
a single process with all the devices. With
``augment='all8'`` (MSDformer) an epoch enumerates all 8 dihedral transforms of
every item; ``'random'`` draws one per item per epoch; ``'none'`` uses the item
as is. The same transform is applied to LR and HR. The last partial batch is
dropped. Evaluation keeps the order, never augments, groups items of equal
shape, and pads the last batch of each group, with ``mask`` 0 on padding.
Every batch carries its ``epoch`` (the KD weight decays with it).
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

AUGMENTS = ("all8", "random", "none")


@dataclasses.dataclass
class Batch:
    lr: np.ndarray  # (devices, per_device, h, w, C)
    hr: np.ndarray  # (devices, per_device, H, W, C)
    mask: np.ndarray  # (devices, per_device) float32, 0 on padding
    epoch: int
    # (devices, per_device) int32: each sample's row in the global batch (all processes'), from which
    # the model's per-sample random draws come (lkca_jax/models/dropout.py); None: 0..N-1
    row: np.ndarray | None = None


class SplitSource(Sequence):
    """Random access over an in-memory :class:`lkca_jax.data.scenes.Split`."""

    def __init__(self, split):
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i) -> Mapping:
        return {"hr": self.split.hr[i], "lr": self.split.lr[i], "id": self.split.ids[i]}


def dihedral(x: np.ndarray, t: int) -> np.ndarray:
    """The t-th of the 8 dihedral transforms of an (H, W, C) array: rotate by 90 t degrees, then flip if t >= 4."""
    y = np.rot90(x, t % 4, axes=(0, 1))
    return np.ascontiguousarray(y[:, ::-1] if t >= 4 else y)


def epoch_order(n: int, epoch: int, seed: int, augment: str) -> list[tuple[int, int]]:
    """The global (item, transform) pairs of one training epoch."""
    if augment not in AUGMENTS:
        raise ValueError(f"augment must be one of {AUGMENTS}, got {augment!r}")
    rng = np.random.default_rng([seed, epoch])
    if augment == "all8":
        return [(int(i) // 8, int(i) % 8) for i in rng.permutation(8 * n)]
    order = rng.permutation(n)
    transforms = rng.integers(0, 8, n) if augment == "random" else np.zeros(n, int)
    return [(int(i), int(transforms[i])) for i in order]


def _stack(items, devices: int) -> tuple[np.ndarray, np.ndarray]:
    lr = np.stack([it[0] for it in items]).astype(np.float32)
    hr = np.stack([it[1] for it in items]).astype(np.float32)
    return lr.reshape(devices, -1, *lr.shape[1:]), hr.reshape(devices, -1, *hr.shape[1:])


def train_batches(source, per_device: int, devices: int, epoch: int, seed: int = 0, augment: str = "all8",
                  process_index: int = 0, process_count: int = 1, skip: int = 0) -> Iterator[Batch]:
    """This process's share of one epoch of full global batches, from batch ``skip`` on (resuming)."""
    local = per_device * devices
    size = local * process_count
    pairs = epoch_order(len(source), epoch, seed, augment)
    for start in range(skip * size, len(pairs) - size + 1, size):
        items = []
        for i, t in pairs[start + process_index * local:start + (process_index + 1) * local]:
            item = source[i]
            items.append((dihedral(np.asarray(item["lr"]), t), dihedral(np.asarray(item["hr"]), t)))
        lr, hr = _stack(items, devices)
        rows = (process_index * local + np.arange(local, dtype=np.int32)).reshape(devices, per_device)
        yield Batch(lr, hr, np.ones((devices, per_device), np.float32), epoch, rows)


def eval_batches(source, per_device: int, devices: int, epoch: int = 0) -> Iterator[Batch]:
    """Every item once, in order; equal shapes batched together, the last batch of each run padded."""
    size = per_device * devices
    pending: list = []

    def flush():
        n = len(pending)
        items = pending + [pending[-1]] * (size - n)
        lr, hr = _stack(items, devices)
        mask = (np.arange(size) < n).astype(np.float32).reshape(devices, per_device)
        pending.clear()
        return Batch(lr, hr, mask, epoch)

    for i in range(len(source)):
        item = source[i]
        pair = (np.asarray(item["lr"]), np.asarray(item["hr"]))
        if pending and pair[0].shape != pending[0][0].shape:
            yield flush()
        pending.append(pair)
        if len(pending) == size:
            yield flush()
    if pending:
        yield flush()


def prefetch(batches: Iterator[Batch], depth: int = 2) -> Iterator[Batch]:
    """Produce batches in a background thread, ``depth`` ahead of the consumer."""
    if depth <= 0:
        yield from batches
        return
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def put(item) -> bool:
        """Block until there is room, unless the consumer has gone (then False)."""
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def work():
        try:
            for b in batches:
                if not put(b):
                    return
            put(done)
        except BaseException as err:  # handed to the consumer
            put(err)

    threading.Thread(target=work, daemon=True).start()
    try:
        while (item := q.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
