"""Mixed precision, the EMA and gradient accumulation (train.compute_dtype, ema_decay, grad_accum_steps).

Reference values are independent of the code under test: the float32 forward of the same weights, the
primitives' dtypes in the traced program, a NumPy recurrence, and the step on the whole batch."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_baselines import SMALL
from test_training import tiny

from conftest import tiny_config
from lkca_jax import checkpoint, training
from lkca_jax.models import build_model

METHODS = ("net", "lr", "kd", "vdsr", "fcnn3d", "sspsr", "msdformer", "essaformer", "bicubic")
# Largest |low - float32| over the float32 output's range: bfloat16 keeps 8 bits of mantissa (a
# relative rounding of 2^-9 per value), float16 11 bits; measured at most 0.45 % and 0.05 % here.
TOLERANCE = {"bfloat16": 1e-2, "float16": 1.5e-3}


def small(method, bands=16):
    return tiny_config(f"sample.py:x4,{method}", bands=bands, **SMALL.get(method, {}))


def _inputs(c, seed=1):
    lr = jax.random.uniform(jax.random.key(seed), (2, 12, 12, c.model.bands))
    return lr, build_model(c).init(jax.random.key(0), lr)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("method", METHODS)
def test_low_precision_forward_agrees_with_float32(method, dtype):
    c = small(method)
    lr, variables = _inputs(c)
    want, want_feats = build_model(c).apply(variables, lr)
    sr, feats = build_model(c, dtype=dtype).apply(variables, lr)
    assert sr.dtype == jnp.float32 and (feats is None or feats.dtype == jnp.float32)  # float32 out
    span = float(want.max() - want.min())
    err = float(jnp.max(jnp.abs(sr - want))) / span
    assert err < TOLERANCE[dtype], err
    if method != "bicubic":
        assert err > 0  # it did compute in the lower precision


def _equations(jaxpr):
    for eqn in jaxpr.eqns:
        yield eqn
        for value in eqn.params.values():
            for sub in value if isinstance(value, (list, tuple)) else [value]:
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    yield from _equations(inner)


@pytest.mark.parametrize("method", ("net", "lr", "vdsr", "fcnn3d", "sspsr", "msdformer", "essaformer"))
def test_convolutions_and_products_run_in_the_compute_dtype(method):
    """Every convolution and matrix product of the training step's forward and backward reads
    bfloat16 operands (a float32 parameter or map leaking in would promote the layer to float32)."""
    c = small(method)
    lr, variables = _inputs(c)
    model = build_model(c, dtype="bfloat16")

    def loss(params):
        out, _ = model.apply({**variables, "params": params}, lr, train=True, rngs={"dropout": jax.random.key(2)},
                             mutable=["batch_stats"])
        return jnp.mean(out[0] ** 2) + jnp.mean(out[1] ** 2)

    jaxpr = jax.make_jaxpr(jax.grad(loss))(variables["params"]).jaxpr
    heavy = [e for e in _equations(jaxpr) if e.primitive.name in ("dot_general", "conv_general_dilated")]
    assert heavy
    dtypes = {str(v.aval.dtype) for e in heavy for v in e.invars}
    assert dtypes == {"bfloat16"}, dtypes


def _step(c, state=None, batch=None):
    built = training.assemble(c, training.optax.constant_schedule(1e-3), "jit", jax.local_devices()[:1])
    state = state or built.state
    rng = np.random.default_rng(0)
    n, s, bands = c.train.batch_size, 8, c.model.bands
    batch = batch or {"lr": rng.random((n, s, s, bands), np.float32),
                      "hr": rng.random((n, 4 * s, 4 * s, bands), np.float32),
                      "mask": np.ones((n,), np.float32), "epoch": np.zeros((n,), np.float32)}
    return state, batch, jax.jit(built.step)


def test_parameters_stay_float32_after_a_bfloat16_step():
    c = small("net")
    c.train.update(compute_dtype="bfloat16", batch_size=2)
    state, batch, step = _step(c)
    new, metrics = step(state, batch)
    for tree in (new.params, new.opt_state, new.batch_stats):
        floating = {x.dtype for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)}
        assert floating == {np.dtype("float32")}
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(new.params)))
    assert np.isfinite(float(metrics["loss"]))


def test_float16_overflow_skips_the_step_and_lowers_the_scale():
    c = small("net")
    c.train.update(compute_dtype="float16", batch_size=2)
    state, batch, step = _step(c)
    # a scale of 2^100 makes every float16 cotangent infinite: the step must change nothing
    huge = state.replace(dynamic_scale=state.dynamic_scale.replace(scale=jnp.float32(2.0 ** 100)))
    skipped, metrics = step(huge, batch)
    assert float(metrics["skipped"]) == 1.0
    assert float(skipped.dynamic_scale.scale) == 2.0 ** 99  # halved
    for a, b in zip(jax.tree.leaves((huge.params, huge.opt_state)), jax.tree.leaves((skipped.params,
                                                                                      skipped.opt_state))):
        np.testing.assert_array_equal(a, b)
    assert int(skipped.step) == 1
    taken, metrics = step(state, batch)  # the default scale: a finite step that changes the parameters
    assert float(metrics["skipped"]) == 0.0 and float(taken.dynamic_scale.scale) == 2.0 ** 16
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(state.params),
                                                        jax.tree.leaves(taken.params)))


def test_ema_is_the_numpy_recurrence():
    c = small("net", bands=8)
    c.model.norm = "batch"  # its running statistics are averaged too
    c.train.update(ema_decay=0.8, batch_size=2)
    state, batch, step = _step(c)
    # the debiased EMA by its definition: e_0 = 0, e_t = d e_(t-1) + (1 - d) p_t, reported as e_t / (1 - d^t)
    e = jax.tree.map(lambda x: np.zeros(np.shape(x), np.float64), {"params": state.params,
                                                                  "batch_stats": state.batch_stats})
    for t in range(1, 4):
        state, _ = step(state, batch)
        now = {"params": state.params, "batch_stats": state.batch_stats}
        e = jax.tree.map(lambda e, p: 0.8 * e + 0.2 * np.asarray(p, np.float64), e, now)
        debias = 1 - 0.8 ** t
        want = jax.tree.map(lambda e, debias=debias: e / debias, e)
    got = jax.tree.leaves(state.ema)
    assert len(got) == len(jax.tree.leaves(want)) and jax.tree.leaves(state.ema["batch_stats"])
    for g, w in zip(got, jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-7)
    assert not np.allclose(jax.tree.leaves(state.ema["params"])[0], jax.tree.leaves(state.params)[0])


def test_accumulated_micro_batches_equal_one_batch():
    """LayerNorm, no drop path: k = 4 micro-batches give the whole batch's loss, gradient and update."""
    c = small("net", bands=8)
    c.model.update(norm="layer", drop_path_rate=0.0)
    c.train.update(batch_size=8)
    state, batch, whole = _step(c)
    sgd = training.optax.sgd(0.5)  # updates proportional to the gradients (Adam's first step is sign-like)
    state = state.replace(tx=sgd, opt_state=sgd.init(state.params))
    c.train.grad_accum_steps = 4
    _, _, accumulated = _step(c, state, batch)
    a, ma = whole(state, batch)
    b, mb = accumulated(state, batch)
    np.testing.assert_allclose(float(mb["loss"]), float(ma["loss"]), rtol=1e-5)
    np.testing.assert_allclose(float(mb["grad_norm"]), float(ma["grad_norm"]), rtol=1e-4)
    moved = 0.0
    for x, y, x0 in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), jax.tree.leaves(state.params)):
        np.testing.assert_allclose(y, x, rtol=1e-4, atol=1e-6)
        moved = max(moved, float(np.abs(x - x0).max()))
    assert moved > 1e-3


