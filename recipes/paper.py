"""The paper's Tables I-VII, one command each, with the paper's numbers printed beside ours.

    python recipes/paper.py --table V --data /data/HyperspecVNIR_Chikusei_20140729.mat --out runs/table5
    python recipes/paper.py --table VII --data /data/Pavia.mat --scale cpu --seeds 3 --out runs/table7
    python recipes/paper.py --table V --scale tiny --out /tmp/table5          # seconds a run, no data
    python recipes/paper.py --table V --dataset cave --data ../shared/data/cave --scale cpu --out runs/cave5

Tables (lkca_jax/paper.py): I, LKCA-Net with 4-64 LKBs (Chikusei x4); II, III and IV, LKCA-KD's
ablations (the decay gamma, the initial weight lambda0, the cosine term; Chikusei x4; each with its
LKCA-Net teacher and LKCA-LR without KD as reference rows); V, VI and VII, all nine methods at x4 and
x8 on Chikusei, Houston 2018 and Pavia Centre (LKCA-KD learning from the LKCA-Net of its scale and
seed). ``--dataset`` runs a table's runs on another registered dataset (``cave``: the paper has no
numbers for it, so the report shows ours alone). ``--methods net,lr,kd`` runs (and reports) only
those methods' rows of a table, with the teachers their KD rows need.

Every run is an ordinary ``train.py`` (or, for Bicubic, ``evaluate.py``) command, appended to
``OUT/commands.sh`` as it starts, with its own workdir ``OUT/<run>``; its log goes to
``OUT/logs/<run>.log`` and, once it has finished, ``OUT/logs/<run>.json`` records the commit it ran
at and its wall-clock time. A rerun skips finished runs (``OUT/<run>/eval/test.json`` exists) and
resumes an interrupted one from its last checkpoint. The report, ``OUT/report.md`` and
``OUT/report.json``, is rewritten at the end from whatever has finished: for every row and column the
paper prints, ours (mean +- sample std over seeds, n), the paper's value and the difference.

Sizes (``--scale``):

* ``paper``: the configs as shipped: LKCA 16 LKBs of 128 features, the compared methods at their
  published widths with their own losses and recipes, batch 32 of 64 x 64 (x4) or 128 x 128 (x8) HR
  patches, 300 epochs (a GPU: the report's header estimates the time).
* ``cpu``: what a 2-core CPU finishes in a few hours a table: LKCA at 64 features and a quarter of
  the paper's LKBs (Table I: 1-16), SSPSR at width 32, MSDformer at 60, ESSAformer at 32, VDSR and
  3D-FCNN as published; 1200 steps of batch 16 at learning rate 5e-4 (cosine), x8 on 64 x 64 HR
  patches (8 x 8 LR; the paper's are 16 x 16), KD's gradient norm clipped at 0.1 (docs/results.md,
  the CAVE study).
* ``tiny``: seconds a run and no data: stand-in cubes (smooth random, 160 x 128, the dataset's band
  count) through the embedded sample's strip protocol, every model a few channels wide, 2 steps. It
  checks the machinery; its numbers mean nothing and the report says so.

At ``cpu`` and ``tiny`` the KD weight decays 30 times over the run, as the paper's every 10 epochs
does over 300 (MSDformer's length, which ``paper`` takes; the paper's own is lost):
``teacher.decay_epochs`` = the run's epochs / 30.

Tables that share runs can share ``OUT``: Tables I-V all train on Chikusei, and their common runs
(the 16-LKB LKCA-Net, LKCA-LR, LKCA-KD at the paper's setting) then run once. ``report.md`` is the
table last run; each table's report is also kept as ``table_<T>.md`` and ``table_<T>.json``.

Several machines: ``--shard i/n`` (1 <= i <= n) runs every n-th run, starting at the i-th, in the
same ``OUT`` (a shared file system); a KD run whose teacher belongs to another shard waits for it
(and stops if it failed: ``logs/<run>.failed``). Then ``--report-only`` over ``OUT`` writes the
merged report (any shard's command with it). A failed run stops the shard (exit 1) after the report
of what finished; a rerun retries it. ``OUT/recipe.json`` records the folder's dataset, size and
data: a run of another is refused, as its runs would share names with this one's.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import math
import os
import pathlib
import shlex
import signal
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lkca_jax import paper  # noqa: E402
from lkca_jax.atomic import atomic_write  # noqa: E402
from lkca_jax.methods import METHODS  # noqa: E402
from lkca_jax.provenance import commit  # noqa: E402

TABLE_DATASET = {"I": "chikusei", "II": "chikusei", "III": "chikusei", "IV": "chikusei",
                 "V": "chikusei", "VI": "houston", "VII": "pavia"}
NINE = ("bicubic", "vdsr", "fcnn3d", "sspsr", "msdformer", "essaformer", "net", "lr", "kd")
DEPTHS = (4, 8, 16, 32, 48, 64)
GAMMAS = ("1.00", "0.75", "0.66", "0.50")
LAMBDAS = ("1.000", "0.100", "0.050", "0.010", "0.005")
LOSSES = {"l1+grad+cos": {}, "l1+grad": {"teacher.cos_weight": 0.0}}
# The model fields of each architecture that a size overrides (a prefix of the field's name).
ARCH_FIELDS = {"lkca": ("model.features", "model.depth"), "vdsr": ("model.vdsr.",), "fcnn3d": ("model.fcnn3d.",),
               "sspsr": ("model.sspsr.",), "essaformer": ("model.essaformer.",), "msdformer": ("model.msdformer.",)}
STANDIN = (160, 128)  # rows, columns of the tiny size's stand-in cubes
POLL_S = 5  # seconds between looks for a teacher that another shard trains
TINY_RUN_S = 15  # seconds a tiny run takes on the 2-core VM (start, compile, 2 steps, evaluation)

SIZES = {
    "paper": {"model": {}, "train": {}},
    "cpu": {
        "model": {"model.features": 64, "model.sspsr.features": 32, "model.msdformer.features": 60,
                  "model.essaformer.features": 32},
        "depth": lambda d: max(1, d // 4),
        "train": {"train.num_steps": 1200, "train.num_epochs": 0, "train.batch_size": 16,
                  "train.learning_rate": 5e-4, "train.schedule": "cosine", "train.eval_every_steps": 300,
                  "train.checkpoint_every_steps": 300, "train.log_every_steps": 100},
        "kd": {"train.grad_clip_norm": 0.1},
        "x8": {"data.patch_size": 64, "data.stride": 32},  # 8 x 8 LR patches at x8 (the paper's: 16 x 16)
    },
    "tiny": {
        "model": {"model.features": 8, "model.vdsr.features": 8, "model.vdsr.depth": 2,
                  "model.fcnn3d.widths": "(8,4,3)", "model.sspsr.features": 16, "model.sspsr.blocks": 1,
                  # band groups of 24 (2-7 of them, not 5-21 of 8; CAVE's 31 bands still hold one):
                  # MSDformer's head has a branch per group, and compiling Chikusei's 21 took half of
                  # a tiny run
                  "model.sspsr.subs": 24, "model.sspsr.overlap": 6, "model.msdformer.subs": 24,
                  "model.msdformer.overlap": 6,
                  "model.msdformer.features": 32, "model.msdformer.heads": 4, "model.msdformer.blocks": 1,
                  "model.essaformer.features": 16},
        "depth": lambda d: max(1, d // 16),
        "train": {"train.num_steps": 2, "train.num_epochs": 0, "train.batch_size": 4, "train.eval_every_steps": 2,
                  "train.checkpoint_every_steps": 2, "train.log_every_steps": 1, "train.keep_checkpoints": 1},
        "kd": {"train.grad_clip_norm": 0.1},
    },
}


# ---------------------------------------------------------------------------------------------- plan

def _label(setting: str) -> str:
    key, _, value = setting.partition("=")
    return {"depth": f"{value} LKBs", "gamma": f"gamma {value}", "lambda0": f"lambda0 {value}",
            "losses": {"l1+grad+cos": "L1 + gradient + cosine", "l1+grad": "L1 + gradient"}.get(value, value)
            }.get(key, setting)


def rows_of(table: str) -> list[dict]:
    """The table's rows: {scale, method, setting, label, reference} (reference rows are not in the
    printed table; their paper values come from Table V)."""
    if table == "I":
        return [{"scale": 4, "method": "net", "setting": f"depth={d}", "label": f"LKCA-Net, {d} LKBs"} for d in DEPTHS]
    if table in ("II", "III", "IV"):
        values = {"II": [f"gamma={g}" for g in GAMMAS], "III": [f"lambda0={v}" for v in LAMBDAS],
                  "IV": [f"losses={k}" for k in LOSSES]}[table]
        return ([{"scale": 4, "method": m, "setting": "", "reference": True,
                  "label": f"{METHODS[m].display} (reference: Table V)"} for m in ("net", "lr")]
                + [{"scale": 4, "method": "kd", "setting": s, "label": f"LKCA-KD, {_label(s)}"} for s in values])
    return [{"scale": r, "method": m, "setting": "", "label": f"{METHODS[m].display} x{r}"}
            for r in (4, 8) for m in NINE]


def _setting_overrides(setting: str, size: str) -> dict:
    key, _, value = setting.partition("=")
    if key == "depth":
        return {"model.depth": SIZES[size].get("depth", int)(int(value))}
    if key == "gamma":
        return {"teacher.gamma": float(value)}
    if key == "lambda0":
        return {"teacher.lambda0": float(value)}
    if key == "losses":
        return dict(LOSSES[value])
    return {}


def run_name(dataset: str, row: dict, seed: int) -> str:
    setting = row["setting"]
    if setting in ("", "gamma=0.66", "lambda0=0.010", "losses=l1+grad+cos", "depth=16"):
        setting = ""  # the default model: one run shared by the tables that print it
    suffix = "_" + setting.replace("=", "").replace("+", "_") if setting else ""
    return f"{dataset}_x{row['scale']}_{row['method']}{suffix}_s{seed}"


def training_patches(dataset: str, scale: int, size: str, patch: int = 0, stride: int = 0) -> int:
    """Training patches a run's epoch has (x 8 dihedral copies), from the protocol on the scene's size
    (``patch``, ``stride``: the run's data fields, 0 for the protocol's default)."""
    from lkca_jax.data import protocols
    from lkca_jax.data.registry import DATASETS

    if size == "tiny":
        t, p, s = _tiny_data(scale)
        return len(protocols.top_strip("standin", *STANDIN, scale, 0, t, p, s)["train"])
    entry = DATASETS[dataset]
    patch, stride = patch or entry.patch_size or None, stride or entry.stride or None
    if entry.layout == "scenes":
        return len(protocols.scenes({n: (512, 512) for v in entry.scenes.values() for n in v}, scale,
                                    list(entry.scenes["train"]), [], [], patch, stride)["train"])
    scene = _cost().SCENES[dataset]
    return len(protocols.top_strip(dataset, *scene, scale, entry.n_test, entry.test_size, patch, stride)["train"])


def _tiny_data(scale: int) -> tuple[int, int, int]:
    """(test size, patch size, stride) of the stand-in cubes at ``scale``: test images the size of the
    patches, so that validation and test share their compiled programs."""
    return (32, 32, 16) if scale <= 4 else (64, 64, 16)


def selected_rows(table: str, methods: tuple[str, ...] = ()) -> list[dict]:
    """The table's rows, only those of ``methods`` when given (a table in part)."""
    return [row for row in rows_of(table) if not methods or row["method"] in methods]


