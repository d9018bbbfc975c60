"""recipes/cave_study.py: every run of the study is a command whose config fields exist, at both sizes."""

import importlib.util
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT
from lkca_jax.config import load_config, split_overrides


def study():
    spec = importlib.util.spec_from_file_location("cave_study", ROOT / "recipes" / "cave_study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("paper", [False, True])
def test_every_study_command_loads_its_config(paper):
    """Every run of the study, the ablations and the compared methods included: five x4 seeds of LKCA-Net,
    LKCA-LR, LKCA-KD and the clipped control, five x8 seeds of the same four, each KD run with the
    teacher of its scale and seed and the KD weight decaying 30 times, EMA on everywhere."""
    s = study()
    out = pathlib.Path("runs/study")
    planned = s.plan(out, paper, ablations=True)
    runs = planned + s.compared_runs(paper, None if paper else {
        name: 100 + i for i, (name, *_) in enumerate(s.COMPARED)}) + s.ship_runs(out, planned, paper)
    names = [r["name"] for r in runs]
    assert len(set(names)) == len(runs)
    want = {f"{p}lkca_{v}_s{seed}" for p in ("", "x8_") for v in ("net", "lr", "kd", "lr_clip") for seed in range(5)}
    assert want <= set(names) and {"bicubic", "vdsr", "fcnn3d", "sspsr", "msdformer", "essaformer"} <= set(names)
    for run in runs:
        cmd = s.command(run, out)
        rest, overrides = split_overrides(cmd[2:])
        spec = rest[rest.index("--config") + 1]
        config = load_config(str(ROOT / spec), overrides)  # raises on a field that does not exist
        assert (config.variant, config.model.scale) == (run["method"], run["scale"])
        if run["method"] == "bicubic":
            continue
        assert config.train.ema_decay == (0.999 if paper else 0.99) and config.train.schedule == "cosine"
        if run["group"] == "ship":  # the hand-set values of the module docstring, the rest as seed 0's run
            base = load_config(str(ROOT / spec), split_overrides(s.command(
                next(r for r in runs if r["name"] == s.run_name(run["variant"], 0, run["scale"])), out)[2:])[1])
            if run["scale"] == 4 and run["name"] == s.ship_name(run["variant"], 4):  # wider, from scratch, longer
                want_train = {"init_from": "", "num_steps": 7200, "learning_rate": 1e-3}
            elif run["scale"] == 4:  # then that run continued from its last EMA weights, as wide
                assert run["name"] == s.ship_name(run["variant"], 4, 1) == f"ship_x4_lkca_{run['variant']}_stage2"
                want_train = {"init_from": str(out / s.ship_name(run["variant"], 4)), "init_which": "last",
                              "num_steps": 2400, "learning_rate": 5e-4}
            else:  # seed 0 continued from its best EMA weights
                want_train = {"init_from": str(out / s.run_name(run["variant"], 0, 8)), "num_steps": 2400,
                              "learning_rate": 5e-4}
                assert config.model.to_dict() == base.model.to_dict()
            if run["scale"] == 4:
                assert (config.model.depth, config.model.features, base.model.features) == (4, 96, 64)
                assert config.model.to_dict() == {**base.model.to_dict(), "features": 96}
            assert config.train.to_dict() == {**base.train.to_dict(), **want_train}
        if run["method"] == "kd":  # each KD run learns from the study teacher of its scale and seed
            teacher = run["name"].replace("_kd", "_net") if run["group"] == "ship" else \
                s.run_name("net", run["seed"], run["scale"])
            assert config.teacher.workdir == str(out / teacher)
            assert names.index(pathlib.Path(config.teacher.workdir).name) < names.index(run["name"])
            steps_per_epoch = s.PATCHES[run["scale"]] * 8 // config.train.batch_size  # as the trainer counts
            epochs = config.train.num_steps / steps_per_epoch if config.train.num_steps else config.train.num_epochs
            assert config.teacher.decay_epochs == pytest.approx(epochs / 30, rel=1e-4)
        if run["group"] == "seeds":  # the control is clipped exactly as KD, the others not at all
            assert config.train.grad_clip_norm == (0.1 if run["variant"] in ("kd", "lr_clip") else 0.0)
        if run["method"] in ("net", "lr", "kd") and run["group"] != "ship":
            want = (16, 128, 300, 0) if paper else (4, 64, 300, s.sizes(False)["steps"])  # steps > 0 win
            assert (config.model.depth, config.model.features, config.train.num_epochs, config.train.num_steps) == want
        if run["group"] == "compared" and not paper:  # the budget's steps, the reduced widths of the labels
            assert config.train.num_steps == 100 + [c[0] for c in s.COMPARED].index(run["name"])
            width = {"sspsr": 32, "msdformer": 60, "essaformer": 32}.get(run["method"])
            if width:
                assert config.model[run["method"]].features == width and f"width {width}" in run["label"]
            assert config.model.get("bicubic_residual", False) == (run["name"].endswith("_residual") or run["method"] in
                                                     ("vdsr", "fcnn3d"))


# ------------------------------------------------------------------------------ recipes/paper.py

def paper_recipe():
    spec = importlib.util.spec_from_file_location("paper_recipe", ROOT / "recipes" / "paper.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


NINE = ["bicubic", "vdsr", "fcnn3d", "sspsr", "msdformer", "essaformer", "net", "lr", "kd"]
# The number of runs of each table at one seed (teachers and reference rows included), counted by hand:
# I the six depths; II-IV the LKCA-Net teacher, LKCA-LR and the KD settings (II 4, III 5, IV 2);
# V-VII nine methods at two scales.
RUNS = {"I": 6, "II": 6, "III": 7, "IV": 4, "V": 18, "VI": 18, "VII": 18}


@pytest.mark.parametrize("table", sorted(RUNS))
@pytest.mark.parametrize("size", ["paper", "cpu", "tiny"])
def test_every_paper_recipe_command_loads_its_config(table, size, tmp_path):
    r = paper_recipe()
    runs = r.plan(table, r.TABLE_DATASET[table], size, 2, tmp_path, "/data/file.mat")
    bicubic = sum(run["method"] == "bicubic" for run in runs)
    assert len(runs) == 2 * RUNS[table] - bicubic and len({run["name"] for run in runs}) == len(runs)
    names = [run["name"] for run in runs]
    for run in runs:
        cmd = r.command(run)
        assert cmd[0] == ("evaluate.py" if run["method"] == "bicubic" else "train.py")
        rest, overrides = split_overrides(cmd[5:])
        assert not rest
        config = load_config(str(ROOT / run["config"]), overrides)  # raises on a field that does not exist
        assert (config.variant, config.model.scale) == (run["method"], run["scale"])
        if run["method"] == "kd":  # its teacher: the LKCA-Net of its scale and seed, trained before it
            teacher = next(t for t in runs if t["name"] == run["teacher"])
            assert (teacher["method"], teacher["scale"], teacher["seed"]) == ("net", run["scale"], run["seed"])
            assert names.index(teacher["name"]) < names.index(run["name"])
            assert config.teacher.workdir == str(tmp_path / teacher["name"])
        if size == "paper" and run["method"] != "bicubic":  # the configs as shipped, the seed aside
            assert set(overrides) == {"train.seed", "data.path"} | {k for k in overrides if k.startswith("teacher.")
                                                                    or k == "model.depth"}
            from lkca_jax.methods import METHODS  # the paper's 300 epochs, or the method's published recipe

            assert config.train.num_epochs == METHODS[run["method"]].train.get("num_epochs", 300)
            assert config.train.batch_size == METHODS[run["method"]].train.get("batch_size", 32)
        if size == "tiny":
            assert config.data.protocol == "sample" and config.data.path.endswith(f"{r.TABLE_DATASET[table]}.npz")
    if table == "I":
        depths = sorted(load_config(str(ROOT / run["config"]), split_overrides(r.command(run)[5:])[1]).model.depth
                        for run in runs if run["seed"] == 0)
        want = {"paper": [4, 8, 16, 32, 48, 64], "cpu": [1, 2, 4, 8, 12, 16], "tiny": [1, 1, 1, 2, 3, 4]}
        assert depths == want[size]


@pytest.mark.parametrize("dataset", ["chikusei", "houston", "pavia", "cave"])
def test_every_tiny_model_builds_at_the_datasets_band_count(dataset, tmp_path):
    """The tiny size's shared overrides (e.g. SSPSR's and MSDformer's band groups) fit every dataset the
    recipe knows, down to CAVE's 31 bands: each model is constructed (its checks run), not trained."""
    from lkca_jax.data.registry import DATASETS
    from lkca_jax.models import build_model

    r = paper_recipe()
    for run in r.plan("V", dataset, "tiny", 1, tmp_path, None):
        config = load_config(str(ROOT / run["config"]), split_overrides(r.command(run)[5:])[1])
        assert config.model.bands == DATASETS[dataset].bands
        build_model(config)


def test_kd_decay_scaled_to_the_run(tmp_path):
    """At cpu size the KD weight decays 30 times over the run, as the paper's every 10 of 300 epochs:
    Chikusei x4 has 3465 training patches (SSPSR's protocol) before 10 % go to validation."""
    r = paper_recipe()
    kd = next(run for run in r.plan("V", "chikusei", "cpu", 1, tmp_path, "/d.mat") if run["method"] == "kd"
              and run["scale"] == 4)
    patches = 3465 - round(0.1 * 3465)
    assert kd["overrides"]["teacher.decay_epochs"] == pytest.approx(1200 * 16 / (8 * patches) / 30, rel=1e-3)


def run_recipe(*args, **kw):
    return subprocess.run([sys.executable, "recipes/paper.py", *args], cwd=ROOT, capture_output=True, text=True, **kw)


def test_paper_recipe_refuses_bad_arguments(tmp_path):
    res = run_recipe("--table", "V", "--scale", "cpu", "--out", str(tmp_path / "t"))
    assert res.returncode == 2 and "--data" in res.stderr and "naotoyokoya" in res.stderr
    res = run_recipe("--table", "VIII", "--scale", "tiny", "--out", str(tmp_path / "t"))
    assert res.returncode == 2 and "VIII" in res.stderr
    res = run_recipe("--table", "V", "--scale", "tiny", "--shard", "3/2", "--out", str(tmp_path / "t"))
    assert res.returncode == 2 and "3/2" in res.stderr
    res = run_recipe("--table", "V", "--scale", "tiny", "--dataset", "sample", "--out", str(tmp_path / "t"))
    assert res.returncode == 2 and "chikusei" in res.stderr  # the datasets whose scene sizes it knows
    assert not (tmp_path / "t" / "commands.sh").exists()
    (tmp_path / "t").mkdir()  # a folder of another size's runs: their names would be taken for this size's
    (tmp_path / "t" / "recipe.json").write_text('{"dataset": "chikusei", "size": "cpu", "data": "/d.mat"}')
    res = run_recipe("--table", "IV", "--scale", "tiny", "--out", str(tmp_path / "t"))
    assert res.returncode == 2 and "size 'cpu'" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def check_report(out, table, dataset, finished=True, methods=()):
    """Every row the paper prints (of ``methods``, when given) is in the report with the paper's value
    from the paper's text (typed checks in tests/test_paper.py), ours and the difference where the
    run finished, and every run's command in commands.sh."""
    from lkca_jax import paper

    report = json.loads((out / "report.json").read_text())
    assert report["table"] == table and report["size"] == "tiny"
    assert report == json.loads((out / f"table_{table}.json").read_text())
    if finished:
        assert report["runs_finished"] == report["runs"]
    rows = {(row["scale"], row["method"], row["setting"]): row for row in report["rows"] if not row["reference"]}
    printed = [e for e in paper.entries(table, dataset=dataset) if not methods or e.method in methods]
    assert set(rows) == {(e.scale, e.method, e.setting) for e in printed}
    for e in printed:
        row = rows[(e.scale, e.method, e.setting)]
        assert row["paper"]["MPSNR"] == e.value("MPSNR")
        if row["ours"]["MPSNR"].get("n"):
            assert row["difference"]["MPSNR"] == pytest.approx(row["ours"]["MPSNR"]["mean"] - e.value("MPSNR"))
        else:
            assert not finished and row["difference"]["MPSNR"] is None
    text = (out / "report.md").read_text()
    assert "mean nothing" in text and "stand-in" in text
    assert f"Runs finished: {report['runs_finished']} of {report['runs']}" in text
    first, *lines = (out / "commands.sh").read_text().splitlines()
    assert first.startswith("# ") and str(ROOT) in first  # where to run them from
    assert all(line.startswith(("python train.py", "python evaluate.py")) for line in lines)
    done = [r for row in report["rows"] for r in row["runs"] if r["finished"]]
    assert all(any(f"--workdir {out}/{r['name']} " in line for line in lines) for r in done)
    return report, text


def table_row(text: str, label: str, which: str = "paper") -> str:
    """The report's line of ``which`` (ours, paper or difference) under the row labelled ``label``."""
    block = text.split(f"| {label} |")[1].splitlines()
    return block[0] if which == "ours" else block[{"paper": 1, "difference": 2}[which]]


def test_tables_i_to_v_at_tiny_in_one_folder(tmp_path):
    """Every run of Tables I-V at tiny in one folder, as a user with the Chikusei file would run them:
    Table V, then Table I in two shards (the first alone shows the other's rows as not finished;
    --report-only merges them), II, III, and IV at two seeds. Each report lists every printed row
    with the paper's value beside ours, and the runs the tables share (LKCA-Net, LKCA-LR and LKCA-KD
    at the paper's setting) run once."""
    out = tmp_path / "chikusei"
    # (table, shard, seeds, the runs it adds, the table's runs finished after it). Table I's shard 1/2
    # is depths 4, 16 (V's LKCA-Net) and 48; II adds three KD runs (gamma 0.66 is V's LKCA-KD), III
    # four (lambda0 0.010 is V's), IV at two seeds its L1 + gradient run and seed 1 of its four runs.
    for table, shard, seeds, added, done in (("V", "1/1", 1, 18, 18), ("I", "1/2", 1, 2, 3), ("I", "2/2", 1, 3, 6),
                                             ("II", "1/1", 1, 3, 6), ("III", "1/1", 1, 4, 7), ("IV", "1/1", 2, 5, 8)):
        before = len((out / "commands.sh").read_text().splitlines()) if (out / "commands.sh").exists() else 1
        res = run_recipe("--table", table, "--scale", "tiny", "--shard", shard, "--seeds", str(seeds),
                         "--out", str(out))
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        assert len((out / "commands.sh").read_text().splitlines()) - before == added
        report, text = check_report(out, table, "chikusei", finished=(table, shard) != ("I", "1/2"))
        assert report["runs_finished"] == done
        if table in ("II", "III"):
            refs = [row for row in report["rows"] if row["reference"]]
            assert [(row["method"], row["paper"]["MPSNR"]) for row in refs] == [("net", 40.3106), ("lr", 40.1691)]
        if table == "I" and shard == "1/2":  # the depths 4-64, each with the paper's values
            for depth, mpsnr in [(4, "39.7607"), (8, "40.0476"), (16, "40.3106"), (32, "40.5037"),
                                 (48, "40.5590"), (64, "40.5793")]:
                assert mpsnr in table_row(text, f"LKCA-Net, {depth} LKBs")
            assert table_row(text, "LKCA-Net, 48 LKBs", "ours").startswith(" ours (n=1 of 1) |")
            assert table_row(text, "LKCA-Net, 64 LKBs", "ours").startswith(" ours | not finished |")
        if table == "V":  # nine methods at x4 and x8
            assert {(row["scale"], row["method"]) for row in report["rows"]} == {(s, m) for s in (4, 8) for m in NINE}
            net = table_row(text, "LKCA-Net x4")
            assert "40.3106" in net and "3.707M" in net and "0.867G" in net
            assert table_row(text, "ESSAformer x8", "ours").startswith(" ours (n=1 of 1) |")
        if table == "IV":  # two seeds a row: the mean and the sample std of the two runs' test tables
            assert "| Row | | MPSNR | MSSIM | SAM | ERGAS |" in text  # Table IV prints four metrics
            for row in report["rows"]:
                runs = [json.loads((out / r["name"] / "eval" / "test.json").read_text())["mean"]["MPSNR"]
                        for r in row["runs"]]
                assert len(runs) == 2 and row["ours"]["MPSNR"]["n"] == 2
                assert row["ours"]["MPSNR"]["mean"] == pytest.approx(np.mean(runs))
                assert row["ours"]["MPSNR"]["std"] == pytest.approx(np.std(runs, ddof=1))
            assert table_row(text, "LKCA-KD, L1 + gradient", "ours").startswith(" ours (n=2 of 2) |")
    assert run_recipe("--table", "I", "--scale", "tiny", "--report-only", "--out", str(out)).returncode == 0
    report, text = check_report(out, "I", "chikusei")  # the two shards' runs in one report
    assert report["runs_finished"] == 6 and "not finished" not in text
    for table in ("I", "II", "III", "IV", "V"):  # every table's report kept beside the last one's
        assert json.loads((out / f"table_{table}.json").read_text())["runs_finished"] == json.loads(
            (out / f"table_{table}.json").read_text())["runs"]


def test_table_vi_at_tiny_interrupted_and_resumed(tmp_path):
    """Table VI (Houston, 48 bands) at tiny, its LKCA-Net and LKCA-KD rows (--methods; Table V runs
    every method): Ctrl-C (SIGINT to the process group) once the first run has finished, then the
    same command: the finished run is not run again, the others finish, and the report holds just
    those rows."""
    out = tmp_path / "t6"
    cmd = ["--table", "VI", "--scale", "tiny", "--methods", "net,kd", "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "recipes/paper.py", *cmd], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    first = out / "houston_x4_net_s0" / "eval" / "test.json"
    deadline = time.time() + 300
    while not first.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert first.is_file()
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=120) == 130 and "the same command resumes" in proc.stderr.read()
    stamp = first.stat().st_mtime_ns
    assert not (out / "houston_x8_kd_s0" / "eval" / "test.json").exists()
    res = run_recipe(*cmd)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert first.stat().st_mtime_ns == stamp
    lines = (out / "commands.sh").read_text().splitlines()
    assert sum(f"--workdir {out}/houston_x4_net_s0 " in line for line in lines) == 1  # started once
    report, text = check_report(out, "VI", "houston", methods=("net", "kd"))
    assert report["runs"] == 4 and "40.3106" not in text
    assert {(row["scale"], row["method"]) for row in report["rows"]} == {(s, m) for s in (4, 8) for m in ("net", "kd")}


def test_table_vii_at_tiny_in_two_concurrent_shards(tmp_path):
    """Table VII (Pavia Centre, 102 bands) at tiny, its Bicubic, LKCA-Net and LKCA-KD rows, as two
    machines would run it: shards 1/2 and 2/2 at the same time in one folder (the KD runs of shard 2
    learn from teachers of shard 1), then --report-only: every run once, all 6 rows finished."""
    out = tmp_path / "t7"
    methods = ["--methods", "bicubic,net,kd"]
    cmd = [sys.executable, "recipes/paper.py", "--table", "VII", "--scale", "tiny", *methods, "--out", str(out)]
    procs = [subprocess.Popen([*cmd, "--shard", shard], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, start_new_session=True) for shard in ("1/2", "2/2")]
    try:
        for proc in procs:
            output = proc.communicate(timeout=900)[0]
            assert proc.returncode == 0, output[-3000:]
    finally:  # a failure or a timeout leaves neither shard (nor its train.py) running
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert run_recipe("--table", "VII", "--scale", "tiny", *methods, "--report-only", "--out", str(out)).returncode == 0
    report, text = check_report(out, "VII", "pavia", methods=("bicubic", "net", "kd"))
    assert report["runs"] == 6 and "not finished" not in text
    lines = (out / "commands.sh").read_text().splitlines()[1:]
    assert len(lines) == 6 and len({line.split("--workdir ")[1].split()[0] for line in lines}) == 6


def test_a_kd_run_waits_for_its_teacher_from_another_shard(tmp_path, monkeypatch, capsys):
    """A KD run whose teacher another shard trains waits until the teacher's test table exists, then
    runs; if the teacher fails there (its failure marker), the waiting shard stops naming it."""
    r = paper_recipe()
    monkeypatch.setattr(r, "POLL_S", 0.05)
    kd = next(run for run in r.plan("IV", "chikusei", "tiny", 1, tmp_path, None) if run["method"] == "kd")
    teacher = tmp_path / kd["teacher"] / "eval" / "test.json"
    started = []

    def train(argv, **kw):  # stands in for train.py: the run's test table appears
        started.append(teacher.is_file())
        workdir = pathlib.Path(argv[argv.index("--workdir") + 1])
        (workdir / "eval").mkdir(parents=True)
        (workdir / "eval" / "test.json").write_text("{}")
        return 0

    monkeypatch.setattr(r.subprocess, "call", train)
    looks = []
    marker = r.failed_marker

    def other_shard(out, name):  # the waiting shard looks for a failure; the third time, the teacher is done
        looks.append(name)
        if len(looks) == 3:
            teacher.parent.mkdir(parents=True)
            teacher.write_text("{}")
        return marker(out, name)

    monkeypatch.setattr(r, "failed_marker", other_shard)
    r.run_all([kd], tmp_path)
    assert looks[:3] == [kd["teacher"]] * 3 and started == [True]
    assert "waiting for its teacher" in capsys.readouterr().out
    assert r.finished(tmp_path, kd["name"])

    failing = {**kd, "name": "chikusei_x4_kd_other_s0", "teacher": "chikusei_x4_net_other_s0"}
    marker(tmp_path, failing["teacher"]).write_text("exit 1\n")
    with pytest.raises(r.RunFailed, match="chikusei_x4_net_other_s0 failed in another shard"):
        r.run_all([failing], tmp_path)
    assert len(started) == 1


def test_without_an_estimate_the_eta_comes_from_finished_runs_of_the_same_kind(tmp_path, monkeypatch, capsys):
    """Runs that differ only in seed and workdir are one kind: the ETA is their finished runs' mean
    wall-clock; a run of a kind not yet timed is counted, not guessed."""
    r = paper_recipe()
    base = {"script": "train.py", "config": "configs/cave.py:x4,lr", "teacher": None}
    runs = [{**base, "name": f"lr_s{s}", "overrides": {"train.num_steps": 10, "train.seed": s}} for s in range(4)]
    runs.append({**base, "name": "net_s0", "overrides": {"train.num_steps": 20, "train.seed": 0}})
    (tmp_path / "logs").mkdir()
    for name, wall in (("lr_s0", 600), ("lr_s1", 1200)):
        (tmp_path / name / "eval").mkdir(parents=True)
        (tmp_path / name / "eval" / "test.json").write_text("{}")
        (tmp_path / "logs" / f"{name}.json").write_text(json.dumps({"name": name, "wall_s": wall}))
    assert r.measured(runs, tmp_path) == {"lr_s0": 900, "lr_s1": 900, "lr_s2": 900, "lr_s3": 900}
    monkeypatch.setattr(r.subprocess, "call", lambda argv, **kw: 1)  # the first run fails: only the header matters
    with pytest.raises(r.RunFailed):
        r.run_all(runs, tmp_path)
    out = capsys.readouterr().out
    assert "2 of 5 runs done, 3 to go (expected 30 min + 1 run of a kind not yet timed from the wall-clock" in out
    assert "[1/3] lr_s2 (0 s so far, about 30 min + 1 run of a kind not yet timed left)" in out


def test_a_failed_run_stops_the_shard_and_still_writes_the_report(tmp_path):
    """A run that fails (here: its stand-in cube is not readable) exits 1 naming it, leaves its
    failure marker for shards waiting on it, and the report still shows what finished (nothing)."""
    out = tmp_path / "t4"
    (out / "standin").mkdir(parents=True)
    (out / "standin" / "chikusei.npz").write_bytes(b"not an npz file")
    res = run_recipe("--table", "IV", "--scale", "tiny", "--out", str(out))
    assert res.returncode == 1 and "chikusei_x4_net_s0: exit" in res.stderr
    assert (out / "logs" / "chikusei_x4_net_s0.failed").is_file()
    report = json.loads((out / "report.json").read_text())
    assert report["runs_finished"] == 0 and "not finished" in (out / "report.md").read_text()


def test_the_studys_learning_curves_colour_by_variant_and_show_bicubic(tmp_path, monkeypatch):
    """The study's x4 runs: 4 variants x 5 seeds share one colour per variant (one legend entry each),
    the shipped runs (x4's first stage trained from scratch) start at their own first step and a
    continuation after the steps of the runs it continues, the compared methods each get their own
    colour on a 0-1 axis, and Bicubic's level is drawn."""
    cs = study()
    curve = lambda last, top: [(s, top - 1 / s) for s in range(100, last + 1, 100)]
    done = {}
    for seed in range(5):
        for variant in cs.VARIANTS:
            done[cs.run_name(variant, seed)] = {"run": {"group": "seeds", "variant": variant, "scale": 4, "overrides": {
                "train.num_steps": 2400}}, "curve": curve(2400, 31 + seed / 10)}
    for variant in cs.SHIPPED:
        done[cs.ship_name(variant, 4)] = {"run": {"group": "ship", "variant": variant, "scale": 4,
                                                  "overrides": {"train.num_steps": 7200}}, "curve": curve(7200, 32)}
        done[cs.ship_name(variant, 4, 1)] = {"run": {"group": "ship", "variant": variant, "scale": 4, "overrides": {
            "train.init_from": f"runs/{cs.ship_name(variant, 4)}", "train.num_steps": 2400}}, "curve": curve(2400, 32)}
    for name, method, label, _ in cs.COMPARED:
        done[name] = {"run": {"group": "compared", "variant": method, "scale": 4, "label": label},
                      "curve": curve(300 + len(done) * 10, 30)}
    done["lkca_net_s0_svd"] = {"run": {"group": "compressed", "scale": 4}, "curve": []}
    drawn = cs.plot_curves(done, tmp_path / "curves.png", bicubic=29.5, reference="lkca_net_s2")
    by_label = {e["label"]: e for e in drawn}
    assert len(drawn) == len(by_label)  # one legend entry per label: the seeds do not repeat theirs
    variants = [by_label[f"{cs.DISPLAY[v]} (5 seeds)"] for v in cs.VARIANTS]
    assert len({e["colour"] for e in variants}) == 4 and all(e["panel"] == 0 for e in variants)
    shipped = "shipped (4 x 96, seed 0, 7200 steps, then 2400 at 0.0005)"
    for variant in cs.SHIPPED:  # both stages one legend entry, the first drawn from its own first step
        ship = by_label[f"{cs.DISPLAY[variant]}, {shipped}"]
        assert ship["colour"] == by_label[f"{cs.DISPLAY[variant]} (5 seeds)"]["colour"]
        assert ship["x"] == (100.0, 7200.0)  # its own steps: not drawn on from the seed-0 run's end
    for variant in cs.SHIPPED:  # without the first stage's curve, the second is drawn on from its 7200 steps
        done[cs.ship_name(variant, 4)]["curve"] = []
    drawn = {e["label"]: e for e in cs.plot_curves(done, tmp_path / "curves.png", bicubic=29.5)}
    assert drawn[f"LKCA-LR, {shipped}"]["x"] == (7300.0, 9600.0)
    monkeypatch.setitem(cs.SHIP, 4, ({"steps": 7200, "lr": 5e-4, "model": {}, "continues": True},))
    for variant in cs.SHIPPED:  # one stage that continues the seed-0 run
        del done[cs.ship_name(variant, 4, 1)]
        done[cs.ship_name(variant, 4)]["run"]["overrides"] = {"train.init_from": f"runs/{cs.run_name(variant, 0)}"}
        done[cs.ship_name(variant, 4)]["curve"] = curve(7200, 32)
    drawn = {e["label"]: e for e in cs.plot_curves(done, tmp_path / "curves.png", bicubic=29.5)}
    assert drawn["LKCA-KD, shipped (seed 0 continued 7200 steps)"]["x"] == (2500.0, 9600.0)  # on from step 2400
    compared = [by_label[label] for _, _, label, _ in cs.COMPARED]
    colours = {e["colour"] for e in compared}
    assert len(colours) == len(compared) and not colours & {e["colour"] for e in variants}
    assert all(e["panel"] == 1 and e["x"][1] == 1.0 for e in compared)
    assert by_label["LKCA-Net (median seed, lkca_net_s2)"]["panel"] == 1
    assert by_label["Bicubic (29.50 dB)"]["colour"] == "#000000"
    assert (tmp_path / "curves.png").stat().st_size > 10_000


def test_the_curves_bicubic_level_is_bicubic_on_the_validation_split(trained_run):
    from test_evaluation import numpy_metrics

    from lkca_jax import checkpoint
    from lkca_jax.data.datasets import load_splits
    from lkca_jax.data.spec import DataSpec
    from lkca_jax.ops.imresize import imresize_np

    workdir = trained_run[0]
    split = load_splits(DataSpec.of(checkpoint.load_config(workdir)), ("validation",))["validation"]
    hand = np.mean([numpy_metrics(hr.astype(np.float64), imresize_np(lr, 4), 4)["MPSNR"]
                    for hr, lr in zip(split.hr, split.lr)])
    assert study().validation_bicubic(workdir) == pytest.approx(hand, abs=1e-3)


def test_convergence_is_judged_on_the_last_quarter():
    flat = [(s, 31.0 + 0.5 * (1 - np.exp(-s / 100))) for s in range(100, 1201, 100)]  # saturates early
    rising = [(s, 30.0 + s / 1000) for s in range(100, 1201, 100)]  # 0.3 dB over the last 300 steps
    peaked = [(s, 31.0 + (0.3 if s == 600 else 0.0)) for s in range(100, 1201, 100)]  # best long before the end
    c = study().convergence(flat)
    assert c["converged"] and c["rise"] == pytest.approx(0.5 * (np.exp(-9) - np.exp(-12)), abs=1e-12)
    assert c["state"] == "flat"
    c = study().convergence(rising)
    assert not c["converged"] and c["rise"] == pytest.approx(0.3) and c["gap"] == 0 and c["state"] == "rising"
    c = study().convergence(peaked)  # not rising, but 0.3 dB below its best: converged, past its peak
    assert c["converged"] and c["gap"] == pytest.approx(0.3) and c["rise"] == 0 and c["state"] == "past its peak"
    falling = [(s, 32.0 - s / 1000) for s in range(100, 1201, 100)]  # declining throughout
    c = study().convergence(falling)
    assert c["converged"] and c["state"] == "past its peak" and c["trend"][0] == pytest.approx(-0.275)
    assert study().convergence([(100, 31.0)])["state"] == "too short"
    change, half = study().convergence(rising)["trend"]  # a straight line, 1 dB per 1000 steps, exactly
    assert change == pytest.approx(0.275) and half == pytest.approx(0, abs=1e-9)  # over the quarter's 1100 / 4 steps


def test_a_curves_trend_is_the_least_squares_line_with_its_95_percent_interval():
    """The last quarter's trend against SciPy's regression: its slope times the quarter's length, and
    the t-interval of that slope (n - 2 degrees of freedom). A flat noisy curve can fail the best-minus-start
    rise and still have a trend near 0, its interval saying how well the curve resolves the tolerance."""
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for n in (3, 7, 19):  # a quarter of 3 points, of eval every 100 over 2400 and over 7200 steps (dof 1, 5, 17)
        steps = np.arange(n) * 100.0 + 1000
        values = 32.0 + 1e-5 * steps + rng.normal(0, 0.015, n)
        change, half = study().trend(list(zip(steps, values)), 600.0)
        fit = scipy_stats.linregress(steps, values)
        assert change == pytest.approx(fit.slope * 600, rel=1e-9)
        assert half == pytest.approx(scipy_stats.t.ppf(0.975, n - 2) * fit.stderr * 600, rel=1e-4)
    for n in (40, 2):  # beyond 30 degrees of freedom, 30's quantile; with 2 points, a line but no interval
        steps = np.arange(n) * 100.0
        values = 32.0 + 1e-5 * steps + rng.normal(0, 0.015, n)
        change, half = study().trend(list(zip(steps, values)), 600.0)
        fit = scipy_stats.linregress(steps, values)
        assert change == pytest.approx(fit.slope * 600, rel=1e-9)
        if n == 2:
            assert np.isnan(half)
        else:
            assert half == pytest.approx(scipy_stats.t.ppf(0.975, 30) * fit.stderr * 600, rel=1e-4)
    assert all(np.isnan(study().trend([(100, 32.0), (100, 32.1)], 600.0)))  # one step twice: no line
    flat = [(s, 32.0 + (0.03 if s == 2300 else 0.0)) for s in range(100, 2401, 100)]  # one high point at the end
    c = study().convergence(flat)  # quarter from 1825 (points 1900-2400): slope 0.03 * 150 / 175000, over 575 steps
    assert c["rise"] == pytest.approx(0.03) and c["trend"][0] == pytest.approx(0.03 * 150 / 175000 * 575)
    assert c["converged"]  # the trend (0.015 dB), not the noise-biased rise (0.03 dB), judges the verdict
    assert abs(c["trend"][0]) < c["trend"][1] and c["trend"][1] > study().CONVERGED_DB
    late = [(s, 32.0 + (0.03 if s == 2400 else 0.0)) for s in range(100, 2401, 100)]  # the high point is the last
    c = study().convergence(late)  # slope 0.03 * 250 / 175000 per step: 0.0246 dB over 575
    assert c["trend"][0] == pytest.approx(0.03 * 250 / 175000 * 575) and not c["converged"]
    assert not c["widened"]
    steps = [100, 200, 300, 400, 464]  # a short run (ESSAformer's 464 steps): 2 evaluations in its last quarter
    values = [30.1, 30.5, 30.6, 30.62, 30.65]
    c = study().convergence(list(zip(steps, values)))  # so the line runs through the last 3, over 91 steps
    fit = scipy_stats.linregress(steps[-3:], values[-3:])
    assert c["widened"] == 3 and c["trend"][0] == pytest.approx(fit.slope * 91, rel=1e-9)
    assert c["trend"][1] == pytest.approx(scipy_stats.t.ppf(0.975, 1) * fit.stderr * 91, rel=1e-4)
    c = study().convergence([(100, 30.1), (200, 30.5)])  # two evaluations in all: the line runs through both
    assert c["widened"] == 2 and c["trend"][0] == pytest.approx(0.4 * 25 / 100) and np.isnan(c["trend"][1])


def test_the_study_trains_each_run_after_what_it_needs(tmp_path, monkeypatch):
    """train_all's order: x4 seeds, the shipped models' runs (x4's, then x8's seed 0 and x8's), the
    compression, the compared methods, x8's seed-0 control and seeds 1-4; every planned run once, each
    after its teacher and the run it continues."""
    s = study()
    order = []
    monkeypatch.setattr(s._recipe(), "run_all", lambda runs, out, after=None: order.extend(r["name"] for r in runs))
    monkeypatch.setattr(s, "compress", lambda out: order.append("compress"))
    monkeypatch.setattr(s, "budget_steps", lambda out, paper: {n: 10 for n, *_ in s.COMPARED})
    runs = s.plan(tmp_path, False)
    s.train_all(tmp_path, runs, False)
    x4 = [r["name"] for r in runs if r["scale"] == 4]
    ship = [f"{prefix}{v}{suffix}" for prefix, suffix in (("ship_x4_lkca_", ""), ("ship_x4_lkca_", "_stage2"),
                                                           ("x8_lkca_", "_s0"), ("ship_x8_lkca_", ""))
            for v in ("net", "lr", "kd")]
    compared = [n for n, *_ in s.COMPARED]
    rest = ["x8_lkca_lr_clip_s0"] + [f"x8_lkca_{v}_s{k}" for k in range(1, 5) for v in ("net", "lr", "kd", "lr_clip")]
    assert order[:len(x4)] == x4 and order[len(x4):len(x4) + 12] == ship
    assert order[len(x4) + 12:] == ["compress"] + compared + rest
    assert sorted(order) == sorted([r["name"] for r in runs] + ship[:6] + ship[9:] + compared + ["compress"])
    every = {r["name"]: r for r in runs + s.ship_runs(tmp_path, runs, False)}
    for name, run in every.items():
        for need in (run["overrides"].get("teacher.workdir"), run["overrides"].get("train.init_from")):
            if need:
                assert order.index(pathlib.Path(need).name) < order.index(name)


def test_at_the_papers_size_the_seed_0_runs_ship_as_trained(tmp_path, monkeypatch):
    """--paper: no continuation runs (300 epochs is the paper's schedule); x8's seed-0 runs come right
    after the x4 runs, and the shipped model of each scale and variant is its seed-0 run."""
    s = study()
    order = []
    monkeypatch.setattr(s._recipe(), "run_all", lambda runs, out, after=None: order.extend(r["name"] for r in runs))
    monkeypatch.setattr(s, "compress", lambda out: order.append("compress"))
    monkeypatch.setattr(s, "budget_steps", lambda out, paper: {})
    runs = s.plan(tmp_path, True)
    assert s.ship_runs(tmp_path, runs, True) == []
    s.train_all(tmp_path, runs, True)
    x4 = [r["name"] for r in runs if r["scale"] == 4]
    assert order == x4 + [f"x8_lkca_{v}_s0" for v in ("net", "lr", "kd")] + ["compress"] \
        + [n for n, *_ in s.COMPARED] + ["x8_lkca_lr_clip_s0"] \
        + [f"x8_lkca_{v}_s{k}" for k in range(1, 5) for v in ("net", "lr", "kd", "lr_clip")]
    done = {name: {} for name in order}
    assert [s.shipped_from(done, r, v, True) for r in (4, 8) for v in ("net", "lr", "kd")] == \
        [f"{p}lkca_{v}_s0" for p in ("", "x8_") for v in ("net", "lr", "kd")]
    assert s.shipped_from(done, 4, "net", False) is None  # the CPU size ships the continuation only
    done = {"ship_x4_lkca_net": {}, "ship_x4_lkca_net_stage2": {}, "ship_x8_lkca_net": {}}
    assert s.shipped_from(done, 4, "net", False) == "ship_x4_lkca_net_stage2"  # the last stage
    assert s.shipped_from(done, 8, "net", False) == "ship_x8_lkca_net"  # x8's one stage
    del done["ship_x4_lkca_net_stage2"]
    assert s.shipped_from(done, 4, "net", False) is None  # not the first stage while the last is unfinished


def test_paired_differences_carry_the_95_percent_t_interval():
    scipy_stats = pytest.importorskip("scipy.stats")
    for n in range(2, 32):
        assert study().T975[n - 2] == pytest.approx(scipy_stats.t.ppf(0.975, n - 1), abs=1e-4)
    values = [0.10, 0.02, 0.15, 0.07, 0.11]
    mean, half = study().interval95(values)
    lo, hi = scipy_stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=scipy_stats.sem(values))
    assert mean == pytest.approx(np.mean(values)) and half == pytest.approx((hi - lo) / 2, rel=1e-4)


def test_the_compared_methods_get_lkca_nets_training_time(tmp_path, monkeypatch):
    """The budget: an x4 LKCA-Net run's steps over its steps per second, and each compared method the
    steps its own rate fits into that time, every rate (LKCA-Net's too) from a short calibration run on
    the same machine (each run's median logged rate, the first interval and those after a validation
    left out); a missing calibration is run (stood in for here) as a short train.py command; the
    budget, once written, is read back and not measured again."""
    s = study()
    log = tmp_path / "validated" / "metrics.jsonl"  # intervals after a validation hold it: left out
    log.parent.mkdir()
    log.write_text("".join(json.dumps({"step": 50 * i, "steps_per_second": r, **({"val_mpsnr": 30.0} if val else {})})
                           + "\n" for i, (r, val) in enumerate([(0.01, 0), (1.0, 1), (0.2, 1), (0.2, 1), (0.2, 0)])))
    assert s.training_rate(log.parent) == 1.0
    steps = s.sizes(False)["steps"]
    called = []

    def calibrate(out, args, log_name="calibrate"):  # stands in for the calibration's train.py
        called.append(args)
        workdir = pathlib.Path(args[args.index("--workdir") + 1])
        (workdir / "eval").mkdir(parents=True)
        (workdir / "eval" / "test.json").write_text("{}")
        rate = 2.0 * len(called)  # LKCA-Net first at 2 steps/s, then the i-th compared method at 2 (i + 1)
        (workdir / "metrics.jsonl").write_text("".join(json.dumps({"step": 10 * i, "steps_per_second": r}) + "\n"
                                                       for i, r in enumerate([0.01, rate, rate + 1, rate - 0.5])))

    monkeypatch.setattr(s, "_call", calibrate)
    got = s.budget_steps(tmp_path, False)
    budget = steps / 2.0  # LKCA-Net's calibrated rate
    assert got == {name: round(budget * 2.0 * (i + 2)) for i, (name, *_) in enumerate(s.COMPARED)}
    assert len(called) == len(s.COMPARED) + 1
    for args, name in zip(called, ["lkca_net", *(n for n, *_ in s.COMPARED)]):
        assert args[0] == "train.py" and args[args.index("--workdir") + 1] == str(tmp_path / "calibrate" / name)
        assert args[args.index("--config.train.num_steps") + 1] == str(s.CALIBRATION_STEPS)
    net = " ".join(called[0])  # the study's x4 LKCA-Net, but for its steps and logging
    assert "configs/cave.py:x4,net" in net and "--config.model.features 64" in net and "--config.train.seed 0" in net
    written = json.loads((tmp_path / "budget.json").read_text())
    assert written["steps"] == got and written["lkca_net_train_s"] == budget and "CPUs" in written["machine"]
    assert s.budget_steps(tmp_path, False) == got and len(called) == len(s.COMPARED) + 1  # kept: not run again
    import shutil
    shutil.rmtree(tmp_path / "calibrate")  # a study restored elsewhere: the budget, not the rates
    assert s.budget_steps(tmp_path, False) == got and len(called) == len(s.COMPARED) + 1


def test_the_tables_give_each_runs_training_time_from_its_step_rate(tmp_path):
    """A table row's train (s): the run's last step over its median logged rate (the compilation's and
    the validations' intervals left out), so that runs given one budget show it; '-' without a log."""
    s = study()
    run = tmp_path / "vdsr"
    (run / "eval").mkdir(parents=True)
    mean = {"Method": "VDSR", "MPSNR": 37.0, "MSSIM": 0.95, "SAM": 3.2, "ERGAS": 4.1, "Param": 967_000, "Flops": 2.48e8}
    (run / "eval" / "test.json").write_text(json.dumps({"mean": mean}))
    rows = [(50, 0.1, False), (100, 4.0, True), (150, 0.5, False), (200, 3.0, False), (250, 5.0, False)]
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": st, "steps_per_second": r, **({"val_mpsnr": 30.0}
                                                           if val else {})}) + "\n" for st, r, val in rows))
    (tmp_path / "bicubic" / "eval").mkdir(parents=True)
    (tmp_path / "bicubic" / "eval" / "test.json").write_text(json.dumps({"mean": {**mean, "Method": "Bicubic"}}))
    done = s.finished(tmp_path, [{"name": "vdsr", "group": "compared", "label": "VDSR"},
                                 {"name": "bicubic", "group": "compared", "label": "Bicubic"}])
    # the intervals past the first that do not follow a validation (step 150's does): 4.0, 3.0, 5.0
    assert done["vdsr"]["train_s"] == 250 / 4.0 and done["bicubic"]["train_s"] is None
    table = s.other_table(done, "compared", []).splitlines()
    assert table[0].endswith("| steps | train (s) | wall (s) |")
    assert table[2].startswith("| VDSR (vdsr) | 37.0000") and table[2].endswith("| 100 | 62 | - |")
    assert table[3].endswith("| - | - | - |")


