"""Training: the loss falls on real data, NaN stops the run, checkpoints fall back, kill and resume."""

import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from conftest import ROOT, TINY_MODEL, shared_data, tiny_config
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


def test_a_folder_of_own_scenes_trains_by_configs_folder(tmp_path):
    """configs/folder.py:...,bands=N on a folder of cubes: 20 % of the scenes test, 10 % validation,
    the rest patches; a band count or a patch size that does not fit is refused before the workdir
    exists, naming the folder."""
    from lkca_jax.data.io import DataError, write_cube

    rng = np.random.default_rng(0)
    for i in range(10):  # smooth cubes in raw counts: global_max brings them to 0..1
        write_cube(tmp_path / "scenes" / f"scene{i}.npy", np.cumsum(np.cumsum(rng.random((40, 40, 5)), 0), 1) * 50)
    with pytest.raises(ValueError, match="bands=102"):
        tiny_config("folder.py:x4,net")
    c = tiny_config("folder.py:x4,net,bands=5", up_init_scale=0.0)
    c.data.path = str(tmp_path / "scenes")
    c.train.update(num_steps=4, batch_size=4, log_every_steps=2, eval_every_steps=2, checkpoint_every_steps=2,
                   prefetch=0)
    with pytest.raises(ValueError, match=r"scenes: 0 training patches of 64 x 64 pixels \(x 8\) make no batch"):
        training.train_and_evaluate(c, tmp_path / "run", echo=lambda *a: None)  # 40-pixel scenes, 64-pixel patches
    assert not (tmp_path / "run").exists()
    c.data.patch_size, c.data.stride = 16, 8
    wide = c.copy_and_resolve_references()
    wide.model.bands = 6
    with pytest.raises(DataError, match=r"scenes: scene0, .*scene9: 5 bands; the model expects 6"):
        training.train_and_evaluate(wide, tmp_path / "run", echo=lambda *a: None)
    assert not (tmp_path / "run").exists()
    training.train_and_evaluate(c, tmp_path / "run", echo=lambda *a: None)
    import json

    record = json.loads((tmp_path / "run" / "eval" / "test.json").read_text())
    assert len(record["per_image"]) == 2 and all(i.startswith("scene") for i in record["per_image"])
    peak = max(float(np.load(f).max()) for f in (tmp_path / "scenes").glob("*.npy"))  # global_max: one constant
    assert list(record["norm"].values()) == [pytest.approx(peak)] * 2
    assert record["scored"] == "the weights at the end of training: step 4, raw weights"
    from lkca_jax.evaluation import evaluate_workdir  # a later evaluation names the checkpoint it read

    lines = []
    evaluate_workdir(tmp_path / "run", which="last", echo=lines.append)
    record = json.loads((tmp_path / "run" / "eval" / "test.json").read_text())
    assert record["scored"] == f"{tmp_path / 'run' / 'checkpoints' / '4'} (step 4), raw weights"
    assert lines[0].startswith(f"Scored: {record['scored']}\n")


def test_the_first_step_asks_the_host_memory_guard_once_and_prints_its_note(tmp_path, monkeypatch):
    from lkca_jax import hostmem

    calls, lines = [], []
    monkeypatch.setattr(hostmem, "bound_growth", lambda: calls.append(1) or "host memory: a note")
    training.train_and_evaluate(tiny(steps=8, augment="none"), tmp_path, echo=lines.append)
    assert len(calls) == 1 and lines.count("host memory: a note") == 1, (calls, lines)
    # printed after the header line and before the first progress line
    assert lines.index("host memory: a note") == 1 and lines[2].startswith("step "), lines


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


# tiny(steps=48, ema_decay=0.9) with checkpoints every 8 steps, through train.py (its exit codes)
TRAIN = [sys.executable, "train.py", "--config", "configs/sample.py",
         *(f"--config.{k}={v}" for k, v in {
             **{f"model.{k}": v for k, v in TINY_MODEL.items() if not isinstance(v, dict)},  # LKCA's own
             "model.up_init_scale": 0.0,
             "train.num_steps": 48, "train.batch_size": 4, "train.log_every_steps": 4, "train.eval_every_steps": 4,
             "train.checkpoint_every_steps": 8, "train.prefetch": 0, "train.ema_decay": 0.9,
             "eval.validation_batch_size": 8}.items())]


def _params(workdir):
    """The raw and the EMA variables of the last checkpoint."""
    return [checkpoint.restore_variables(workdir, "last", weights)[1] for weights in ("raw", "ema")]


def _start_and_wait_for(workdir, step: int, **popen):
    proc = subprocess.Popen([*TRAIN, "--workdir", str(workdir)], cwd=ROOT, **popen)
    marker = workdir / "checkpoints" / str(step) / "commit_success.txt"
    deadline = time.time() + 300
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be stopped"
    return proc


