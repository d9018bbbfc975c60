"""Training: the loss falls on real data, NaN stops the run, checkpoints fall back, kill and resume."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from conftest import ROOT, shared_data, tiny_config
from lkca_jax import checkpoint, training
from lkca_jax.config import load_config


def tiny(spec="sample.py", steps=12, **train):
    c = tiny_config(spec, up_init_scale=0.0)  # as the configs train: from the bicubic image
    c.train.update(num_steps=steps, batch_size=4, log_every_steps=4, eval_every_steps=4, checkpoint_every_steps=4,
                   prefetch=0, **train)
    c.eval.validation_batch_size = 8
    return c


def test_loss_falls_on_real_cave_scenes(tmp_path):
    c = tiny("cave.py:x4", steps=50, learning_rate=2e-3, augment="random")
    c.data.path = str(shared_data("cave"))
    c.data.train_scenes, c.data.val_scenes, c.data.test_scenes = ("balloons",), ("cd",), ("clay",)
    c.data.patch_size, c.data.stride = 32, 64
    c.train.update(log_every_steps=10, eval_every_steps=50, checkpoint_every_steps=50)
    training.train_and_evaluate(c, tmp_path, echo=lambda *a: None)
    import json

    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 5 and losses[-1] < 0.7 * losses[0], losses
    assert (tmp_path / "eval" / "test.md").is_file() and (tmp_path / "metrics.jsonl").is_file()


def test_nonfinite_loss_stops_naming_the_step(tmp_path, monkeypatch):
    c = tiny(steps=40, augment="none", learning_rate=1e-3)
    c.train.checkpoint_every_steps = 2
    bad_step, calls = 7, []  # the 7th batch the trainer takes carries a NaN: hand-counted, not from the pipeline
    real = training.as_batch

    def poisoned(b, within=0.0):
        calls.append(1)
        batch = real(b, within)
        if len(calls) == bad_step:
            batch["hr"] = batch["hr"].copy()
            batch["hr"][0, 0, 0, 0, 0] = np.nan
        return batch

    monkeypatch.setattr(training, "as_batch", poisoned)
    with pytest.raises(training.NonFiniteLoss, match=f"at step {bad_step};"):
        training.train_and_evaluate(c, tmp_path, echo=lambda *a: None)
    kept = checkpoint.Checkpoints(tmp_path).last.all_steps()
    assert kept and max(kept) < bad_step
    _, variables, _ = checkpoint.restore_variables(tmp_path, "last")
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(variables))


def test_corrupted_latest_checkpoint_falls_back(tmp_path):
    c = tiny(steps=8)
    training.train_and_evaluate(c, tmp_path, echo=lambda *a: None)
    ckpts = checkpoint.Checkpoints(tmp_path)
    assert ckpts.last.all_steps() == [4, 8]
    for f in (tmp_path / "checkpoints" / "8" / "variables").rglob("*"):
        if f.is_file():
            f.write_bytes(b"garbage")
    model_state = training.create_state(c, training.build_model(c), training.optax.constant_schedule(1e-3))
    with pytest.warns(UserWarning, match="trying the previous one"):
        variables, train, meta = ckpts.restore_latest(
            {"params": model_state.params, "batch_stats": model_state.batch_stats},
            {"opt_state": model_state.opt_state, "step": model_state.step, "rng": model_state.rng})
    assert int(train["step"]) == 4 and meta["step"] == 4
    ckpts.close()


RUN = """
import sys
sys.path.insert(0, {tests!r})
from test_training import tiny
from lkca_jax import training
c = tiny(steps=48, ema_decay=0.9)  # with the EMA: it is resumed too
c.train.checkpoint_every_steps = 8
training.train_and_evaluate(c, sys.argv[1], echo=lambda *a: None)
"""


def _params(workdir):
    """The raw and the EMA variables of the last checkpoint."""
    return [checkpoint.restore_variables(workdir, "last", weights)[1] for weights in ("raw", "ema")]


def test_kill_and_resume_matches_an_uninterrupted_run(tmp_path):
    script = RUN.format(tests=str(ROOT / "tests"))
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    straight = tmp_path / "straight"
    subprocess.run([sys.executable, "-c", script, str(straight)], check=True, env=env, cwd=ROOT, timeout=600)

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", script, str(killed)], env=env, cwd=ROOT)
    marker = killed / "checkpoints" / "8" / "commit_success.txt"
    deadline = time.time() + 300
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    done = sorted(int(p.name) for p in (killed / "checkpoints").iterdir() if p.name.isdigit())
    assert done and max(done) < 48
    subprocess.run([sys.executable, "-c", script, str(killed)], check=True, env=env, cwd=ROOT, timeout=600)

    a, b = _params(straight), _params(killed)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):  # bitwise, the EMA too
        np.testing.assert_array_equal(x, y)
    raw, ema = a
    assert not all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(raw), jax.tree.leaves(ema)))
    assert pathlib.Path(killed / "eval" / "test.json").is_file()


def test_main_job_table_has_bicubic_beside_the_model_and_the_gain(tmp_path):
    """train.py on the sample ends with Bicubic and LKCA-Net in one table and the gain between them;
    the Bicubic row equals the metrics of MATLAB bicubic computed here."""
    import json

    from lkca_jax.data.datasets import load_splits
    from lkca_jax.ops.imresize import imresize_np

    out = subprocess.run([sys.executable, "train.py", "--config", "configs/sample.py", "--workdir", str(tmp_path),
                          "--config.model.depth", "1", "--config.model.features", "16",
                          "--config.train.num_steps", "4", "--config.train.log_every_steps", "4"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    rows = [line.split("|")[1].strip() for line in lines if line.startswith("| ") and "Method" not in line]
    assert rows == ["Bicubic", "LKCA-Net"]
    gain = [line for line in lines if line.startswith("LKCA-Net against Bicubic: MPSNR ")]
    assert len(gain) == 1
    record = json.loads((tmp_path / "eval" / "test.json").read_text())
    assert gain[0].split("MPSNR ")[1].split(" dB")[0] == f"{record['mean']['MPSNR'] - record['bicubic']['MPSNR']:+.4f}"
    test = load_splits(load_config(str(ROOT / "configs/sample.py")), ("test",))["test"]
    mse = [((hr - imresize_np(lr, 4)) ** 2).mean(axis=(0, 1)) for hr, lr in zip(test.hr, test.lr)]
    by_hand = [np.mean(-10 * np.log10(m)) for m in mse]  # PSNR per band (peak 1), mean over bands
    assert record["bicubic"]["MPSNR"] == pytest.approx(np.mean(by_hand), rel=1e-5)