def test_seed_tables_pair_the_seeds_and_pick_the_median_validation_seed():
    """Five x4 seeds of each variant: the paired KD - control interval is scipy's t-interval of the
    per-seed differences, 'settled' only when it excludes 0, and the shipped seed is the one with the
    median best validation MPSNR (not the best test score)."""
    scipy_stats = pytest.importorskip("scipy.stats")
    s = study()
    rng = np.random.default_rng(0)
    base = {"net": 38.0, "lr": 37.9, "kd": 37.95, "lr_clip": 37.94}
    done = {}
    for variant, level in base.items():
        for seed in range(5):
            mpsnr = level + 0.01 * seed + rng.normal(0, 0.005)
            done[s.run_name(variant, seed)] = {
                "run": {"seed": seed, "scale": 4, "variant": variant, "group": "seeds"},
                "test": {"mean": {"MPSNR": mpsnr, "MSSIM": 0.9, "SAM": 3.0 - mpsnr / 100, "ERGAS": 4.0}},
                "best_val": 40.0 + (seed * 7 % 5) / 10}  # validation order of seeds 0-4: 0, 3, 1, 4, 2
    text, median = s.seed_tables(done, 4)
    assert median == {v: s.run_name(v, 1) for v in base}  # best_val 40.2: the third of 40.0, 40.1, 40.2, ...
    mpsnr = {name: d["test"]["mean"]["MPSNR"] for name, d in done.items()}
    diffs = [mpsnr[s.run_name("kd", k)] - mpsnr[s.run_name("lr_clip", k)] for k in range(5)]
    lo, hi = scipy_stats.t.interval(0.95, 4, loc=np.mean(diffs), scale=scipy_stats.sem(diffs))
    row = next(line for line in text.splitlines() if line.startswith("| LKCA-KD - LKCA-LR, clipped as KD (control) |"))
    assert f"{np.mean(diffs):+.4f} +- {(hi - lo) / 2:.4f}" in row
    assert row.rstrip(" |").endswith("no" if lo <= 0 <= hi else "higher")
    net_lr = next(line for line in text.splitlines() if line.startswith("| LKCA-Net - LKCA-LR |"))
    assert net_lr.rstrip(" |").endswith("LKCA-Net higher")  # 0.1 dB apart, seed noise 0.005