def plan(table: str, dataset: str, size: str, seeds: int, out: pathlib.Path, data: str | None,
         methods: tuple[str, ...] = ()) -> list[dict]:
    """Every run of the table (of its rows of ``methods``, when given), teachers first: name, row,
    seed, config spec, overrides, teacher."""
    spec = SIZES[size]
    runs, seen = [], set()

    def add(row, seed, teacher=None):
        name = run_name(dataset, row, seed)
        if name in seen:
            return name
        seen.add(name)
        method, scale = row["method"], row["scale"]
        overrides = {}
        if method != "bicubic":
            own = ARCH_FIELDS[METHODS[method].architecture]
            overrides.update({k: v for k, v in spec["model"].items() if k.startswith(own)})
            overrides.update({**spec["train"], "train.seed": seed})
            if method in ("net", "lr", "kd") and "depth" in spec:
                overrides["model.depth"] = spec["depth"](16)
            overrides.update(_setting_overrides(row["setting"], size))
        overrides.update(_data_overrides(dataset, scale, size, out, data))
        if scale == 8 and method != "bicubic":
            overrides.update(spec.get("x8", {}))
        if teacher:
            overrides.update(spec.get("kd", {}))
            overrides["teacher.workdir"] = str(out / teacher)
            if size != "paper":
                steps, batch = spec["train"]["train.num_steps"], spec["train"]["train.batch_size"]
                patches = training_patches(dataset, scale, size, overrides.get("data.patch_size", 0),
                                           overrides.get("data.stride", 0))
                overrides["teacher.decay_epochs"] = round(steps * batch / (8 * patches) / 30, 6)
        runs.append({"name": name, "row": row, "seed": seed, "method": method, "scale": scale, "teacher": teacher,
                     "config": f"configs/{dataset}.py:x{scale},{method}", "overrides": overrides,
                     "script": "evaluate.py" if method == "bicubic" else "train.py"})
        return name

    rows = selected_rows(table, methods)
    for seed in range(seeds):  # teachers (LKCA-Net at 16 LKBs) before the KD runs that read them
        for scale in sorted({r["scale"] for r in rows if r["method"] == "kd"}):
            add({"scale": scale, "method": "net", "setting": ""}, seed)
    for seed in range(seeds):
        for row in rows:
            if row["method"] == "bicubic" and seed:
                continue  # deterministic: one run
            teacher = run_name(dataset, {"scale": row["scale"], "method": "net", "setting": ""}, seed) \
                if row["method"] == "kd" else None
            add(row, seed, teacher)
    return runs


