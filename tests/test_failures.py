"""Nothing lost when things go wrong: failed writes (a file-size limit, a full filesystem, GDAL's own
errors), two trainings on one workdir, a damaged checkpoint, bad config values, Ctrl-C, a killed
``sr``, and the modes of written files. docs/failures.md lists each case and what happens."""

import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, tiny_config
from lkca_jax import checkpoint
from lkca_jax.__main__ import main as cli
from lkca_jax.atomic import atomic_write
from lkca_jax.config import check
from lkca_jax.data.io import DataError, gdal, read, write_cube

FORMATS = [".tif", ".hdr", ".npy", ".mat"]
BIG = (96, 96, 102)  # 3.8 MB of float32


def _existing(path):
    """An older, small output at ``path`` that a failed write must leave as it was."""
    write_cube(path, np.full((4, 3, 2), 7.0, np.float32))
    return sorted(p.name for p in path.parent.iterdir())


def _assert_kept(path, names_before):
    assert sorted(p.name for p in path.parent.iterdir()) == names_before  # no temporary file left
    np.testing.assert_array_equal(read(path), np.full((4, 3, 2), 7.0))


@pytest.mark.parametrize("suffix", FORMATS)
def test_a_file_size_limit_fails_the_write_and_keeps_the_target(tmp_path, suffix):
    """``ulimit -f``: each write fails with one line naming the target, which stays as it was."""
    out = tmp_path / f"out{suffix}"
    before = _existing(out)
    data = np.random.default_rng(0).random(BIG, np.float32)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, hard))  # Python ignores SIGXFSZ: writes get EFBIG
    try:
        with pytest.raises(DataError) as err:
            write_cube(out, data)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    message = str(err.value)
    assert message.startswith(f"{out.with_suffix('.img') if suffix == '.hdr' else out}: cannot write it (")
    assert "\n" not in message
    _assert_kept(out, before)


FULL_DISK = """
import sys
import numpy as np
from lkca_jax.data.io import DataError, write_cube
out = sys.argv[1]
write_cube(out, np.full((4, 3, 2), 7.0, np.float32))
try:
    write_cube(out, np.random.default_rng(0).random((96, 96, 102), np.float32))
except DataError as err:
    print("refused:", err)
"""