def _readme_inputs():
    mean = {"Method": "LKCA-KD", "Param": 140000, "MPSNR": 38.5, "SAM": 2.9, "ERGAS": 3.5}
    return {"mean": mean, "bicubic": {"MPSNR": 36.3, "SAM": 3.46, "ERGAS": 4.54},
            "per_image": {"pompoms/0_0_512x512": {"MPSNR": 38.9, "SAM": 2.2, "ERGAS": 3.0}}}


def test_a_shipped_readme_gives_both_commands_and_the_epochs_in_all(tmp_path):
    """A shipped model continued from seed 0 (x8): its README has the seed-0 command and the
    continuation's, each run's commit, the epochs of both (x8: the study's steps of 269 an epoch, then
    2400 more), its test table and CAVE's citation."""
    s = study()
    runs = s.plan(tmp_path, False)
    ship = {r["name"]: r for r in s.ship_runs(tmp_path, runs, False)}["ship_x8_lkca_kd"]
    base = next(r for r in runs if r["name"] == "x8_lkca_kd_s0")
    text = s.pretrained_readme("cave-x8-lkca-kd", {"run": ship, "test": _readme_inputs(),
                                                    "record": {"commit": "bbbbbbb"}},
                               tmp_path, [{"run": base, "record": {"commit": "aaaaaaa"}}])
    lines = [line.strip() for line in text.splitlines()]
    first = next(line for line in lines if line.startswith("python train.py") and "x8_lkca_kd_s0" in line)
    second = next(line for line in lines if line.startswith("python train.py") and "ship_x8_lkca_kd" in line)
    study_steps = s.sizes(False)["steps"]
    assert f"--config.train.num_steps {study_steps}" in first and "init_from" not in first
    assert f"--config.train.init_from {tmp_path / 'x8_lkca_kd_s0'}" in second
    assert "--config.train.num_steps 2400" in second and "--config.train.learning_rate 0.0005" in second
    assert f"--config.teacher.workdir {tmp_path / 'ship_x8_lkca_net'}" in second
    assert "commit aaaaaaa" in text and "commit bbbbbbb" in text
    assert f"for {(study_steps + 2400) / (539 * 8 // 16):.1f} epochs in all" in " ".join(lines)
    assert "| pompoms/0_0_512x512 | 38.9000 |" in text and "Yasuma" in text