def _data_overrides(dataset: str, scale: int, size: str, out: pathlib.Path, data: str | None) -> dict:
    if size != "tiny":
        return {"data.path": data} if data else {}
    test, patch, stride = _tiny_data(scale)
    return {"data.protocol": "sample", "data.path": str(out / "standin" / f"{dataset}.npz"), "data.key": "data",
            "data.normalisation": "constant", "data.norm_value": 1.0, "data.test_size": test,
            "data.patch_size": patch, "data.stride": stride, "eval.bicubic_row": False,
            "eval.validation_batch_size": 1}


def write_standin(path: pathlib.Path, bands: int) -> None:
    """A smooth random cube in 0..1 (a few Gaussian blobs, each with its own smooth spectrum)."""
    import numpy as np

    if path.is_file():
        return
    rng = np.random.default_rng(bands)
    h, w = STANDIN
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    wave = np.linspace(0, 1, bands, dtype=np.float32)
    cube = np.full((h, w, bands), 0.1, np.float32)
    for _ in range(24):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(4, 24)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        spectrum = 0.4 * (1 + np.sin(2 * np.pi * (rng.uniform(0.3, 2) * wave + rng.uniform())))
        cube += blob[..., None] * spectrum[None, None, :]
    cube /= cube.max()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, data=cube)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------- running