@pytest.mark.parametrize("suffix", FORMATS)
def test_a_full_filesystem_fails_the_write_and_keeps_the_target(tmp_path, suffix):
    """A 2 MB tmpfs, mounted in a user namespace (no root needed where the kernel allows it)."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare here: the simulated GDAL error below covers the error path")
    mount = tmp_path / "small"
    mount.mkdir()
    out = mount / f"out{suffix}"
    script = f"mount -t tmpfs -o size=2m tmpfs {mount} && {sys.executable} -c '{FULL_DISK}' {out} && ls -a {mount}"
    run = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    if run.returncode and "mount" in run.stderr:
        pytest.skip(f"cannot mount a tmpfs here ({run.stderr.strip()[:100]})")
    assert run.returncode == 0, run.stderr[-2000:]
    refused = [line for line in run.stdout.splitlines() if line.startswith("refused:")]
    target = out.with_suffix(".img") if suffix == ".hdr" else out
    assert refused and f"{target}: cannot write it (" in refused[0], run.stdout
    names = [n for n in run.stdout.splitlines()[len(refused):] if n not in (".", "..")]
    expect = {".hdr": ["out.hdr", "out.img"]}.get(suffix, [out.name])
    assert names == expect, run.stdout  # the old file only: no temporary left on the full disk


def test_an_error_gdal_only_logs_fails_the_write(tmp_path, monkeypatch):
    """GDAL reports some write errors only through rasterio's logger (a raw ENVI band at close):
    simulated here, on any machine."""
    out = tmp_path / "out.hdr"
    before = _existing(out)
    real = gdal.Writer._write

    def failing(self, row, block):
        real(self, row, block)
        logging.getLogger("rasterio._env").info("GDAL signalled an error: err_no=3, msg='I/O error'")

    monkeypatch.setattr(gdal.Writer, "_write", failing)
    with pytest.raises(DataError, match=r"out\.img: cannot write it \(GDAL: I/O error\)"):
        write_cube(out, np.zeros((8, 8, 2), np.float32))
    _assert_kept(out, before)
    assert not any(isinstance(h, gdal._Errors) for h in logging.getLogger("rasterio").handlers)  # gone after


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_written_files_get_the_umask_s_mode_and_an_overwrite_keeps_its_mode(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        for suffix in FORMATS:
            write_cube(tmp_path / f"new{suffix}", np.zeros((4, 3, 2), np.float32))
        atomic_write(tmp_path / "new.json", lambda tmp: open(tmp, "w").write("{}"))
        for f in tmp_path.iterdir():  # the ENVI header too
            assert f.stat().st_mode & 0o777 == mode, (f, oct(f.stat().st_mode))
        for f in ("new.tif", "new.hdr", "new.json"):
            (tmp_path / f).chmod(0o604)
        write_cube(tmp_path / "new.tif", np.ones((4, 3, 2), np.float32))
        write_cube(tmp_path / "new.hdr", np.ones((4, 3, 2), np.float32))
        atomic_write(tmp_path / "new.json", lambda tmp: open(tmp, "w").write("[]"))
        for f in ("new.tif", "new.hdr", "new.json"):
            assert (tmp_path / f).stat().st_mode & 0o777 == 0o604, f
    finally:
        os.umask(old)


def test_a_killed_writer_s_temporary_file_goes_with_the_next_write(tmp_path):
    out = tmp_path / "out.npy"
    script = ("import sys, time, numpy as np\nfrom lkca_jax.data.io import open_writer\n"
              "w = open_writer(sys.argv[1], (64, 64, 8))\nw.write_rows(0, np.ones((8, 64, 8)))\n"
              "print('writing', flush=True)\ntime.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.kill()
    proc.wait()
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".out.") and f"-{proc.pid}." in left[0]
    write_cube(out, np.zeros((4, 3, 2), np.float32))
    assert [p.name for p in tmp_path.iterdir()] == ["out.npy"]


def test_sr_killed_then_rerun_leaves_no_temporary_file_and_sigterm_cleans_up(trained_run, tmp_path):
    workdir, _, _ = trained_run
    src, out = tmp_path / "in.npy", tmp_path / "out.tif"
    np.save(src, np.random.default_rng(0).random((64, 64, 102), np.float32))
    cmd = [sys.executable, "-m", "lkca_jax", "sr", "--workdir", str(workdir), "--input", str(src),
           "--output", str(out), "--tile", "4", "--overlap", "2"]  # small tiles: seconds of writing

    def start_and_wait_for_the_temporary_file():
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 300
        while not any(p.name.startswith(".out.") for p in tmp_path.iterdir()) and proc.poll() is None \
                and time.time() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, "sr finished before it could be stopped"
        return proc

    proc = start_and_wait_for_the_temporary_file()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and err.strip().splitlines()[-1].startswith("stopped: sr interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy"]

    proc = start_and_wait_for_the_temporary_file()
    proc.kill()
    proc.wait()
    assert any(p.name.startswith(".out.") for p in tmp_path.iterdir())  # SIGKILL: nothing could clean up
    assert subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=300).returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy", "out.tif"]


@pytest.mark.parametrize("window, suffix", [("created", ".tif"), ("opened", ".tif"), ("opened", ".hdr")])
def test_an_interrupt_before_the_writer_can_clean_up_leaves_no_temporary_file(trained_run, tmp_path, monkeypatch,
                                                                              window, suffix):
    """A signal raises wherever the main thread is: here just after the temporary file exists but
    before the writer's ``try`` (created), or after the writer has opened it (GDAL writing the ENVI
    header beside it) but before ``with`` could take it over (opened). SIGTERM landed there once in
    CI (.out.<host>-<pid>.<random>.tif left behind)."""
    import lkca_jax.data.io.base as base
    import lkca_jax.inference as inference

    def then_interrupt(real):
        def wrapped(*args, **kwargs):
            made = real(*args, **kwargs)
            if window == "opened":
                made._close()  # GDAL's state restored for the tests after this one; the files stay
            raise KeyboardInterrupt
        return wrapped

    if window == "created":
        monkeypatch.setattr(base, "temp_beside", then_interrupt(base.temp_beside))
    else:
        monkeypatch.setattr(inference, "open_writer", then_interrupt(inference.open_writer))
    workdir, _, _ = trained_run
    src, out = tmp_path / "in.npy", tmp_path / f"out{suffix}"
    np.save(src, np.random.default_rng(0).random((8, 8, 102), np.float32))
    assert cli(["sr", "--workdir", str(workdir), "--input", str(src), "--output", str(out)]) == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy"]


@pytest.mark.parametrize("field, value, words", [
    ("train.batch_size", -16, "train.batch_size must be a whole number >= 1, got -16"),
    ("train.batch_size", 0, "train.batch_size must be a whole number >= 1, got 0"),
    ("train.learning_rate", 0.0, "train.learning_rate must be > 0"),
    ("train.ema_decay", 1.0, "train.ema_decay must be in [0, 1)"),
    ("train.grad_accum_steps", 0, "train.grad_accum_steps must be a whole number >= 1"),
    ("train.log_every_steps", 0, "train.log_every_steps must be a whole number >= 1"),
    ("train.keep_checkpoints", 0, "train.keep_checkpoints must be a whole number >= 1"),
    ("train.loss", "l2", "train.loss must be one of hloss | mse | sspsr"),
    ("train.parallel", "dp", "train.parallel must be one of pmap | jit"),
    ("train.compute_dtype", "fp8", "train.compute_dtype must be one of float32 | bfloat16 | float16"),
    ("model.norm", "group", "model.norm must be one of layer | batch"),
    ("model.scale", 1, "model.scale must be a whole number >= 2"),
    ("model.drop_path_rate", 1.5, "model.drop_path_rate must be in [0, 1)"),
    ("data.val_fraction", -0.1, "data.val_fraction must be in [0, 1)"),
    ("eval.batch_size", 0, "eval.batch_size must be a whole number >= 1"),
    ("teacher.decay_epochs", 0.0, "teacher.decay_epochs must be > 0"),
    ("model.name", "unet", "model.name 'unet' is none of"),
])
def test_each_bad_config_value_is_refused_naming_its_field(field, value, words):
    c = tiny_config()
    check(c)  # the config as shipped passes
    section, name = field.split(".")
    c[section][name] = value
    with pytest.raises(ValueError) as err:
        check(c)
    assert str(err.value).startswith("config: ") and words in str(err.value)


def test_train_py_refuses_bad_values_before_anything_is_written(tmp_path):
    missing = str(tmp_path / "no_such_run")
    for args, words in ((["--config", "configs/sample.py", "--config.train.batch_size", "-16"], "batch_size"),
                        (["--config", "configs/sample.py", "--config.train.num_epochs", "0"], "num_epochs"),
                        (["--config", "configs/sample.py:x4,unet"], "unet"),
                        (["--config", "configs/none.py"], "none.py"),
                        (["--config", "configs/sample.py", "--config.train.init_from", missing],
                         f"train.init_from {missing}: neither a run folder nor a shipped model"),
                        (["--config", "configs/sample.py:x4,kd", "--config.teacher.workdir", "cave-x4-lkca-nope"],
                         "teacher.workdir cave-x4-lkca-nope: neither a run folder nor a shipped model"),
                        (["--config", "configs/sample.py:x4,kd"], "needs config.teacher.workdir")):
        workdir = tmp_path / "run"
        out = subprocess.run([sys.executable, "train.py", "--workdir", str(workdir), *args], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
        err = out.stderr.strip()
        assert out.returncode == 2 and err.startswith("error: ") and "\n" not in err, (args, out.stderr[-1500:])
        assert words in err, (args, err)
        assert not workdir.exists(), args


def test_a_damaged_newest_checkpoint_is_moved_aside_and_the_run_finishes(tmp_path):
    from test_training import tiny

    from lkca_jax import training

    c = tiny(steps=8)
    training.train_and_evaluate(c, tmp_path, echo=lambda *a: None)
    for f in (tmp_path / "checkpoints" / "8" / "variables").rglob("*"):
        if f.is_file():
            f.write_bytes(b"garbage")
    # inference falls back to the newest checkpoint that loads, with a warning, moving nothing
    with pytest.warns(UserWarning, match=r"checkpoints/8 \(.*cannot be restored; using .*checkpoints/4"):
        _, _, meta = checkpoint.restore_variables(tmp_path, "last")
    assert meta["step"] == 4 and (tmp_path / "checkpoints" / "8").is_dir()
    # training moves it aside, resumes from step 4 and writes step 8 again (before: 'already exists')
    with pytest.warns(UserWarning, match=r"moved to .*damaged/checkpoints-8"):
        training.train_and_evaluate(c, tmp_path, echo=lambda *a: None)
    assert (tmp_path / "damaged" / "checkpoints-8" / "variables").is_dir()
    ckpts = checkpoint.Checkpoints(tmp_path)
    assert ckpts.last.all_steps() == [4, 8]
    ckpts.close()
    assert checkpoint.restore_variables(tmp_path, "last")[2]["step"] == 8


def test_a_run_none_of_whose_checkpoints_fits_is_refused_and_nothing_moved(tmp_path):
    """Every checkpoint failing is a changed model config, not damage: refused, nothing moved."""
    from test_training import tiny

    from lkca_jax import training

    training.train_and_evaluate(tiny(steps=4), tmp_path, echo=lambda *a: None)
    config_before = (tmp_path / "config.json").read_text()
    wider = tiny(steps=8)
    wider.model.features = 24
    with pytest.raises(ValueError, match=r"none of its 1 checkpoints restores into this run's model \(step 4: \d+ "
                                         r"array\(s\) differ, first .*: stored shape \(\d+,?.*\), this run's model "
                                         r"shape .*24"):
        training.train_and_evaluate(wider, tmp_path, echo=lambda *a: None)
    assert not (tmp_path / "damaged").exists() and (tmp_path / "checkpoints" / "4").is_dir()
    assert (tmp_path / "config.json").read_text() == config_before  # still the config its checkpoints fit


def test_a_resume_on_other_data_says_so(tmp_path, recwarn):
    """Resuming with another data.path (the same bands, so it fits) trains on, with a warning naming the
    change; a resume on the same data warns nothing."""
    from test_training import tiny

    from conftest import ROOT
    from lkca_jax import training

    with np.load(ROOT / "lkca_jax/data/sample/pavia_rosis_100.npz") as f:
        np.save(tmp_path / "other.npy", f["data"][::-1])  # the sample upside down: other data, same shape
    run = tmp_path / "run"
    training.train_and_evaluate(tiny(steps=4), run, echo=lambda *a: None)
    training.train_and_evaluate(tiny(steps=8), run, echo=lambda *a: None)
    assert not [w for w in recwarn if "other data" in str(w.message)]
    moved = tiny(steps=12)
    moved.data.path = str(tmp_path / "other.npy")
    training.train_and_evaluate(moved, run, echo=lambda *a: None)
    said = [str(w.message) for w in recwarn if "other data" in str(w.message)]
    assert len(said) == 1 and said[0].startswith(f"{run}: resumed on other data") and "other.npy" in said[0]


def test_train_resumes_from_the_workdirs_own_config_with_overrides(tmp_path, capsys):
    """`train --workdir RUN` without --config resumes with RUN's config.json (overrides apply to it:
    here a longer schedule); a folder without one is refused in one line."""
    from test_training import tiny

    from lkca_jax import checkpoint, training
    from lkca_jax.__main__ import main

    training.train_and_evaluate(tiny(steps=4), tmp_path / "run", echo=lambda *a: None)
    assert main(["train", "--workdir", str(tmp_path / "run"), "--config.train.num_steps", "8"]) == 0
    assert "resumed from step 4" in capsys.readouterr().out
    assert checkpoint.newest_meta(tmp_path / "run")["step"] == 8
    assert checkpoint.load_config(tmp_path / "run").train.num_steps == 8
    assert main(["train", "--workdir", str(tmp_path / "none")]) == 2
    said = capsys.readouterr().err.strip()
    assert said == f"error: {tmp_path / 'none'}: no config.json to resume from; give --config"
    assert not (tmp_path / "none").exists()


def test_a_resumed_run_logs_each_step_once(tmp_path):
    """What a killed run logged after its last checkpoint (steps it runs again on resume, and a torn
    last line) is dropped from metrics.jsonl when it resumes: each step's record is there once."""
    import json

    from test_training import tiny

    from lkca_jax import training

    training.train_and_evaluate(tiny(steps=4), tmp_path, echo=lambda *a: None)
    log = tmp_path / "metrics.jsonl"
    before = log.read_text()
    with open(log, "a") as f:  # as if the run had gone on past step 4 and been killed mid-line
        f.write(json.dumps({"step": 6, "loss": 123.0}) + "\n" + '{"step": 7, "lo')
    training.train_and_evaluate(tiny(steps=8), tmp_path, echo=lambda *a: None)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert log.read_text().startswith(before) and 123.0 not in [r.get("loss") for r in records]
    losses = [r["step"] for r in records if "loss" in r]
    assert losses == sorted(set(losses)) and losses[-1] == 8