def test_a_shipped_readme_of_two_stages_gives_the_run_from_scratch_then_its_continuation(tmp_path):
    """x4's shipped models: 4 LKBs of 96 from scratch for 7200 steps at 1e-3 (no init_from), then
    continued from that run's last EMA weights for 2400 steps at 5e-4, each KD stage learning from its
    stage's LKCA-Net with the decay scaled to the stage (1237 steps an epoch); both commits, the epochs
    of both."""
    s = study()
    runs = s.plan(tmp_path, False)
    ship = {r["name"]: r for r in s.ship_runs(tmp_path, runs, False)}
    text = s.pretrained_readme("cave-x4-lkca-kd", {"run": ship["ship_x4_lkca_kd_stage2"], "test": _readme_inputs(),
                                                    "record": {"commit": "ddddddd"}}, tmp_path,
                               [{"run": ship["ship_x4_lkca_kd"], "record": {"commit": "ccccccc"}}])
    lines = [line.strip() for line in text.splitlines()]
    first, second = [line for line in lines if line.startswith("python train.py")]
    assert "init_from" not in first and "init_which" not in first
    for part in ("--config.model.depth 4", "--config.model.features 96", "--config.train.num_steps 7200",
                 "--config.train.learning_rate 0.001", f"--config.teacher.workdir {tmp_path / 'ship_x4_lkca_net'}",
                 f"--config.teacher.decay_epochs {7200 / 1237 / 30:.6f}", f"--workdir {tmp_path / 'ship_x4_lkca_kd'}"):
        assert part in first
    for part in ("--config.model.depth 4", "--config.model.features 96", "--config.train.num_steps 2400",
                 "--config.train.learning_rate 0.0005", f"--config.train.init_from {tmp_path / 'ship_x4_lkca_kd'}",
                 "--config.train.init_which last", f"--workdir {tmp_path / 'ship_x4_lkca_kd_stage2'}",
                 f"--config.teacher.workdir {tmp_path / 'ship_x4_lkca_net_stage2'}",
                 f"--config.teacher.decay_epochs {2400 / 1237 / 30:.6f}"):
        assert part in second
    assert ship["ship_x4_lkca_kd"]["label"] == "LKCA-KD, 4 x 96, seed 0, 7200 steps"  # its own stage
    assert ship["ship_x4_lkca_kd_stage2"]["label"] == "LKCA-KD, 4 x 96, seed 0, 7200 steps, then 2400 at 0.0005"
    words = " ".join(lines)
    assert "LKCA-KD (4 LKBs of 96" in words and "from scratch for 7200 steps at lr 0.001" in words
    assert "continued from its last EMA weights for 2400 steps at lr 0.0005" in words
    assert words.index("commit ccccccc") < words.index("commit ddddddd")
    assert f"for {(7200 + 2400) / 1237:.1f} epochs in all" in words


