"""pmap and jit (one step on the global batch) on 2 CPU devices give the same parameters, drop path
included, in float32 and with bfloat16 or float16 compute, the EMA and gradient accumulation
(subprocess: the device count is fixed when jax starts)."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT, XLA_TEST_FLAGS

SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import jax, numpy as np
from test_training import tiny
from lkca_jax import training
from lkca_jax.data.datasets import load_splits
from lkca_jax.data.spec import DataSpec
from lkca_jax.data.pipeline import SplitSource, train_batches

assert jax.device_count() == 2
c = tiny(**{train!r})
tol = dict(rtol=1e-5, atol=1e-6) if c.train.compute_dtype == "float32" else dict(rtol=2e-2, atol=2e-4)
schedule = training.optax.constant_schedule(1e-3)
c.model.update(depth=3, drop_path_rate=0.5)  # blocks 1 and 2 drop paths: the masks must agree too
source = SplitSource(load_splits(DataSpec.of(c), ("train",))["train"])
batches = list(train_batches(source, 2, 2, epoch=0, seed=0))[:3]
out = {{}}
for mode in ("pmap", "jit"):
    built = training.assemble(c, schedule, mode)
    model, runner, state = built.model, built.runner, built.state
    # SGD keeps parameter differences proportional to gradient differences (Adam's first steps are
    # sign-like and would amplify float reduction-order noise on near-zero gradients).
    sgd = training.optax.sgd(0.1)
    state = runner.put_state(state.replace(tx=sgd, opt_state=sgd.init(state.params)))
    if mode == "jit":  # the global batch of 4, one array sharded over both devices
        placed = runner.put_batch(training.as_batch(batches[0]))["lr"]
        assert placed.shape[0] == 4 and len(placed.sharding.device_set) == 2
    for b in batches:  # a fresh host batch every step
        state, metrics = runner.step(state, training.as_batch(b))
    out[mode] = (runner.get_state(state), runner.metrics(metrics))
(a, ma), (b, mb) = out["pmap"], out["jit"]
assert int(a.step) == int(b.step) == 3
for x, y in zip(jax.tree.leaves((a.params, a.batch_stats, a.ema)), jax.tree.leaves((b.params, b.batch_stats, b.ema)),
                strict=True):
    assert x.dtype == y.dtype == np.float32
    np.testing.assert_allclose(x, y, **tol)
assert abs(ma["loss"] - mb["loss"]) < tol["rtol"] * abs(ma["loss"])
assert abs(ma["grad_norm"] - mb["grad_norm"]) < 10 * tol["rtol"] * abs(ma["grad_norm"])
assert ma.get("skipped", 0) == mb.get("skipped", 0) == 0
changed = [not np.allclose(x, y) for x, y in zip(jax.tree.leaves(a.params),
           jax.tree.leaves(training.create_state(c, model, schedule).params))]
assert any(changed)
print("same")
"""


# float16 with all three: the cast that bfloat16 shares, plus the loss scale that must agree across devices
@pytest.mark.parametrize("train", [{}, dict(compute_dtype="float16", ema_decay=0.5, grad_accum_steps=2)],
                         ids=["float32", "float16-ema-accum"])
def test_pmap_and_jit_agree_on_two_devices(train):
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"{XLA_TEST_FLAGS} --xla_force_host_platform_device_count=2 "
                         "--xla_cpu_collective_call_terminate_timeout_seconds=120")
    script = SCRIPT.format(tests=str(ROOT / "tests"), train=train)
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "same" in out.stdout, out.stderr[-3000:]


def test_the_step_compiles_once(caplog):
    """The state is placed as the step's outputs come out, so steps after the first reuse its
    compilation (with numpy-placed state, pmap compiled the train step a second time)."""
    import logging

    import jax
    import numpy as np

    from lkca_jax import parallel

    def toy_step(axis):
        def step(state, batch):
            mean = batch.mean() if axis is None else jax.lax.pmean(batch.mean(), axis)
            return {"w": state["w"] + mean, "n": state["n"] + 1}, {"loss": mean}
        return step

    for mode in parallel.MODES:
        runner = parallel.DataParallel(toy_step(parallel.axis_name(mode)), mode, jax.local_devices()[:1])
        state = runner.put_state({"w": np.zeros(3, np.float32), "n": 0})
        batch = np.ones((1, 2, 3), np.float32)
        state, _ = runner.step(state, batch)
        caplog.clear()
        with caplog.at_level(logging.WARNING), jax.log_compiles():
            for _ in range(2):
                state, metrics = runner.step(state, batch)
        assert not [r for r in caplog.records if "Compiling" in r.getMessage()], (mode, caplog.text[-500:])
        assert runner.metrics(metrics)["loss"] == 1.0 and int(runner.get_state(state)["n"]) == 3


def test_per_sample_draws_depend_on_the_row_not_on_the_split():
    """What makes pmap's and jit's drop path agree without collectives: a sample's draw comes from
    its row in the global batch, so any split of the rows over devices draws the same masks; the
    keep rate is 1 - rate; DropPath zeroes or rescales whole samples."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from lkca_jax.models.dropout import DropPath, keep_mask

    key, rows = jax.random.key(3), jnp.arange(8)
    whole = np.asarray(keep_mask(key, rows, 0.5, (5,)))
    halves = np.concatenate([keep_mask(key, rows[:4], 0.5, (5,)), keep_mask(key, rows[4:], 0.5, (5,))])
    np.testing.assert_array_equal(whole, halves)
    assert abs(float(np.mean(keep_mask(key, jnp.arange(20000), 0.3))) - 0.7) < 0.015  # 4.6 sigma
    v = jnp.ones((8, 2, 2, 3))
    out = np.asarray(DropPath(0.5).apply({}, v, True, rows, rngs={"dropout": key}))
    per_sample = out.reshape(8, -1)
    assert set(np.unique(per_sample)) <= {0.0, 2.0} and all(len(set(s)) == 1 for s in per_sample)
    np.testing.assert_array_equal(np.asarray(DropPath(0.5).apply({}, v, False, rows)), v)