def test_a_reader_lists_again_when_training_replaces_the_step_it_chose(tmp_path, monkeypatch, recwarn):
    """A training that finds a better model writes best/<new> and deletes best/<old>: a reader that
    listed best/<old> just before reads best/<new>, with no warning (nothing is damaged)."""
    import orbax.checkpoint as ocp
    from test_training import tiny

    from lkca_jax import training

    training.train_and_evaluate(tiny(steps=8), tmp_path, echo=lambda *a: None)
    best = tmp_path / "best"
    (step,) = [int(p.name) for p in best.iterdir() if p.name.isdigit()]
    real, calls = ocp.CheckpointManager.restore, []

    def replaced_meanwhile(self, at, *args, **kwargs):
        calls.append(at)
        if len(calls) == 1:  # the training replaces best/<step> by best/<step + 100> as this reader starts
            (best / str(at)).rename(best / str(at + 100))
            raise FileNotFoundError(f"{best / str(at)} vanished")
        return real(self, at, *args, **kwargs)

    monkeypatch.setattr(ocp.CheckpointManager, "restore", replaced_meanwhile)
    _, _, meta = checkpoint.restore_variables(tmp_path, "best")
    assert calls == [step, step + 100] and meta["step"] == step
    assert not [w for w in recwarn if "cannot be restored" in str(w.message)]