def test_a_shipped_runs_lineage_and_where_its_curve_starts():
    """lineage follows train.init_from back to the first run (or to one not finished), a cycle ends it;
    started_at adds the steps of the runs continued, or their last logged step where they count epochs."""
    s = study()
    run = lambda init=None, steps=None: {"run": {"overrides": {**({"train.init_from": f"runs/{init}"} if init else {}),
                                                              **({"train.num_steps": steps} if steps else {})}},
                                         "curve": [(100, 31.0), (900, 31.5)]}
    done = {"a": run(steps=2400), "b": run("a", 7200), "c": run("b", 2400), "d": run("gone", 10)}
    assert s.lineage(done, "c") == ["a", "b"] and s.lineage(done, "a") == [] and s.lineage(done, "d") == []
    assert s.started_at(done, "c") == 2400 + 7200 and s.started_at(done, "b") == 2400
    done["a"] = run(steps=None)  # counted in epochs: its last logged step
    assert s.started_at(done, "c") == 900 + 7200
    done["a"] = run("c", 2400)  # a -> c -> b -> a
    assert s.lineage(done, "c") == ["a", "b"]


def _finish(out: pathlib.Path, name: str, weights: bool = True) -> None:
    """A finished run as the study leaves it: config, log, test table, spectrum, record and (optionally)
    a checkpoint."""
    w = out / name
    (w / "eval").mkdir(parents=True)
    (w / "rank").mkdir()
    (w / "config.json").write_text(json.dumps({"name": name}))
    (w / "metrics.jsonl").write_text(json.dumps({"step": 100, "val_mpsnr": 31.0, "name": name}) + "\n")
    (w / "eval" / "test.json").write_text(json.dumps({"mean": {"MPSNR": 38.0}, "name": name}))
    (w / "rank" / "rank.json").write_text(json.dumps({name: {"rank90": 97}}))
    if weights:
        (w / "checkpoints" / "100").mkdir(parents=True)
        (w / "checkpoints" / "100" / "weights").write_bytes(b"\0" * 4096)
    if "/" not in name:  # a calibration has no record of its own
        (out / "logs").mkdir(exist_ok=True)
        (out / "logs" / f"{name}.json").write_text(json.dumps({"name": name, "commit": "abc1234"}))


