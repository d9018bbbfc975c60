"""All data parallelism of the project, in one place.

A step is written once, for one device's share of the batch, using collectives
over the axis :data:`AXIS` (``lax.pmean`` of gradients, metrics and BatchNorm
statistics; ``lax.axis_index`` to fold the device into the RNG). It runs either

* ``pmap``: ``jax.pmap`` over the local devices, the state replicated with a
  leading device axis; or
* ``jit``: ``jax.jit`` of ``jax.vmap`` over the device axis (the same named axis,
  so the same collectives), with the batch laid out by a ``NamedSharding`` over a
  one-axis device mesh and the state replicated.

Both compute the same thing (same per-device RNG, same averages), so they give
the same parameters after the same steps. Batches are ``(devices, per_device,
...)`` NumPy arrays from :mod:`lkca_jax.data.pipeline`; with several processes
each passes its local part and ``devices`` counts the local devices.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "devices"
MODES = ("pmap", "jit")


class DataParallel:
    """Runs ``fn(state, batch) -> (state, metrics)`` data-parallel; ``fn`` uses collectives over :data:`AXIS`."""

    def __init__(self, fn, mode: str = "pmap", devices=None, donate: bool = True):
        if mode not in MODES:
            raise ValueError(f"parallel mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.local_devices = list(devices or jax.local_devices())
        donate_argnums = (0,) if donate else ()
        if mode == "pmap":  # devices=None: collectives span every process's devices
            self._step = jax.pmap(fn, axis_name=AXIS, devices=devices, donate_argnums=donate_argnums)
        else:
            devices = jax.devices() if devices is None else self.local_devices
            self.mesh = Mesh(np.asarray(devices), (AXIS,))
            self._replicated = NamedSharding(self.mesh, PartitionSpec())
            self._sharded = NamedSharding(self.mesh, PartitionSpec(AXIS))
            vmapped = jax.vmap(fn, in_axes=(None, 0), out_axes=None, axis_name=AXIS)
            self._step = jax.jit(vmapped, out_shardings=self._replicated, donate_argnums=donate_argnums)

    @property
    def num_local(self) -> int:
        return len(self.local_devices)

    def put_state(self, state):
        """A host (unreplicated) state onto the devices."""
        if self.mode == "pmap":  # a leading device axis; the first step places it
            return jax.tree.map(lambda x: np.stack([np.asarray(x)] * self.num_local), state)
        return jax.device_put(state, self._replicated)

    def get_state(self, state):
        """The device state back as one host copy (NumPy leaves)."""
        if self.mode == "pmap":
            state = jax.tree.map(lambda x: x[0], state)
        return jax.device_get(state)

    def put_batch(self, batch):
        """A pytree of local ``(local_devices, per_device, ...)`` arrays onto the devices."""
        if self.mode == "pmap":  # pmap splits the leading axis over its devices
            return batch
        return jax.tree.map(lambda x: jax.make_array_from_process_local_data(self._sharded, np.asarray(x)), batch)

    def step(self, state, batch):
        return self._step(state, self.put_batch(batch))

    def metrics(self, metrics) -> dict:
        """Device metrics (already averaged over :data:`AXIS`) as Python floats."""
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