def command(run: dict) -> list[str]:
    cmd = [run["script"], "--config", run["config"], "--workdir", None]
    for field, value in run["overrides"].items():  # absl takes a boolean only as --flag=value
        cmd += [f"--config.{field}={value}"] if isinstance(value, bool) else [f"--config.{field}", str(value)]
    return cmd


def _argv(run: dict, out: pathlib.Path) -> list[str]:
    cmd = command(run)
    cmd[cmd.index(None)] = str(out / run["name"])
    return cmd


def finished(out: pathlib.Path, name: str) -> bool:
    return (out / name / "eval" / "test.json").is_file()


def write_text(path: pathlib.Path, text: str) -> None:
    atomic_write(path, lambda tmp: pathlib.Path(tmp).write_text(text))


class RunFailed(Exception):
    """A run exited with an error (its log says why); the shard stops there."""


def failed_marker(out: pathlib.Path, name: str) -> pathlib.Path:
    return out / "logs" / f"{name}.failed"


def _kind(run: dict) -> tuple:
    """A run less its seed and its teacher's folder: runs of one kind take about one time."""
    return run["script"], run["config"], tuple(sorted((k, str(v)) for k, v in run["overrides"].items()
                                                      if k not in ("train.seed", "teacher.workdir")))


def measured(runs: list[dict], out: pathlib.Path) -> dict:
    """{run: seconds}: the mean wall-clock (``logs/<run>.json``) of the finished runs of its kind."""
    kinds = {r["name"]: _kind(r) for r in runs}
    walls = {}
    for run in runs:
        record = out / "logs" / f"{run['name']}.json"
        if record.is_file():
            walls.setdefault(kinds[run["name"]], []).append(json.loads(record.read_text())["wall_s"])
    return {name: statistics.mean(walls[kind]) for name, kind in kinds.items() if kind in walls}


def _expected(seconds: list[float | None]) -> str:
    known = [s for s in seconds if s is not None]
    if not known:
        return "?"
    unknown = len(seconds) - len(known)
    return _duration(sum(known)) + (f" + {unknown} run{'s' * (unknown > 1)} of a kind not yet timed" if unknown else "")