def test_the_records_keep_what_the_report_needs_and_restore_what_no_unfinished_run_reads(tmp_path):
    """--records: each finished run's config, log, test table, spectrum and record are copied, never its
    weights; on a new machine they are copied back so that the study skips those runs, except a run
    whose weights an unfinished run reads (a KD run's teacher), which trains again."""
    s = study()
    out, records, fresh = tmp_path / "out", tmp_path / "records", tmp_path / "fresh"
    runs = s.plan(out, False)
    every = runs + s.ship_runs(out, runs, False)
    for name in ("lkca_net_s1", "lkca_lr_s1", "lkca_kd_s1", "lkca_net_s2", "x8_lkca_net_s0"):
        _finish(out, name)
    assert sorted(s.archive(out, every, records)) == sorted(["lkca_net_s1", "lkca_lr_s1", "lkca_kd_s1", "lkca_net_s2",
                                                            "x8_lkca_net_s0"])
    kept = sorted(str(p.relative_to(records)) for p in records.rglob("*") if p.is_file())
    assert kept == sorted([f"{n}/{f}" for n in ("lkca_net_s1", "lkca_lr_s1", "lkca_kd_s1", "lkca_net_s2",
                                                  "x8_lkca_net_s0")
                           for f in ("config.json", "metrics.jsonl", "eval/test.json", "rank/rank.json")]
                          + [f"logs/{n}.json" for n in ("lkca_net_s1", "lkca_lr_s1", "lkca_kd_s1", "lkca_net_s2",
                                                         "x8_lkca_net_s0")])
    for f in kept:
        assert (records / f).read_bytes() == (out / f).read_bytes()
    assert s.archive(out, every, records) == []  # nothing new
    (out / "lkca_lr_s1" / "eval" / "test.json").write_text("{}")  # a run evaluated again: copied again
    assert s.archive(out, every, records) == ["lkca_lr_s1"]
    # another machine: lkca_net_s2 is lkca_kd_s2's teacher and x8_lkca_net_s0 the teacher of x8_lkca_kd_s0 and
    # the start of ship_x8_lkca_net, none finished: both train again; the rest is restored as finished
    assert sorted(s.restore(fresh, every, records)) == ["lkca_kd_s1", "lkca_lr_s1", "lkca_net_s1"]
    three = ("lkca_net_s1", "lkca_lr_s1", "lkca_kd_s1")
    got = sorted(str(p.relative_to(fresh)) for p in fresh.rglob("*") if p.is_file())
    assert got == [f for f in kept if any(f.startswith(f"{n}/") or f == f"logs/{n}.json" for n in three)]
    assert all((fresh / f).read_bytes() == (records / f).read_bytes() for f in got)
    assert s._recipe().finished(fresh, "lkca_net_s1") and not s._recipe().finished(fresh, "lkca_net_s2")
    assert not s.has_weights(fresh / "lkca_net_s1") and s.has_weights(out / "lkca_net_s1")
    assert s.restore(fresh, every, records) == []  # already there
    _finish(records, "lkca_kd_s2", weights=False)  # lkca_kd_s2 finished elsewhere: now its teacher is restored too
    assert sorted(s.restore(fresh, every, records)) == ["lkca_kd_s2", "lkca_net_s2"]