def test_accumulation_must_divide_the_batch():
    c = small("net")
    c.train.update(batch_size=6, grad_accum_steps=4)
    with pytest.raises(ValueError, match="grad_accum_steps 4 must divide the per-device batch 6"):
        training.check_train_config(c.train, 1)
    c.train.update(grad_accum_steps=3, compute_dtype="float64")
    with pytest.raises(ValueError, match="compute dtype must be one of"):
        training.check_train_config(c.train, 1)


def test_a_float16_run_with_ema_logs_its_scale_and_serves_the_ema(tmp_path):
    c = tiny(steps=8, compute_dtype="float16", ema_decay=0.5, grad_accum_steps=2)
    training.train_and_evaluate(c, tmp_path, echo=lambda *a: None)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all("loss_scale" in r and "skipped" in r for r in rows)
    _, ema, meta = checkpoint.restore_variables(tmp_path, "last")
    _, raw, raw_meta = checkpoint.restore_variables(tmp_path, "last", "raw")
    assert meta["weights"] == "ema" and raw_meta["weights"] == "raw"
    assert meta["compute_dtype"] == "float16" and meta["ema_decay"] == 0.5
    leaves = lambda v: jax.tree.leaves(v["params"])
    assert len(leaves(ema)) == len(leaves(raw))
    assert not all(np.array_equal(x, y) for x, y in zip(leaves(ema), leaves(raw)))
    _, served, _ = checkpoint.load_run(tmp_path, "last")  # the EMA by default
    for x, y in zip(leaves(served), leaves(ema)):
        np.testing.assert_array_equal(x, y)
    # the table the run wrote is the EMA's (evaluated in float32)
    record = json.loads((tmp_path / "eval" / "test.json").read_text())
    from lkca_jax.evaluation import evaluate_workdir

    again = evaluate_workdir(tmp_path, which="last", echo=lambda *a: None)
    assert abs(again["MPSNR"] - record["mean"]["MPSNR"]) < 1e-6
    # resuming it without its EMA (or out of float16) would restore no checkpoint: refused, nothing written
    before = (tmp_path / "config.json").read_text()
    for change in (dict(ema_decay=0.0), dict(compute_dtype="bfloat16")):
        with pytest.raises(ValueError, match="its checkpoints were trained with train.ema_decay 0.5"):
            training.train_and_evaluate(tiny(steps=8, **{**dict(compute_dtype="float16", ema_decay=0.5), **change}),
                                        tmp_path, echo=lambda *a: None)
    assert (tmp_path / "config.json").read_text() == before