def run_all(runs: list[dict], out: pathlib.Path, shard: tuple[int, int] = (1, 1), estimate: dict | None = None,
            tiny: bool = False, after=None) -> None:
    """Run this shard's unfinished runs in order (``estimate``: {run: expected seconds}, for the ETA;
    ``after``: called with each run's name once it has finished and its record is written).
    A run that fails leaves ``logs/<run>.failed`` (so that a shard waiting for it as a teacher stops
    too) and raises :class:`RunFailed`; rerunning retries it."""
    i, n = shard
    mine = runs[i - 1::n]
    todo = [r for r in mine if not finished(out, r["name"])]
    source = "on the 2-core CPU, a lower bound" if estimate else "from the wall-clock of the finished runs of each kind"
    estimate = estimate or measured(runs, out)
    expected = lambda rs: _expected([estimate.get(r["name"]) for r in rs])
    print(f"shard {i}/{n}: {len(mine) - len(todo)} of {len(mine)} runs done, {len(todo)} to go "
          f"(expected {expected(todo)} {source})", flush=True)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    try:  # "x": of two shards starting together, one writes the header
        with open(out / "commands.sh", "x") as f:
            f.write(f"# recipes/paper.py's runs, each appended as it starts; run them from {ROOT}\n")
    except FileExistsError:
        pass
    began, at = time.perf_counter(), commit()
    env = dict(os.environ)
    if tiny:  # most of a tiny run is compiling: the runs share the programs they have in common
        env.setdefault("JAX_COMPILATION_CACHE_DIR", str(out / "jax_cache"))
        env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    for k, run in enumerate(todo):
        if run["teacher"] and not finished(out, run["teacher"]):
            print(f"  {run['name']}: waiting for its teacher {run['teacher']} (another shard)", flush=True)
            while not finished(out, run["teacher"]):
                if failed_marker(out, run["teacher"]).exists():
                    raise RunFailed(f"{run['name']}: its teacher {run['teacher']} failed in another shard; see "
                                    f"{out / 'logs' / run['teacher']}.log")
                time.sleep(POLL_S)
        line = shlex.join(["python", *_argv(run, out)])
        with open(out / "commands.sh", "a") as f:
            f.write(line + "\n")
        elapsed = time.perf_counter() - began
        print(f"[{k + 1}/{len(todo)}] {run['name']} ({_duration(elapsed)} so far, about {expected(todo[k:])} left)\n"
              f"  {line}", flush=True)
        t0 = time.perf_counter()
        with open(out / "logs" / f"{run['name']}.log", "a") as log:
            code = subprocess.call([sys.executable, *_argv(run, out)], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                   env=env)
        if code:
            write_text(failed_marker(out, run["name"]), f"exit {code}\n")
            raise RunFailed(f"{run['name']}: exit {code}; see {out / 'logs' / run['name']}.log (rerun to resume)")
        failed_marker(out, run["name"]).unlink(missing_ok=True)
        record = {"name": run["name"], "commit": at, "wall_s": round(time.perf_counter() - t0, 1), "command": line}
        write_text(out / "logs" / f"{run['name']}.json", json.dumps(record) + "\n")
        if after:
            after(run["name"])


# ---------------------------------------------------------------------------------------------- time