def test_a_workdir_is_locked_by_the_process_that_trains_in_it(tmp_path):
    from test_training import tiny

    from lkca_jax import training

    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom lkca_jax.checkpoint import WorkdirLock\n"
                               "lock = WorkdirLock(sys.argv[1])\nprint('locked', flush=True)\ntime.sleep(600)\n",
                               str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(checkpoint.WorkdirBusy, match=f"another training runs in it \\(pid {holder.pid} on "):
            training.train_and_evaluate(tiny(steps=4), tmp_path, echo=lambda *a: None)
        assert sorted(p.name for p in tmp_path.iterdir()) == [".lock"]  # nothing written beside the lock
    finally:
        holder.kill()
        holder.wait()
    with checkpoint.WorkdirLock(tmp_path):  # the OS released it with the process: no stale lock
        pass


def test_messages_name_their_file_and_warn_where_output_would_mislead(trained_run, tmp_path, capsys):
    import json

    workdir, _, _ = trained_run
    bad = tmp_path / "objects.npz"
    np.savez(bad, cube=np.zeros((4, 4, 102), np.float32), names=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataError, match=r"objects\.npz: array 'names' is not readable \(.*allow_pickle"):
        read(bad)

    flat = tmp_path / "flat.npy"
    np.save(flat, np.full((8, 8, 102), 0.25, np.float32))
    assert cli(["sr", "--workdir", str(workdir), "--input", str(flat), "--output", str(tmp_path / "o.npy")]) == 0
    assert f"warning: {flat}: every band is constant" in capsys.readouterr().err

    nan = tmp_path / "nodata.tif"
    from affine import Affine

    from lkca_jax.data.io import Georef

    write_cube(nan, np.full((4, 4, 3), np.nan, np.float32), georef=Georef(None, Affine.identity(), float("nan")))
    assert cli(["inspect", str(nan)]) == 0
    assert "no finite value" in capsys.readouterr().out

    runs = []
    for n, (dataset, scale) in enumerate((("pavia", 4), ("pavia", 8))):
        run = tmp_path / f"run{n}"
        (run / "eval").mkdir(parents=True)
        row = {"Method": "LKCA-Net", "Param": 1e6, "Flops": 1e9, **{k: 1.0 for k in
               ("MPSNR", "MSSIM", "SAM", "CC", "RMSE", "ERGAS", "s/img")}}
        (run / "eval" / "test.json").write_text(json.dumps({"dataset": dataset, "scale": scale, "mean": row}))
        runs.append(str(run))
    assert cli(["table", "--workdir", *runs]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| Dataset | Ratio | Method |")
    assert lines[2].startswith("| pavia | x4 | LKCA-Net |") and lines[3].startswith("| pavia | x8 | LKCA-Net |")
