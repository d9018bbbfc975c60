"""All data parallelism of the project, in one place.

A train step is written once, for the batch it is given, with its cross-device means behind an
``axis_name`` (gradients, metrics and BatchNorm statistics; the models' per-sample random draws
come from each sample's row in the global batch, which the batch carries, so they are the same
either way and the models never see the axis: lkca_jax/models/dropout.py). It runs either

* ``pmap``: ``jax.pmap`` over the devices, each with its share of the batch and the state
  replicated with a leading device axis; the step's means are ``lax.pmean`` over :data:`AXIS`
  (:func:`axis_name` gives it); or
* ``jit``: one ``jax.jit`` of the step on the *global* batch (``axis_name`` None: no collectives
  in the step), the batch a ``NamedSharding`` over a one-axis ``data`` mesh placed with
  ``jax.make_array_from_process_local_data``, the state replicated; XLA's partitioner splits the
  work and inserts the reductions.

Both compute the same thing (a mean over the global batch is the mean of equal devices' means;
BatchNorm's synced statistics are the global batch's), so they give the same parameters up to
float summation order. Batches are ``(devices, per_device, ...)`` NumPy arrays from
:mod:`lkca_jax.data.pipeline`; with several processes each passes its local part and ``devices``
counts the local devices.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "devices"  # pmap's named axis
MESH_AXIS = "data"  # jit's mesh axis
MODES = ("pmap", "jit")


def axis_name(mode: str) -> str | None:
    """The axis the model's BatchNorm statistics and the step's means run over in ``mode``."""
    if mode not in MODES:
        raise ValueError(f"parallel mode must be one of {MODES}, got {mode!r}")
    return AXIS if mode == "pmap" else None


class DataParallel:
    """Runs ``fn(state, batch) -> (state, metrics)`` data-parallel; ``fn`` (and the model in it)
    must be built with :func:`axis_name` of the same ``mode``."""

    def __init__(self, fn, mode: str = "pmap", devices=None, donate: bool = True):
        axis_name(mode)  # checks the mode
        self.mode = mode
        self.local_devices = list(devices or jax.local_devices())
        donate_argnums = (0,) if donate else ()
        if mode == "pmap":  # devices=None: collectives span every process's devices
            self._step = jax.pmap(fn, axis_name=AXIS, devices=devices, donate_argnums=donate_argnums)
            # The state goes in as the step's outputs come out (the same pmap's placement), so the
            # second step does not compile again for differently placed inputs.
            self._place = jax.pmap(lambda tree: tree, axis_name=AXIS, devices=devices)
        else:
            devices = jax.devices() if devices is None else self.local_devices
            self.mesh = Mesh(np.asarray(devices), (MESH_AXIS,))
            self._replicated = NamedSharding(self.mesh, PartitionSpec())
            self._sharded = NamedSharding(self.mesh, PartitionSpec(MESH_AXIS))
            self._step = jax.jit(fn, in_shardings=(self._replicated, self._sharded),
                                 out_shardings=self._replicated, donate_argnums=donate_argnums)

    @property
    def num_local(self) -> int:
        return len(self.local_devices)

    def put_state(self, state):
        """A host (unreplicated) state onto the devices."""
        if self.mode == "pmap":  # a leading device axis
            return self._place(jax.tree.map(lambda x: np.stack([np.asarray(x)] * self.num_local), state))
        return jax.device_put(state, self._replicated)

    def get_state(self, state):
        """The device state back as one host copy (NumPy leaves)."""
        if self.mode == "pmap":
            state = jax.tree.map(lambda x: x[0], state)
        return jax.device_get(state)

    def put_batch(self, batch):
        """A pytree of local ``(local_devices, per_device, ...)`` arrays onto the devices: as they
        are for pmap; for jit, this process's rows of the global ``(batch, ...)`` array."""
        if self.mode == "pmap":  # pmap splits the leading axis over its devices
            return batch
        return jax.tree.map(lambda x: jax.make_array_from_process_local_data(
            self._sharded, np.asarray(x).reshape((-1,) + np.shape(x)[2:])), batch)

    def step(self, state, batch):
        return self._step(state, self.put_batch(batch))

    def compile(self, state, batch):
        """The compiled step for these shapes (``.as_text()`` is its optimised HLO; call it on
        ``put_batch(batch)``): for profiling and memory analysis."""
        return self._step.lower(state, self.put_batch(batch)).compile()

    def metrics(self, metrics) -> dict:
        """Device metrics (means over the global batch) as Python floats."""
        if self.mode == "pmap":
            metrics = jax.tree.map(lambda x: x[0], metrics)
        return {k: float(v) for k, v in jax.device_get(metrics).items()}


def initialize_distributed(coordinator: str = "", num_processes: int = 0, process_id: int = -1) -> None:
    """``jax.distributed.initialize`` when running on several processes: from the arguments, else
    from JAX's own environment (``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``,
    ``JAX_PROCESS_ID``, or a cluster JAX detects). One process needs no call."""
    import os

    if coordinator or num_processes > 1:
        jax.distributed.initialize(coordinator_address=coordinator or None, num_processes=num_processes or None,
                                   process_id=None if process_id < 0 else process_id)
    elif os.environ.get("JAX_COORDINATOR_ADDRESS"):
        jax.distributed.initialize()