@functools.cache
def _cost():
    """bench/cost.py (its H100 constants and scene sizes), loaded once."""
    spec = importlib.util.spec_from_file_location("lkca_bench_cost", ROOT / "bench" / "cost.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _measured_cpu() -> dict[str, float]:
    """{method: CPU seconds per multiply-add of a train step}, from bench/cost_cpu.jsonl (Pavia x4,
    paper size, float32, batch 32; the methods not measured there take the median of the others)."""
    from lkca_jax.config import load_config

    rows = [json.loads(line) for line in (ROOT / "bench" / "cost_cpu.jsonl").read_text().splitlines() if line]
    by_display = {m.display: key for key, m in METHODS.items()}
    rates = {}
    for r in rows:
        if r["dtype"] == "float32" and r["step_s"]:
            key = by_display[r["method"]]
            rates[key] = r["step_s"] / _step_macs(load_config(f"{ROOT}/configs/pavia.py:x4,{key}"), 32)
    fallback = statistics.median(rates.values())
    return {m: rates.get(m, fallback) for m in NINE}


def _step_macs(config, batch: int) -> float:
    """Multiply-adds of a train step: forward and backward (3 x the forward) over the batch, at the
    config's training patch (16 x 16 LR at the paper's size); KD adds its teacher's forward."""
    from lkca_jax.accounting import count
    from lkca_jax.models import build_model

    r = config.model.scale
    lr_side = (config.data.patch_size or 16 * r) // r
    macs = 3 * batch * count(build_model(config), config.model.bands, lr_side)["macs"]
    if METHODS[config.variant].teacher:
        teacher = config.copy_and_resolve_references()
        teacher.model.upsampler = "dense"
        macs += batch * count(build_model(teacher), config.model.bands, lr_side)["macs"]
    return macs


def estimates(runs: list[dict], dataset: str, size: str) -> tuple[dict, dict, str]:
    """({run: CPU seconds}, {run: GPU seconds}, how they were made)."""
    if size == "tiny":
        return ({r["name"]: TINY_RUN_S for r in runs}, {r["name"]: TINY_RUN_S for r in runs},
                f"{TINY_RUN_S} s a run (start, compile, 2 steps, evaluation), measured on the 2-core VM")
    from lkca_jax.config import load_config

    cost, cpu_rate = _cost(), _measured_cpu()
    cpu, gpu = {}, {}
    for run in runs:
        if run["method"] == "bicubic":
            cpu[run["name"]] = gpu[run["name"]] = 60
            continue
        overrides = {k: str(v) for k, v in run["overrides"].items() if k != "data.path"}
        config = load_config(str(ROOT / run["config"]), overrides)
        t = config.train
        patches = training_patches(dataset, run["scale"], size, config.data.patch_size, config.data.stride)
        steps = t.num_steps or math.ceil(t.num_epochs * 8 * patches / t.batch_size)
        macs = _step_macs(config, t.batch_size)
        cpu[run["name"]] = steps * macs * cpu_rate[run["method"]]
        floor = cost.H100_FLOOR_S.get(run["method"], cost.H100_FLOOR_DEFAULT_S) * t.batch_size / 32
        gpu[run["name"]] = steps * max(floor, macs / cost.H100_MACS_PER_S["float32"])
    how = ("CPU: steps x the train step's multiply-adds x the seconds per multiply-add that bench/cost.py measured "
           "for the method on this 2-core VM (Pavia x4, paper size, float32; bench/cost_cpu.jsonl; SSPSR and "
           "ESSAformer, not measured there, at the median rate). GPU: an estimate for one H100-class GPU, not a "
           "measurement (bench/cost.py's model: the longer of a measured step floor and the multiply-adds at "
           "VDSR's measured rate). Evaluation not included.")
    return cpu, gpu, how


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# -------------------------------------------------------------------------------------------- report

def _stats(values: list[float]) -> dict:
    n = len(values)
    if not n:
        return {"n": 0}
    mean = sum(values) / n
    std = statistics.stdev(values) if n > 1 else None
    return {"mean": mean, "std": std, "n": n}


def _fmt(x: float | None, column: str) -> str:
    if x is None or (column in ("Param", "Flops") and x == 0):  # Bicubic's: none
        return "-"
    if column == "Param":
        return f"{x / 1e6:.3f}M"
    if column == "Flops":
        return f"{x / 1e9:.3f}G"
    return f"{x:.4f}"


def report(table: str, dataset: str, size: str, runs: list[dict], out: pathlib.Path, estimate: tuple,
           methods: tuple[str, ...] = ()) -> dict:
    cpu, gpu, how = estimate
    columns = paper.COLUMNS if table != "IV" else ("MPSNR", "MSSIM", "SAM", "ERGAS")
    rows, all_commits = [], set()
    for row in selected_rows(table, methods):
        mine = [r for r in runs if r["row"]["scale"] == row["scale"] and r["row"]["method"] == row["method"]
                and run_name(dataset, r["row"], 0)[:-2] == run_name(dataset, row, 0)[:-2]]
        tests, records = [], []
        for r in mine:
            done = finished(out, r["name"])
            rec_path = out / "logs" / f"{r['name']}.json"
            rec = json.loads(rec_path.read_text()) if rec_path.is_file() else {}
            if done:
                tests.append(json.loads((out / r["name"] / "eval" / "test.json").read_text()))
                all_commits.add(rec.get("commit", "unknown"))
            records.append({"name": r["name"], "seed": r["seed"], "finished": done, "commit": rec.get("commit"),
                            "wall_s": rec.get("wall_s"), "expected_cpu_s": cpu[r["name"]],
                            "expected_gpu_s": gpu[r["name"]]})
        ours = {c: _stats([t["mean"][c] for t in tests]) for c in columns}
        source_table = "V" if row.get("reference") else table
        printed = paper.entries(source_table, dataset=dataset, scale=row["scale"], method=row["method"],
                                setting=row["setting"]) if dataset == TABLE_DATASET[table] else []
        theirs = {c: printed[0].value(c) for c in columns} if printed else {c: None for c in columns}
        if printed:  # the paper's units: M and G
            theirs = {c: (v * (1e6 if c == "Param" else 1e9 if c == "Flops" else 1)) if v is not None else None
                      for c, v in theirs.items()}
        diff = {c: (ours[c]["mean"] - theirs[c]) if ours[c].get("n") and theirs[c] is not None else None
                for c in columns}
        rows.append({**{k: row[k] for k in ("scale", "method", "setting", "label")},
                     "reference": bool(row.get("reference")), "paper": theirs, "ours": ours, "difference": diff,
                     "paper_source": printed[0].source if printed else None,
                     "paper_note": printed[0].note if printed else "", "runs": records})
    n_done = sum(r["finished"] for row in rows for r in row["runs"])
    n_runs = len({r["name"] for r in runs})
    result = {"table": table, "title": paper.TABLES[table], "dataset": dataset, "size": size,
              "runs_finished": n_done, "runs": n_runs, "commits": sorted(all_commits), "rows": rows,
              "expected_cpu_s": sum(cpu.values()), "expected_gpu_s": sum(gpu.values()), "time_model": how}
    text = _markdown(result, columns, runs)
    for stem in ("report", f"table_{table}"):  # table_<T>: kept when several tables share the folder
        write_text(out / f"{stem}.json", json.dumps(result, indent=1) + "\n")
        write_text(out / f"{stem}.md", text)
    return result


def _markdown(res: dict, columns, runs) -> str:
    size_note = {
        "paper": ("the paper's model sizes and the configs as shipped (300 epochs of batch 32 and Adam 1e-4 "
                  "cosine: choices where the paper's values are lost, docs/design.md 5.1)."),
        "cpu": ("CPU size: LKCA 64 features and a quarter of the paper's LKBs, SSPSR width 32 of 256, MSDformer 60 "
                "of 240, ESSAformer 32 of 256, 1200 steps of batch 16, x8 on 64 x 64 HR patches; not the paper's "
                "models."),
        "tiny": ("**tiny: stand-in cubes (smooth random, not data) and models a few channels wide trained for 2 steps. "
                 "The numbers below check the machinery and mean nothing.**"),
    }[res["size"]]
    lines = [f"# Table {res['table']}: {res['title']}", "",
             f"Dataset: {res['dataset']}. Size: {size_note}", "",
             f"Runs finished: {res['runs_finished']} of {res['runs']}. Trained at commit(s): "
             f"{', '.join(res['commits']) or 'none yet'}.", "",
             (f"Expected time of the table: {_duration(res['expected_cpu_s'])} ({res['time_model']})."
              if res["size"] == "tiny" else
              f"Expected time of the table: {_duration(res['expected_cpu_s'])} on the 2-core CPU, "
              f"{_duration(res['expected_gpu_s'])} on one H100-class GPU (estimate). {res['time_model']}"), "",
             "Each row: ours (mean +- sample std over seeds, n), the paper's value, ours minus the paper's. "
             "Param and Flops of ours are those of the trained model (at this size).", "",
             "| Row | | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    for row in res["rows"]:
        n = max((row["ours"][c].get("n", 0) for c in columns), default=0)
        total = len(row["runs"])
        if n:
            cells = []
            for c in columns:
                s = row["ours"][c]
                std = "" if s.get("std") is None or c in ("Param", "Flops") else f" +- {_fmt(s['std'], c)}"
                cells.append(_fmt(s["mean"], c) + std)
            lines.append(f"| {row['label']} | ours (n={n} of {total}) | " + " | ".join(cells) + " |")
        else:
            lines.append(f"| {row['label']} | ours | " + " | ".join(["not finished"] * len(columns)) + " |")
        lines.append("| | paper | " + " | ".join(_fmt(row["paper"][c], c) for c in columns) + " |")
        lines.append("| | difference | " + " | ".join(
            "-" if row["difference"][c] is None else
            (f"{row['difference'][c] / 1e6:+.3f}M" if c == "Param" else f"{row['difference'][c] / 1e9:+.3f}G"
             if c == "Flops" else f"{row['difference'][c]:+.4f}") for c in columns) + " |")
    lines += [f"\nNote on {row['label']}: {row['paper_note']}." for row in res["rows"] if row["paper_note"]]
    lines += ["", "## Runs", "", "| Run | finished | commit | wall | expected (CPU) | expected (GPU, estimate) |",
              "|---|---|---|---|---|---|"]
    seen = set()
    for row in res["rows"]:
        for r in row["runs"]:
            if r["name"] in seen:
                continue
            seen.add(r["name"])
            wall = _duration(r["wall_s"]) if r["wall_s"] is not None else "-"
            lines.append(f"| {r['name']} | {'yes' if r['finished'] else 'no'} | {r['commit'] or '-'} | {wall} | "
                         f"{_duration(r['expected_cpu_s'])} | {_duration(r['expected_gpu_s'])} |")
    teachers = sorted({r["name"] for r in runs} - seen)
    if teachers:
        lines += ["", f"Teachers trained for the KD rows (not rows of the table): {', '.join(teachers)}."]
    lines += ["", "Every run's command is in commands.sh beside this report."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- main

def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard {text!r}: expected i/n, e.g. 1/3") from None
    if not 1 <= i <= n:
        raise argparse.ArgumentTypeError(f"--shard {text!r}: need 1 <= i <= n")
    return i, n


def _methods(text: str) -> tuple[str, ...]:
    names = tuple(m for m in text.split(",") if m)
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"--methods {text!r}: known methods are {', '.join(METHODS)}")
    return names


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", required=True, choices=list(paper.TABLES))
    parser.add_argument("--dataset", help="run the table on this registered dataset instead of the paper's")
    parser.add_argument("--data", help="the dataset's file (or folder), as config.data.path; not for --scale tiny")
    parser.add_argument("--scale", default="paper", choices=list(SIZES), help="paper | cpu | tiny (see above)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0 .. N-1 of every trained row")
    parser.add_argument("--shard", type=_shard, default=(1, 1), help="i/n: run every n-th run, from the i-th")
    parser.add_argument("--methods", type=_methods, default=(),
                        help="comma-separated methods (net,lr,kd,vdsr,...): only their rows of the table, and the "
                             "teachers their KD rows need (default: every row)")
    parser.add_argument("--report-only", action="store_true", help="only write the report from finished runs")
    parser.add_argument("--out", required=True, help="the table's folder: one workdir per run, the report")
    args = parser.parse_args(argv)
    from lkca_jax.data.registry import DATASETS

    dataset = args.dataset or TABLE_DATASET[args.table]
    known = [n for n, d in DATASETS.items() if n in _cost().SCENES or (d.layout == "scenes" and d.bands)]
    if dataset not in known:  # the recipe needs each scene's size, for the epochs of a run
        parser.error(f"--dataset {dataset!r}: the recipe knows {', '.join(known)}")
    if not (ROOT / "configs" / f"{dataset}.py").is_file():
        parser.error(f"--dataset {dataset!r}: no configs/{dataset}.py")
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    if args.scale == "tiny" and args.data:
        parser.error("--scale tiny uses stand-in cubes: leave out --data")
    if args.scale != "tiny" and not args.report_only and not args.data and not DATASETS[dataset].embedded:
        default = "../shared/data/cave" if dataset == "cave" else None
        if not default or not (ROOT / default).exists():
            parser.error(f"--data: the {dataset} file is needed at --scale {args.scale}; "
                         f"where to get it: {DATASETS[dataset].download or DATASETS[dataset].homepage}")
    if args.data and not pathlib.Path(args.data).exists():
        parser.error(f"--data {args.data}: no such file or folder")
    out = pathlib.Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = str(pathlib.Path(args.data).resolve()) if args.data else None
    runs = plan(args.table, dataset, args.scale, args.seeds, out, data, args.methods)
    if not runs:
        parser.error(f"--methods {','.join(args.methods)}: Table {args.table} has no rows of these methods")
    if args.scale == "tiny":
        write_standin(out / "standin" / f"{dataset}.npz", DATASETS[dataset].bands)
    estimate = estimates(runs, dataset, args.scale)
    code = 0
    if not args.report_only:
        _check_manifest(out, {"dataset": dataset, "size": args.scale, "data": data})
        # Ctrl-C and SIGTERM stop between or inside runs (each run saves and exits on its own signal),
        # also when the shell started this in the background with SIGINT ignored
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            run_all(runs, out, args.shard, estimate[0], tiny=args.scale == "tiny")
        except KeyboardInterrupt:
            print(f"interrupted: the same command resumes (finished runs are kept in {out})", file=sys.stderr)
            return 130
        except RunFailed as err:
            print(f"error: {err}", file=sys.stderr)
            code = 1
    report(args.table, dataset, args.scale, runs, out, estimate, args.methods)  # from whatever has finished
    print((out / "report.md").read_text())
    return code


def _check_manifest(out: pathlib.Path, facts: dict) -> None:
    """The folder's dataset, size and data, written by its first run: a run of another size or data
    in the same folder would be mistaken for this one's (its runs have the same names)."""
    path = out / "recipe.json"
    if path.is_file():
        before = json.loads(path.read_text())
        differs = [f"{k} {before.get(k)!r} (now {v!r})" for k, v in facts.items() if before.get(k) != v]
        if differs:
            print(f"error: {out} holds runs of another setting: {', '.join(differs)}; use another --out",
                  file=sys.stderr)
            sys.exit(2)
    else:
        write_text(path, json.dumps(facts) + "\n")


if __name__ == "__main__":
    sys.exit(main())