def test_a_restore_keeps_every_run_that_a_run_to_train_needs_down_the_chain(tmp_path):
    """The machine was replaced after ship_x8_lkca_net finished and before ship_x8_lkca_kd did, which
    continues x8_lkca_kd_s0 and learns from ship_x8_lkca_net: both train again, and so does the run
    ship_x8_lkca_net continues (x8_lkca_net_s0), though its own KD reader (x8_lkca_kd_s0) had finished;
    the rest is restored. Never a calibration (the
    budget is), nor a run that ``out`` holds a checkpoint of (it resumes). The report reads a run that
    was not restored from the records."""
    s = study()
    out, records = tmp_path / "out", tmp_path / "records"
    runs = s.plan(out, False)
    every = runs + s.ship_runs(out, runs, False)
    for name in ("x8_lkca_net_s0", "x8_lkca_lr_s0", "x8_lkca_kd_s0", "ship_x8_lkca_net", "ship_x8_lkca_lr",
                 "calibrate/vdsr"):
        _finish(records, name, weights=False)
    (records / "budget.json").write_text(json.dumps({"steps": {"vdsr": 7}}))
    assert s.restore(out, every, records) == ["x8_lkca_lr_s0", "ship_x8_lkca_lr"]
    assert json.loads((out / "budget.json").read_text()) == {"steps": {"vdsr": 7}}
    assert not (out / "calibrate").exists()
    partial = tmp_path / "partial"  # lkca_net_s1 half trained here, finished in the records: it resumes
    _finish(records, "lkca_net_s1", weights=False)
    _finish(records, "lkca_kd_s1", weights=False)
    (partial / "lkca_net_s1" / "checkpoints" / "2400").mkdir(parents=True)
    assert s.restore(partial, every, records) == ["lkca_kd_s1", "x8_lkca_lr_s0", "ship_x8_lkca_lr"]
    done = s.finished(out, every, records)
    assert {n: d["root"] for n, d in done.items() if n.startswith(("x8", "ship_x8"))} == {
        "x8_lkca_net_s0": records, "x8_lkca_lr_s0": out, "x8_lkca_kd_s0": records, "ship_x8_lkca_net": records,
        "ship_x8_lkca_lr": out}
    assert done["x8_lkca_net_s0"]["record"] == {"name": "x8_lkca_net_s0", "commit": "abc1234"}
    assert done["x8_lkca_net_s0"]["curve"] == [(100, 31.0)]
    assert set(s.finished(out, every)) == {"x8_lkca_lr_s0", "ship_x8_lkca_lr"}  # without the records