def test_kill_ctrl_c_and_resume_match_an_uninterrupted_run(tmp_path):
    """SIGKILL at step 8 (the newest checkpoint is resumed), then Ctrl-C after step 24 (the run saves
    where it stopped and exits 130 in one line; a second train.py meanwhile, while the first is
    paused, is refused, naming the first one's pid), then to the end: bitwise the uninterrupted run,
    its EMA too."""
    straight = tmp_path / "straight"
    subprocess.run([*TRAIN, "--workdir", str(straight)], check=True, cwd=ROOT, timeout=600)

    stopped = tmp_path / "stopped"
    proc = _start_and_wait_for(stopped, 8)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    done = sorted(int(p.name) for p in (stopped / "checkpoints").iterdir() if p.name.isdigit())
    assert done and max(done) < 48

    proc = _start_and_wait_for(stopped, 24, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.send_signal(signal.SIGSTOP)  # paused (the tiny run is fast), holding its workdir's lock
    second = subprocess.run([*TRAIN, "--workdir", str(stopped)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    refused = second.stderr.strip()
    assert second.returncode == 2 and "\n" not in refused, second.stderr[-2000:]
    assert refused.startswith(f"error: {stopped}: another training runs in it (pid {proc.pid} on "), refused
    proc.send_signal(signal.SIGINT)  # delivered as it continues
    proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("stopped: SIGINT at step ") and "the same command resumes from it" in last, err[-2000:]
    at = int(last.split("at step ")[1].split(":")[0])
    assert 24 <= at < 48 and (stopped / "checkpoints" / str(at) / "commit_success.txt").exists()

    subprocess.run([*TRAIN, "--workdir", str(stopped)], check=True, cwd=ROOT, timeout=600)
    a, b = _params(straight), _params(stopped)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):  # bitwise, the EMA too
        np.testing.assert_array_equal(x, y)
    raw, ema = a
    assert not all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(raw), jax.tree.leaves(ema)))
    assert pathlib.Path(stopped / "eval" / "test.json").is_file()


def test_main_job_table_has_bicubic_beside_the_model_and_the_gain(tmp_path):
    """train.py on the sample ends with Bicubic and LKCA-Net in one table and the gain between them;
    the Bicubic row equals the metrics of MATLAB bicubic computed here."""
    import json

    from lkca_jax.data.datasets import load_splits
    from lkca_jax.data.spec import DataSpec
    from lkca_jax.ops.imresize import imresize_np

    out = subprocess.run([sys.executable, "train.py", "--config", "configs/sample.py", "--workdir", str(tmp_path),
                          "--config.model.depth", "1", "--config.model.features", "16",
                          "--config.train.num_steps", "4", "--config.train.log_every_steps", "4"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    table, per_image = out.stdout.split("Per image:")
    lines = table.splitlines()
    rows = [line.split("|")[1].strip() for line in lines if line.startswith("| ") and "Method" not in line]
    assert rows == ["Bicubic", "LKCA-Net"]
    gain = [line for line in lines if line.startswith("LKCA-Net against Bicubic: MPSNR ")]
    assert len(gain) == 1
    record = json.loads((tmp_path / "eval" / "test.json").read_text())
    assert gain[0].split("MPSNR ")[1].split(" dB")[0] == f"{record['mean']['MPSNR'] - record['bicubic']['MPSNR']:+.4f}"
    test = load_splits(DataSpec.of(load_config(str(ROOT / "configs/sample.py"))), ("test",))["test"]
    mse = [((hr - imresize_np(lr, 4)) ** 2).mean(axis=(0, 1)) for hr, lr in zip(test.hr, test.lr)]
    by_hand = [np.mean(-10 * np.log10(m)) for m in mse]  # PSNR per band (peak 1), mean over bands
    assert record["bicubic"]["MPSNR"] == pytest.approx(np.mean(by_hand), rel=1e-5)
    # each test image's row: Bicubic's MPSNR by hand, the model's from the record, their difference
    header, _, *image_rows = [line.strip("|").split("|") for line in per_image.strip().splitlines()]
    assert [c.strip() for c in header][:3] == ["Image", "Bicubic MPSNR", "LKCA-Net MPSNR"]
    assert [r[0].strip() for r in image_rows] == list(test.ids) and len(by_hand) == 2
    for r, mpsnr in zip(image_rows, by_hand):
        image = record["per_image"][r[0].strip()]
        assert float(r[1]) == pytest.approx(mpsnr, abs=1e-4) and float(r[2]) == pytest.approx(image["MPSNR"], abs=1e-4)
        assert float(r[-1]) == pytest.approx(image["MPSNR"] - mpsnr, abs=2e-4)


def test_a_run_with_self_ensemble_writes_the_plain_table_and_the_ensembles(tmp_path):
    """eval.self_ensemble in a training config: the run ends with the plain model's table in
    eval/test.json (what recipes, `table` and shipping read) and the ensemble's in eval/test+.json,
    whose images differ from the plain ones."""
    import json

    from lkca_jax.training import train_and_evaluate

    c = tiny_config("sample.py:vdsr", vdsr=dict(depth=3))
    c.train.num_steps, c.train.batch_size, c.train.eval_every_steps = 2, 4, 2
    c.train.checkpoint_every_steps, c.train.log_every_steps = 2, 2
    c.eval.self_ensemble, c.eval.per_image = True, False
    lines = []
    row = train_and_evaluate(c, tmp_path, echo=lines.append)
    plain = json.loads((tmp_path / "eval" / "test.json").read_text())
    ensemble = json.loads((tmp_path / "eval" / "test+.json").read_text())
    assert plain["mean"]["Method"] == "VDSR" and not plain["self_ensemble"]
    assert ensemble["mean"]["Method"] == "VDSR+" and ensemble["self_ensemble"] and row["Method"] == "VDSR+"
    assert ensemble["mean"]["MPSNR"] != plain["mean"]["MPSNR"]
    assert plain["bicubic"]["MPSNR"] == ensemble["bicubic"]["MPSNR"]