def test_the_study_refuses_to_start_away_from_its_data_and_reports_a_failed_run(tmp_path, monkeypatch, capsys):
    """Run away from the repository root, or without CAVE's folder beside it: one line, exit 2, nothing
    written. A run that fails: one line, exit 1, and the report still written from what has finished."""
    s = study()
    monkeypatch.chdir(tmp_path)
    assert s.main(["--out", "runs/study"]) == 2
    assert "no configs/cave.py here; run the study from the repository root" in capsys.readouterr().err
    repo = tmp_path / "repo"
    (repo / "configs").mkdir(parents=True)
    (repo / "configs" / "cave.py").write_text((ROOT / "configs" / "cave.py").read_text())
    monkeypatch.chdir(repo)
    assert s.main(["--out", "runs/study"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: ../shared/data/cave: no such folder: the study reads CAVE's 16 scenes there (configs/cave.py's "
        "data.path), beside the repository")
    assert list(tmp_path.rglob("*")) == [repo, repo / "configs", repo / "configs" / "cave.py"]  # nothing written
    (tmp_path / "shared" / "data" / "cave").mkdir(parents=True)
    reported = []

    def fail(out, runs, paper, after=None):
        raise s._recipe().RunFailed("lkca_net_s0: exit 3; see runs/study/logs/lkca_net_s0.log (rerun to resume)")

    monkeypatch.setattr(s, "train_all", fail)
    monkeypatch.setattr(s, "report", lambda out, runs, *a: reported.append(out))
    assert s.main(["--out", "runs/study"]) == 1
    assert capsys.readouterr().err.strip() == \
        "error: lkca_net_s0: exit 3; see runs/study/logs/lkca_net_s0.log (rerun to resume)"
    assert reported == [pathlib.Path("runs/study")]
