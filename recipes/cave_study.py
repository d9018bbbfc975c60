"""The CAVE study of docs/results.md: LKCA-Net, LKCA-LR, LKCA-KD and the KD control (LKCA-LR clipped as KD
is) with five seeds at x4 and at x8, the compared methods under one wall-clock budget (LKCA-Net's
training time; widths reduced on the CPU), the seed-0 teacher compressed without retraining (grouped
g = 8 and SVD at its 90 % rank; the paper trains its low-rank models from scratch, this is an extra
experiment of ours), optionally the KD ablations of the paper's Tables II-IV and the normalisation
choice, then the report (tables with the seed spread and paired 95 % intervals, the convergence check,
learning curves, Fig. 4, comparison figures) and, with ``--ship``, the six shipped models: x4's
LKCA-Net, LR and KD wider (4 LKBs of 96) and trained longer than the study's runs, then continued at a
lower rate; x8's seed-0 runs continued (:data:`SHIP`).

    python recipes/cave_study.py --out runs/cave_study            # CPU size (docs/results.md: its hours)
    python recipes/cave_study.py --out runs/cave_study --paper    # the paper's sizes (GPU)
    python recipes/cave_study.py --out runs/cave_study --report --ship --docs docs/img   # report, models
    python recipes/cave_study.py --out runs/cave_study --records docs/records/cave_study   # kept, resumable

``--records``: each finished run's config, log, test table, spectrum and record (not its weights) are
copied there as it finishes, and copied back first where ``--out`` lacks them, so that a study whose
machine was replaced goes on from what was committed (:func:`archive`, :func:`restore`).

Run from the repository root, beside ``../shared/data/cave`` (the 16 scenes; configs/cave.py's split).
Every run is an ordinary ``train.py`` / ``evaluate.py`` command, appended to ``<out>/commands.sh`` as
it starts; a rerun resumes an unfinished run from its checkpoint and skips a finished one (its
``eval/test.json`` exists). The report is rewritten from whatever has finished.

Sizes. CPU: 4 LKBs of 64 features (the paper: 16 of 128), 4800 steps of batch 16 (3.9 epochs of
all-8 copies at x4, 17.8 at x8, whose 128 x 128 patches are fewer), Adam at 1e-3 cosine-decayed to
1e-6, EMA of the weights (decay 0.99: validated, tested and shipped). ``--paper``: 16 of 128, batch
32, lr 1e-4, 300 epochs, the compared methods on their own published schedules. The paper's tables
themselves: recipes/paper.py (``--dataset cave`` for CAVE).

The budget of the compared methods. Each trains for as many steps as fill the training time of an
x4 LKCA-Net run of the study (its steps / steps per second), every rate, LKCA-Net's included, measured
by a 60-step run of its config on one machine (``<out>/calibrate/``; the budget, the rates, the
steps and the machine in ``<out>/budget.json``, written once, so that a rerun or a study restored
elsewhere gets the same steps). The LKCA rows of that table are the median-validation seeds.

Order, one run at a time (the compared methods' budget rests on measured rates; a second process
would move them): the x4 runs, the shipped models' runs (x4's, then x8's seed-0 runs and x8's), the
compression, the compared methods, then x8's other runs (seed 0's control, then seeds 1-4, each seed's
LKCA-Net before its LKCA-KD).

The shipped models (:data:`SHIP`), seed 0 each, a rule set (instead of the median-validation seed,
which waits for every seed) when seeds 0 and 1 of x4 had finished, with seed 0 the lower of the two in
test MPSNR for all three variants: not chosen by its score. Each trains in one or more stages, a run
each (``ship_x<r>_lkca_<variant>``, then ``..._stage2``, ...), the last one shipped. x4, two stages:
LKCA-Net, LR and KD of 4 LKBs of 96 features (the study's 64) trained from scratch for 7200 steps (the
study's runs then 2400) with the study's schedule otherwise: a wider model for a larger margin over Bicubic on
scenes it has not seen (docs/results.md); then each continued from its last EMA weights (the ones that
shipped before the second stage) for 2400 steps at 5e-4, cosine-decayed, as x8's are. x8, one stage:
the seed-0 run continued from its best EMA weights (``train.init_from``; Adam anew) for 2400 more steps
at 5e-4, cosine-decayed, everything else as the study's run. Each stage's KD learns from the same
stage's LKCA-Net (its best-validation checkpoint, ``teacher.which``'s default, which need not be the
one that ships), a continuation's decay starting again at lambda0 and scaled to its length. At the
paper's size (300 epochs) the seed-0 runs are shipped as they are.

The KD decay period is scaled with the run's length: the paper decays lambda by 0.66 every 10 epochs,
thirty times over 300 (MSDformer's length, taken for the paper's, whose own is lost); a run of E
epochs decays every E / 30 epochs (``--config.teacher.decay_epochs``, fractional; batches carry
fractional epochs). Each KD seed
learns from the LKCA-Net teacher of its own scale and seed.
"""

from __future__ import annotations

import argparse
import collections
import functools
import importlib.util
import itertools
import json
import os
import pathlib
import platform
import re
import shlex
import subprocess
import sys

CONFIG = "configs/cave.py"
# CAVE's training patches (11 scenes, windows of 16 r stride 8 r: 15 x 15 at x4, 7 x 7 at x8); an epoch
# is 8 dihedral copies of each
PATCHES = {4: 2475, 8: 539}
SEEDS = {4: (0, 1, 2, 3, 4), 8: (0, 1, 2, 3, 4)}  # LKCA-Net, LKCA-LR, LKCA-KD and the KD control
VARIANTS = {"net": "net", "lr": "lr", "kd": "kd", "lr_clip": "lr"}  # the study's variants and their methods
DISPLAY = {"net": "LKCA-Net", "lr": "LKCA-LR", "kd": "LKCA-KD", "lr_clip": "LKCA-LR, clipped as KD (control)"}
# The compared methods under one wall-clock budget: each trains for as many steps as take its measured
# step time to fill LKCA-Net's training time (:func:`budget_steps`). Widths reduced on the CPU, as the
# labels say; MSDformer and ESSAformer as published and with the bicubic residual (docs/results.md).
COMPARED = (
    ("vdsr", "vdsr", "VDSR", {}),
    ("fcnn3d", "fcnn3d", "3D-FCNN", {}),
    ("sspsr", "sspsr", "SSPSR (width 32 of 256)", {"model.sspsr.features": 32}),
    ("msdformer", "msdformer", "MSDformer (width 60 of 240)", {"model.msdformer.features": 60}),
    ("msdformer_residual", "msdformer", "MSDformer (width 60 of 240), bicubic residual",
     {"model.msdformer.features": 60, "model.bicubic_residual": True}),
    ("essaformer", "essaformer", "ESSAformer (width 32 of 256)", {"model.essaformer.features": 32}),
    ("essaformer_residual", "essaformer", "ESSAformer (width 32 of 256), bicubic residual",
     {"model.essaformer.features": 32, "model.bicubic_residual": True}),
)
# The comparison figures' zoom boxes (y, x, size), where the most textured window (figures.default_box)
# is not the scene: real_and_fake_peppers has little texture outside its colour chart's printed name,
# so its box is given, on the left pepper's specular highlight, where Bicubic errs most off the chart;
# pompoms' most textured window reaches into its grey chart, so its box is a junction of five pompoms
BOXES = {"real_and_fake_peppers/0_0_512x512": (280, 144, 64), "pompoms/0_0_512x512": (170, 160, 64)}
SHIP_SEED = 0
# How each scale's shipped models train (module docstring), stage by stage, a run each: steps, Adam's
# rate, the model's size where it differs from the study's (kept by later stages), and whether the first
# stage continues the study's seed-0 run (else from scratch); a later stage always continues the one
# before it. A continuation starts from its "init_which" checkpoint's EMA weights (default best).
# x4: 4 of 96 for 7200 steps (probe: 4 of 96 for 2400 steps reached 38.57 dB, the study's 4 of 64 38.35),
# still rising 0.02-0.03 dB over its last quarter: continued from the weights it shipped with before.
# x8 (17.8 epochs already; the x8 models shipped now continued the 2400-step study's runs, 8.9): its
# seed-0 run continued, as a study run continued 2400 steps at 5e-4 rose 0.17 dB on the test scenes
# (LKCA-LR x4 seed 0: 38.15 -> 38.32 dB)
SHIP = {4: ({"steps": 7200, "lr": 1e-3, "model": {"model.features": 96}, "continues": False},
            {"steps": 2400, "lr": 5e-4, "init_which": "last"}),
        8: ({"steps": 2400, "lr": 5e-4, "continues": True},)}
CALIBRATION_STEPS = 60  # a compared method's step time: the median rate of its logged intervals after the first


def sizes(paper: bool) -> dict:
    if paper:
        return {"model": {}, "steps": 0, "epochs": 300, "batch": 32, "lr": 1e-4, "eval_every": 2000, "ema": 0.999}
    # lr 1e-3 and EMA 0.99 (5e-4 with EMA 0.999 was still rising at the end of 2400 steps); 4800 steps:
    # at 2400, 8 of the 20 x4 seed runs still rose 0.03-0.08 dB over their last quarter (docs/results.md,
    # "Size, for this 2-core CPU")
    return {"model": {"model.depth": 4, "model.features": 64}, "steps": 4800, "epochs": 0, "batch": 16,
            "lr": 1e-3, "eval_every": 100, "ema": 0.99}


def steps_per_epoch(scale: int, batch: int) -> int:
    """As the trainer counts them: the 8 dihedral copies of every training patch, whole batches."""
    return PATCHES[scale] * 8 // batch


def run_epochs(run: dict) -> float:
    """The epochs a run of the study trains for (its steps, or its epochs when it counts in epochs)."""
    o = run["overrides"]
    steps = o.get("train.num_steps", 0)
    return steps / steps_per_epoch(run["scale"], o["train.batch_size"]) if steps else o["train.num_epochs"]


def run_name(variant: str, seed: int, scale: int = 4) -> str:
    return f"{'' if scale == 4 else f'x{scale}_'}lkca_{variant}_s{seed}"


def common_overrides(s: dict) -> dict:
    """The schedule every run of the study shares: batch, Adam's rate cosine-decayed, EMA weights
    (validated, tested and shipped), logging."""
    common = {"train.batch_size": s["batch"], "train.learning_rate": s["lr"], "train.schedule": "cosine",
              "train.ema_decay": s["ema"], "train.log_every_steps": 50, "train.eval_every_steps": s["eval_every"],
              "train.checkpoint_every_steps": s["eval_every"], "train.keep_checkpoints": 1}
    if s["steps"]:
        common["train.num_steps"] = s["steps"]
    else:
        common["train.num_epochs"] = s["epochs"]
    return common


def plan(out: pathlib.Path, paper: bool, ablations: bool = False) -> list[dict]:
    """Every LKCA run of the study: name, method, variant, scale, seed, config overrides (the teacher's
    workdir for KD). The compared methods follow once LKCA-Net's time is known: :func:`compared_runs`."""
    s = sizes(paper)
    common = common_overrides(s)
    lkca = {**s["model"], **common}
    runs = []
    for scale, seeds in SEEDS.items():
        epochs = s["epochs"] or s["steps"] / steps_per_epoch(scale, s["batch"])
        # KD: the decay period scaled to the run, and the global gradient norm clipped at 0.1 (about the
        # largest the LR student reaches without KD; docs/results.md): the cosine term of L_KD is singular
        # at the zero-initialised student's features, and its first gradients (323x the supervised one,
        # measured) would fill Adam's second moments for the rest of a short run. The control: LKCA-LR
        # clipped the same way, so that KD - control isolates the distillation.
        clip = {"train.grad_clip_norm": 0.1}
        kd = {"teacher.decay_epochs": round(epochs / 30, 6), **clip}
        extra = {"net": {}, "lr": {}, "lr_clip": clip, "kd": kd}
        for seed in seeds:
            for variant in ("net", "lr", "kd", "lr_clip"):
                overrides = {**lkca, **extra[variant], "train.seed": seed}
                if variant == "kd":
                    overrides["teacher.workdir"] = str(out / run_name("net", seed, scale))
                runs.append({"name": run_name(variant, seed, scale), "method": VARIANTS[variant], "variant": variant,
                             "scale": scale, "group": "seeds", "seed": seed, "overrides": overrides})
    if ablations:  # the paper's Tables II-IV settings and the normalisation, x4 seed 0
        kd0 = next(r for r in runs if r["name"] == run_name("kd", 0))["overrides"]
        for name, change, label in [("kd_noclip_s0", {"train.grad_clip_norm": 0.0}, "no gradient clipping"),
                                    ("kd_decay1", {"teacher.gamma": 1.0}, "decay 1.0 (no decay)"),
                                    ("kd_lambda01", {"teacher.lambda0": 0.1}, "lambda0 0.1"),
                                    ("kd_nocos", {"teacher.cos_weight": 0.0}, "without the cosine term")]:
            runs.append({"name": name, "method": "kd", "variant": "kd", "scale": 4, "group": "ablation",
                         "label": label, "seed": 0, "overrides": {**kd0, **change}})
        runs.append({"name": "lkca_net_layernorm_s0", "method": "net", "variant": "net", "scale": 4, "group": "norm",
                     "seed": 0, "label": "LKCA-Net, model.norm layer",
                     "overrides": {**lkca, "model.norm": "layer", "train.seed": 0}})
    runs.append({"name": "bicubic", "method": "bicubic", "variant": "bicubic", "scale": 4, "group": "compared",
                 "seed": 0, "label": "Bicubic", "overrides": {}})
    return runs


def compared_runs(paper: bool, steps: dict | None = None) -> list[dict]:
    """The compared methods (:data:`COMPARED`) at x4, seed 0; ``steps``: {name: steps} from
    :func:`budget_steps` (without it, the study's LKCA step count: the calibration and the tests)."""
    s = sizes(paper)
    runs = []
    for name, method, label, change in COMPARED:
        overrides = {**common_overrides(s), **({} if paper else change), "train.seed": 0}
        if steps:
            overrides["train.num_steps"] = steps[name]
        runs.append({"name": name, "method": method, "variant": method, "scale": 4, "group": "compared", "seed": 0,
                     "label": label if not paper else label.split(" (")[0], "overrides": overrides})
    return runs


def ship_name(variant: str, scale: int, stage: int = 0) -> str:
    """The run of ``stage`` (0, 1, ...) of the shipped cave-x<scale>-lkca-<variant>."""
    return f"ship_x{scale}_lkca_{variant}" + (f"_stage{stage + 1}" if stage else "")


def ship_runs(out: pathlib.Path, runs: list[dict], paper: bool) -> list[dict]:
    """The runs the shipped models come from at the CPU size, each scale's LKCA-Net, LR and KD stage by
    stage as :data:`SHIP` says (module docstring), each stage's LKCA-Net before its KD; at the paper's
    size none (the seed-0 runs are shipped)."""
    if paper:
        return []
    by_name = {r["name"]: r for r in runs}
    ship = []
    for scale, stages in SHIP.items():
        previous = {v: by_name[run_name(v, SHIP_SEED, scale)] for v in SHIPPED}
        for stage, how in enumerate(stages):
            for variant in SHIPPED:
                before = previous[variant]
                overrides = {k: v for k, v in before["overrides"].items()
                             if k not in ("train.init_from", "train.init_which")}
                overrides.update({**how.get("model", {}), "train.num_steps": how["steps"],
                                  "train.learning_rate": how["lr"]})
                if stage or how["continues"]:
                    overrides["train.init_from"] = str(out / before["name"])
                    if "init_which" in how:
                        overrides["train.init_which"] = how["init_which"]
                if variant == "kd":
                    epochs = run_epochs({"scale": scale, "overrides": overrides})
                    overrides["teacher.decay_epochs"] = round(epochs / 30, 6)
                    overrides["teacher.workdir"] = str(out / ship_name("net", scale, stage))
                label = f"{DISPLAY[variant]}, {ship_label(scale, stage + 1)}"
                previous[variant] = {**before, "name": ship_name(variant, scale, stage), "group": "ship",
                                     "overrides": overrides, "label": label}
                ship.append(previous[variant])
    return ship


def ship_label(scale: int, stages: int | None = None) -> str:
    """How the shipped models of ``scale`` were trained (through their first ``stages`` stages; all by
    default), in a few words (:data:`SHIP`)."""
    first, *later = SHIP[scale][:stages]
    if first["continues"]:
        words = f"seed {SHIP_SEED} continued {first['steps']} steps"
    else:
        size = {**sizes(False)["model"], **first.get("model", {})}
        words = f"{size['model.depth']} x {size['model.features']}, seed {SHIP_SEED}, {first['steps']} steps"
    return ", ".join([words, *(f"then {how['steps']} at {how['lr']:g}" for how in later)])


def continues(run: dict) -> str | None:
    """The name of the run that ``run`` continues (its ``train.init_from``), if any."""
    init = run.get("overrides", {}).get("train.init_from")
    return pathlib.Path(init).name if init else None


def shipped_from(done: dict, scale: int, variant: str, paper: bool) -> str | None:
    """The finished run that ships as cave-x<scale>-lkca-<variant> (its last stage), if any."""
    name = run_name(variant, SHIP_SEED, scale) if paper else ship_name(variant, scale, len(SHIP[scale]) - 1)
    return name if name in done else None


def lineage(done: dict, name: str) -> list[str]:
    """The runs that ``name`` continues (:func:`continues`), the first one first, back to the first
    that continues none or to one that has not finished (not in ``done``)."""
    chain, parent = [], continues(done[name]["run"])
    while parent is not None and parent in done and parent != name and parent not in chain:
        chain.insert(0, parent)
        parent = continues(done[parent]["run"])
    return chain


def started_at(done: dict, name: str) -> int:
    """The steps of the runs that ``name`` continues, in all (where its curve starts in the plot): each
    one's ``train.num_steps``, or its curve's last step where it counts in epochs."""
    return sum(done[n]["run"].get("overrides", {}).get("train.num_steps")
               or (done[n]["curve"][-1][0] if done[n]["curve"] else 0) for n in lineage(done, name))


def step_rate(rows: list[dict]) -> float | None:
    """Steps per second from a run's logged rows (``metrics.jsonl``): the median over its intervals,
    leaving out the first (which holds the compilation) and each one that follows a validation (which
    held it in the logs of runs trained before the trainer timed training alone; the study's records
    are such runs); None when no interval is left."""
    rates = sorted(r["steps_per_second"] for prev, r in zip(rows, rows[1:])
                   if "val_mpsnr" not in prev and "steps_per_second" in r)
    return rates[len(rates) // 2] if rates else None


def training_rate(workdir: pathlib.Path) -> float:
    """:func:`step_rate` of the run in ``workdir``, which must have logged one."""
    rate = step_rate([json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()])
    if rate is None:
        raise RuntimeError(f"{workdir}: no steps/s logged past the first interval outside validation")
    return rate


def budget_steps(out: pathlib.Path, paper: bool) -> dict:
    """{compared method: steps} that give each the training time of an x4 LKCA-Net run of the study
    (its steps over its steps per second): every rate, LKCA-Net's included, measured by a short
    calibration run of its config on the machine that computes the budget (``<out>/calibrate/<name>``),
    so that a study whose machine was replaced does not mix two machines' rates. Written once to
    ``<out>/budget.json`` (with the machine) and read from there afterwards: a rerun, or a study
    restored from its records, trains every compared method for the same steps."""
    if paper:  # the paper's size: every method its configured schedule (methods.py)
        return {}
    if (out / "budget.json").is_file():
        return json.loads((out / "budget.json").read_text())["steps"]
    reference = {**next(r for r in plan(out, paper) if r["name"] == run_name("net", 0)), "name": "lkca_net"}
    rates = {}
    for run in [reference, *compared_runs(paper)]:
        cal = out / "calibrate" / run["name"]
        if not (cal / "eval" / "test.json").is_file():
            calib = {**run, "overrides": {**run["overrides"], "train.num_steps": CALIBRATION_STEPS,
                                          "train.log_every_steps": max(1, CALIBRATION_STEPS // 6),
                                          "train.eval_every_steps": 10 ** 6,
                                          "train.checkpoint_every_steps": 10 ** 6}}
            _call(out, command(calib, out / "calibrate")[1:], "calibrate")
        rates[run["name"]] = training_rate(cal)
    budget = sizes(paper)["steps"] / rates.pop("lkca_net")
    steps = {name: max(1, round(budget * rate)) for name, rate in rates.items()}
    _write_json(out / "budget.json", {"lkca_net_train_s": budget, "steps": steps, "steps_per_second": rates,
                                      "machine": f"{platform.node()} ({platform.processor() or platform.machine()}, "
                                                 f"{os.cpu_count()} CPUs)"})
    return steps


def _write_json(path: pathlib.Path, value) -> None:
    _recipe().write_text(path, json.dumps(value, indent=1) + "\n")


@functools.cache
def _recipe():
    """recipes/paper.py, whose runner this study shares (loaded once)."""
    spec = importlib.util.spec_from_file_location("paper_recipe", pathlib.Path(__file__).with_name("paper.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def as_recipe_run(run: dict) -> dict:
    """The study's run in recipes/paper.py's form (script, config spec, overrides, teacher)."""
    teacher = run["overrides"].get("teacher.workdir")
    return {**run, "script": "evaluate.py" if run["method"] == "bicubic" else "train.py",
            "config": f"{CONFIG}:x{run['scale']},{run['method']}",
            "teacher": pathlib.Path(teacher).name if teacher else None}


def command(run: dict, out: pathlib.Path) -> list[str]:
    cmd = _recipe().command(as_recipe_run(run))
    cmd[cmd.index(None)] = str(out / run["name"])
    return [sys.executable, *cmd]


def for_shipping(out: pathlib.Path, runs: list[dict], paper: bool) -> list[dict]:
    """The runs the shipped models need, in order, scale by scale: the seed-0 runs of ``runs``
    (:func:`plan`'s), which x8's continue, then the shipped runs (:func:`ship_runs`)."""
    ship = ship_runs(out, runs, paper)
    return [r for scale in SEEDS for r in runs + ship if r["scale"] == scale and r["variant"] in SHIPPED
            and (r["group"] == "ship" or r["group"] == "seeds" and r["seed"] == SHIP_SEED)]


def train_all(out: pathlib.Path, runs: list[dict], paper: bool, after=None) -> list[dict]:
    """Every run through recipes/paper.py's runner (commands.sh, logs, resume), one at a time in the
    module docstring's order (``after``: called with each run's name as it finishes). Returns the
    compared runs."""
    recipe = _recipe()
    run = lambda rs: recipe.run_all([as_recipe_run(r) for r in rs], out, after=after)
    x4 = [r for r in runs if r["scale"] == 4]
    ship = [r for r in for_shipping(out, runs, paper) if r not in x4]
    run(x4)
    run(ship)
    compress(out)
    compared = compared_runs(paper, budget_steps(out, paper))
    run(compared)
    run([r for r in runs if r not in x4 + ship])
    return compared


# ---------------------------------------------------------------------------------------------- records

# What the records keep of a finished run (``--records``): its config, its log, its test table and, for a
# run the report draws Fig. 4 from, its upsampler's spectrum; not its weights (megabytes each)
KEPT = ("config.json", "metrics.jsonl", "eval/test.json", "rank/rank.json")


def has_weights(workdir: pathlib.Path) -> bool:
    return any((workdir / "checkpoints").glob("*"))


def weight_readers(runs: list[dict]) -> dict[str, set[str]]:
    """name -> the runs that read its weights: a KD run its teacher's, a continuation its source's, the
    compression lkca_net_s0's."""
    readers = collections.defaultdict(set)
    for run in runs:
        for field in ("teacher.workdir", "train.init_from"):
            if run["overrides"].get(field):
                readers[pathlib.Path(run["overrides"][field]).name].add(run["name"])
    readers["lkca_net_s0"].update(compress_names())
    return readers


def _copy(src: pathlib.Path, dst: pathlib.Path) -> None:
    _recipe().write_text(dst, src.read_text())


def _kept(root: pathlib.Path, name: str) -> list[str]:
    """The files of :data:`KEPT` that ``root/name`` holds, and its record ``logs/<name>.json`` (none for
    a calibration, ``calibrate/<method>``)."""
    files = [f"{name}/{f}" for f in KEPT if (root / name / f).is_file()]
    record = root / "logs" / f"{name}.json"
    return files + ([f"logs/{name}.json"] if "/" not in name and record.is_file() else [])


def is_lkca_net(name: str) -> bool:
    """A study run whose upsampler's spectrum Fig. 4 shows: an LKCA-Net seed (x4 or x8) or the
    LayerNorm run."""
    return re.fullmatch(r"(x8_)?lkca_net_s\d+|lkca_net_layernorm_s0", name) is not None


def spectrum_file(out: pathlib.Path, workdir: pathlib.Path) -> pathlib.Path:
    """The upsampler's spectrum of a finished LKCA-Net run (its last EMA weights), computed once, by a
    process of its own (which holds the accelerator only while it runs)."""
    path = workdir / "rank" / "rank.json"
    if not path.is_file():
        _call(out, ["-m", "lkca_jax", "rank", "--workdir", str(workdir), "--which", "last"], "records")
    return path


def _names(runs: list[dict]) -> list[str]:
    """Every run the records keep: ``runs``, the compression, the compared methods' calibrations."""
    cal = ["lkca_net", *(n for n, *_ in COMPARED)]
    return [r["name"] for r in runs] + compress_names() + [f"calibrate/{n}" for n in cal]


def archive(out: pathlib.Path, runs: list[dict], records: pathlib.Path) -> list[str]:
    """Copy what :data:`KEPT` names of every finished run (``runs``, the compression, the compared
    methods' calibrations) into ``records``, with each run's record (commit, wall-clock, command) and
    ``budget.json``: enough to write the report and to resume the study on another machine
    (:func:`restore`). An LKCA-Net's spectrum is computed first. Returns the runs copied anew."""
    copied = []
    for name in _names(runs):
        workdir = out / name
        if not (workdir / "eval" / "test.json").is_file():
            continue
        if is_lkca_net(name) and has_weights(workdir):
            spectrum_file(out, workdir)
        new = False
        for f in _kept(out, name):
            if not (records / f).is_file() or (records / f).read_text() != (out / f).read_text():
                _copy(out / f, records / f)
                new = True
        if new:
            copied.append(name)
    if (out / "budget.json").is_file():
        _copy(out / "budget.json", records / "budget.json")
    return copied


def restore(out: pathlib.Path, runs: list[dict], records: pathlib.Path) -> list[str]:
    """Copy back into ``out`` each run finished in ``records`` that ``out`` lacks, so that the study
    skips it, unless a run that reads its weights (:func:`weight_readers`) neither has finished in
    ``out`` nor is restored itself: that one trains again (its record replaced), and so, down a chain
    (a continuation's source, a teacher), does every run whose weights it needs. Not a run that
    ``out`` holds a checkpoint of (it resumes), nor a calibration (the budget, ``budget.json``, is
    restored instead: the rates are of the machine that measured them). Returns the runs restored."""
    readers = weight_readers(runs)
    done_here = lambda name: (out / name / "eval" / "test.json").is_file()
    keep = {name for name in _names(runs) if not name.startswith("calibrate/") and not done_here(name)
            and not (out / name / "checkpoints").exists() and (records / name / "eval" / "test.json").is_file()}
    while True:  # drop a run whose weights a run that will train needs, until none is left to drop
        drop = {name for name in keep if any(not done_here(r) and r not in keep for r in readers.get(name, ()))}
        if not drop:
            break
        keep -= drop
    restored = [name for name in _names(runs) if name in keep]
    for name in restored:
        for f in _kept(records, name):
            _copy(records / f, out / f)
    if (records / "budget.json").is_file() and not (out / "budget.json").is_file():
        _copy(records / "budget.json", out / "budget.json")
    return restored


def compress_names(teacher: str = "lkca_net_s0") -> list[str]:
    return [f"{teacher}_grouped", f"{teacher}_svd"]


def compress(out: pathlib.Path, teacher: str = "lkca_net_s0") -> list[str]:
    """A compression without retraining (ours; the paper trains LKCA-LR from scratch): the seed-0
    teacher's dense upsampler to its block-diagonal part (grouped g = 8, LKCA-LR's shape) and to the
    truncated SVD at its 90 % rank, each evaluated as a run of its own. Returns the converted runs' names."""
    names = compress_names(teacher)
    for name, to in zip(names, ("grouped:8", "svd:90%")):
        if (out / name / "eval" / "test.json").is_file():
            continue
        if to == "svd:90%":
            spectrum = spectrum_file(out, out / teacher)
            to = f"svd:{next(iter(json.loads(spectrum.read_text()).values()))['rank90']}"
        if not (out / name / "config.json").is_file():
            _call(out, ["-m", "lkca_jax", "lowrank", "convert", "--workdir", str(out / teacher), "--to", to,
                        "--out", str(out / name), "--which", "last"], "compress")
        _call(out, ["evaluate.py", "--workdir", str(out / name)], "compress")
    return names


def _call(out: pathlib.Path, args: list[str], log_name: str) -> None:
    line = shlex.join(["python", *args])
    with open(out / "commands.sh", "a") as f:
        f.write(line + "\n")
    print(f"  {line}", flush=True)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    with open(out / "logs" / f"{log_name}.log", "a") as log:
        if subprocess.call([sys.executable, *args], stdout=log, stderr=subprocess.STDOUT):
            sys.exit(f"{line}: failed; see {out / 'logs' / f'{log_name}.log'}")


# ---------------------------------------------------------------------------------------------- report

METRICS = ("MPSNR", "MSSIM", "SAM", "ERGAS")
SHIPPED = ("net", "lr", "kd")  # cave-x<r>-lkca-<variant>, at both scales


def finished(out: pathlib.Path, runs: list[dict], records: pathlib.Path | None = None) -> dict[str, dict]:
    """name -> {run, root (``out``, or ``records`` for a run finished only there), test (eval/test.json),
    curve [(step, val MPSNR)], best_val, train_s (its steps over its median step rate: the training time
    without validation and compilation, None without a log), record} of the finished runs."""
    done = {}
    for run in runs:
        root = next((r for r in (out, records) if r and (r / run["name"] / "eval" / "test.json").is_file()), None)
        if root is None:
            continue
        path = root / run["name"] / "eval" / "test.json"
        log = root / run["name"] / "metrics.jsonl"
        rows = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
        curve = [(r["step"], r["val_mpsnr"]) for r in rows if "val_mpsnr" in r]
        record = root / "logs" / f"{run['name']}.json"
        rate = step_rate(rows)  # None without a log (Bicubic, a compressed teacher) or with too short a one
        train_s = max(r["step"] for r in rows) / rate if rate else None
        done[run["name"]] = {"run": run, "root": root, "test": json.loads(path.read_text()), "curve": curve,
                             "train_s": train_s,
                             "best_val": max((v for _, v in curve), default=float("nan")),
                             "record": json.loads(record.read_text()) if record.is_file() else {}}
    return done


CONVERGED_DB = 0.02
# Student's t quantiles t(0.975, dof) for dof 1..30: the 95 % intervals of a mean over paired seeds and of
# a validation curve's trend
T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
        2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
        2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)


def convergence(curve: list[tuple[int, float]], tolerance: float = CONVERGED_DB) -> dict:
    """Whether a validation curve [(step, MPSNR)] has stopped rising: its least-squares trend over the
    last quarter of its steps (:func:`trend`: the line's change over the quarter) is at most
    ``tolerance`` dB. ``state`` says more: "flat" (converged, and its best in that quarter within
    ``tolerance`` of its best overall), "past its peak" (converged, its best earlier by more: on one
    validation scene, a decline that the test scenes need not share; docs/results.md) or "rising".
    Also the trend's 95 % half-width, the gap (best overall minus the quarter's best) and the quarter's
    rise (its best minus its value where it starts: the study's earlier test, which noise biases upward,
    as the best of several noisy points lies above their level; kept for comparison). Where the quarter
    holds fewer than 3 evaluations (a short run: a line through 2 points has no interval), the line is
    fitted through the last 3 (``widened``: how many points it ran through, 0 where it was not widened)
    and its change still given over the quarter."""
    if len(curve) < 2:
        nan = float("nan")
        return {"rise": nan, "gap": nan, "converged": False, "state": "too short", "trend": (nan, nan),
                "widened": 0}
    last = curve[-1][0]
    start = last - (last - curve[0][0]) / 4
    points = [(step, v) for step, v in curve if step >= start]
    quarter = [v for _, v in points]
    before = [v for step, v in curve if step <= start]
    base = before[-1] if before else quarter[0]
    rise, gap = max(quarter) - base, max(v for _, v in curve) - max(quarter)
    window = points if len(points) >= 3 else curve[-3:]
    change = trend(window, last - start)
    converged = change[0] <= tolerance  # False for a quarter of one step (no line: nan)
    state = "too short" if change[0] != change[0] else "rising" if not converged \
        else "flat" if gap <= tolerance else "past its peak"
    return {"rise": rise, "gap": gap, "converged": converged, "state": state, "trend": change,
            "widened": 0 if window is points else len(window)}


def trend(points: list[tuple[int, float]], length: float) -> tuple[float, float]:
    """The least-squares line through ``points`` [(step, value)]: its change over ``length`` steps (nan
    below 2 distinct steps) and the half-width of that change's 95 % t-interval (n - 2 degrees of
    freedom, beyond 30 the quantile of 30, a slightly wider interval; nan below 3 points). Unlike the
    best-minus-start rise, noise does not bias it upward."""
    n = len(points)
    mx, my = sum(s for s, _ in points) / max(n, 1), sum(v for _, v in points) / max(n, 1)
    sxx = sum((s - mx) ** 2 for s, _ in points)
    if sxx == 0:
        return float("nan"), float("nan")
    slope = sum((s - mx) * (v - my) for s, v in points) / sxx
    if n < 3:
        return slope * length, float("nan")
    residual = sum((v - my - slope * (s - mx)) ** 2 for s, v in points)
    return slope * length, T975[min(n - 2, len(T975)) - 1] * (residual / (n - 2) / sxx) ** 0.5 * length


def convergence_table(done: dict) -> str:
    lines = [f"Converged: validation MPSNR has stopped rising, its least-squares trend over the last quarter of "
             f"the steps (the line's change over the quarter) at most {CONVERGED_DB} dB; flat where its best in "
             f"that quarter is also within {CONVERGED_DB} dB of its best overall, past its peak where it is not "
             "(one validation scene can decline while the test scenes still gain: docs/results.md). The trend's "
             "+- is the half-width of its 95 % interval: where it exceeds the tolerance, the curve is too noisy "
             "to tell a flat end from a slowly rising one. The rise (the quarter's best minus its start; the "
             "earlier test) is biased upward by noise and is shown for comparison. Where the quarter holds fewer "
             "than 3 evaluations, the line runs through the last 3 (marked).\n",
             "| Run | steps | trend over the last quarter (dB) | best overall - best of the last quarter (dB) "
             "| converged | rise over the last quarter (dB) | wall (s) |", "|---|---|---|---|---|---|---|"]
    for name, d in done.items():
        if d["curve"]:
            c = convergence(d["curve"])
            verdict = f"yes, {c['state']}" if c["converged"] else f"no, {c['state']}"
            wider = f" (last {c['widened']} evaluations)" if c["widened"] else ""
            lines.append(f"| {name} | {d['curve'][-1][0]} | {c['trend'][0]:+.4f} +- {c['trend'][1]:.4f}{wider} | "
                         f"{c['gap']:.4f} | {verdict} | {c['rise']:+.4f} | {d['record'].get('wall_s', '-')} |")
    return "\n".join(lines) + "\n"


def interval95(values) -> tuple[float, float]:
    """The mean of ``values`` and the half-width of its 95 % t-interval (n - 1 degrees of freedom)."""
    mean, std = _mean_std(values)
    n = len(values)
    return mean, (T975[n - 2] * std / n ** 0.5 if 1 < n <= len(T975) + 1 else float("nan"))


def _mean_std(values) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    return mean, (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5 if n > 1 else float("nan")


def _row(label: str, values: dict, fmt: str = "{:.4f}") -> str:
    return "| " + " | ".join([label, *(fmt.format(values[m]) for m in METRICS)]) + " |"


def seed_tables(done: dict, scale: int = 4) -> tuple[str, dict]:
    """The per-seed and mean +- std table of the LKCA family at ``scale``, the paired differences, and
    the median-validation seed of each variant."""
    head = "| Run | " + " | ".join(METRICS) + " | best val MPSNR |\n|---|" + "---|" * (len(METRICS) + 1)
    lines, summary, median = [head], {}, {}
    bicubic = next((d["test"]["bicubic"] for d in done.values()
                    if "bicubic" in d["test"] and d["run"].get("scale", 4) == scale), None)
    if bicubic:
        lines.append(_row("Bicubic", bicubic) + " - |")
    for variant in DISPLAY:
        names = [run_name(variant, s, scale) for s in SEEDS[scale] if run_name(variant, s, scale) in done]
        for name in names:
            lines.append(_row(f"{DISPLAY[variant]} seed {done[name]['run']['seed']}", done[name]["test"]["mean"])
                         + f" {done[name]['best_val']:.4f} |")
        if len(names) > 1:
            stats = {m: _mean_std([done[n]["test"]["mean"][m] for n in names]) for m in METRICS}
            summary[variant] = (stats, len(names))
            lines.append(f"| **{DISPLAY[variant]} mean +- std ({len(names)} seeds)** | "
                         + " | ".join(f"{a:.4f} +- {b:.4f}" for a, b in stats.values()) + " | |")
        if names:
            by_val = sorted(names, key=lambda n: done[n]["best_val"])
            median[variant] = by_val[(len(by_val) - 1) // 2]
    text = "\n".join(lines) + "\n"
    pairs = [("net", "lr"), ("kd", "lr"), ("kd", "lr_clip"), ("net", "kd")]
    diff_lines = ["Differences over paired seeds: mean +- half-width of the 95 % t-interval (n - 1 degrees of "
                  "freedom); an interval that contains 0 does not settle the ordering.\n",
                  "| Difference (same seed) | MPSNR dB | SAM deg | seeds | settled |", "|---|---|---|---|---|"]
    for a, b in pairs:
        seeds = [s for s in SEEDS[scale] if run_name(a, s, scale) in done and run_name(b, s, scale) in done]
        if len(seeds) > 1:
            test = {v: [done[run_name(v, s, scale)]["test"]["mean"] for s in seeds] for v in (a, b)}
            d = {m: interval95([x[m] - y[m] for x, y in zip(test[a], test[b])]) for m in ("MPSNR", "SAM")}
            mean, half = d["MPSNR"]
            verdict = "no" if abs(mean) <= half else (f"{DISPLAY[a]} higher" if mean > 0 else f"{DISPLAY[b]} higher")
            diff_lines.append(f"| {DISPLAY[a]} - {DISPLAY[b]} | {mean:+.4f} +- {half:.4f} | "
                              f"{d['SAM'][0]:+.4f} +- {d['SAM'][1]:.4f} | {len(seeds)} | {verdict} |")
    if bicubic:
        for variant, (stats, n) in summary.items():
            diff_lines.append(f"| {DISPLAY[variant]} - Bicubic (mean +- std) | "
                              f"{stats['MPSNR'][0] - bicubic['MPSNR']:+.4f} +- {stats['MPSNR'][1]:.4f} | "
                              f"{stats['SAM'][0] - bicubic['SAM']:+.4f} +- "
                              f"{stats['SAM'][1]:.4f} | {n} | |")
    return text + "\n" + "\n".join(diff_lines) + "\n", median


def other_table(done: dict, group: str, reference: list[str]) -> str:
    """The test table of ``reference`` runs and then every finished run of ``group``, with each run's
    size, steps, training time (steps over the median step rate) and the wall time of the command that
    finished it (validations and evaluation included)."""
    lines = ["| Run | " + " | ".join(METRICS) + " | Param | Flops | steps | train (s) | wall (s) |",
             "|---|" + "---|" * (len(METRICS) + 5)]
    for name in dict.fromkeys(reference + [n for n, d in done.items() if d["run"]["group"] == group]):
        if name in done:
            d = done[name]
            label = d["run"].get("label") or DISPLAY.get(d["run"].get("variant"), d["test"]["mean"]["Method"])
            steps = d["curve"][-1][0] if d["curve"] else "-"
            train = "-" if d["train_s"] is None else f"{d['train_s']:.0f}"
            lines.append(_row(f"{label} ({name})", d["test"]["mean"])
                         + f" {d['test']['mean']['Param'] / 1e6:.3f}M | {d['test']['mean']['Flops'] / 1e9:.3f}G |"
                         f" {steps} | {train} | {d['record'].get('wall_s', '-')} |")
    return "\n".join(lines) + "\n"


def validation_bicubic(workdir: pathlib.Path) -> float:
    """Bicubic's MPSNR on the validation split of ``workdir``'s run: the level the curves start from."""
    from lkca_jax import checkpoint, evaluation, inference
    from lkca_jax.data.datasets import load_splits
    from lkca_jax.data.spec import DataSpec

    config = checkpoint.load_config(workdir)
    split = load_splits(DataSpec.of(config), ("validation",))["validation"]
    return float(evaluation.score(inference.bicubic_config(config), {}, split)[0]["MPSNR"])


VARIANT_COLOURS = {"net": "#1f77b4", "lr": "#ff7f0e", "kd": "#2ca02c", "lr_clip": "#9467bd"}


def plot_curves(done: dict, path: pathlib.Path, bicubic: float | None = None,
                reference: str | None = None) -> list[dict]:
    """The x4 validation curves in two panels, Bicubic's level a black dashed line in each. Left: the
    LKCA variants, one colour per variant, its seeds thin lines and its shipped runs thick ones (a
    continuation drawn on from the steps of the runs it continues, :func:`started_at`). Right: every
    other run (the compared methods), each its own colour, against the fraction of its training (each
    filled the same wall-clock budget), with ``reference`` (LKCA-Net's median seed) for scale. Returns
    one dict per legend entry: label, colour, line style, panel (0 or 1) and the first and last x of the
    first line drawn under that label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), dpi=110, sharey=True)
    others = itertools.cycle(plt.get_cmap("tab10").colors[5:] + plt.get_cmap("Dark2").colors)
    seeds = collections.Counter(d["run"].get("variant") for d in done.values() if d["run"].get("group") == "seeds")
    drawn, named = [], set()

    def draw(ax, panel, xs, vals, colour, label, **style):
        line, = ax.plot(xs, vals, color=colour, label=label if label not in named else "_", **style)
        if label not in named:
            named.add(label)
            drawn.append({"label": label, "colour": matplotlib.colors.to_hex(colour), "style": line.get_linestyle(),
                          "panel": panel, "x": (float(xs[0]), float(xs[-1]))})

    for name, d in sorted(done.items()):
        run = d["run"]
        if not d["curve"]:
            continue
        steps, vals = (list(v) for v in zip(*d["curve"]))
        variant = run.get("variant")
        if run.get("group") in ("seeds", "ship") and variant in VARIANT_COLOURS:
            if run["group"] == "seeds":
                draw(left, 0, steps, vals, VARIANT_COLOURS[variant], f"{DISPLAY[variant]} ({seeds[variant]} seeds)",
                     lw=0.8, alpha=0.55)
            else:
                base = started_at(done, name)
                draw(left, 0, [base + s for s in steps], vals, VARIANT_COLOURS[variant],
                     f"{DISPLAY[variant]}, shipped ({ship_label(run.get('scale', 4))})", lw=2.2)
        else:
            draw(right, 1, [s / steps[-1] for s in steps], vals, next(others), run.get("label", name),
                 lw=1.4, marker=".", ms=3)
    if reference in done and done[reference]["curve"]:
        steps, vals = zip(*done[reference]["curve"])
        draw(right, 1, [s / steps[-1] for s in steps], vals, VARIANT_COLOURS["net"],
             f"{DISPLAY['net']} (median seed, {reference})", lw=1.4, marker=".", ms=3)
    if bicubic is not None:
        drawn.append({"label": f"Bicubic ({bicubic:.2f} dB)", "colour": "#000000", "style": "--", "panel": None,
                      "x": None})
    for ax in (left, right):
        if bicubic is not None:
            ax.axhline(bicubic, color="black", ls="--", lw=1.2, label=f"Bicubic ({bicubic:.2f} dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    left.set_xlabel("step")
    left.set_ylabel("validation MPSNR (dB, paints)")
    left.set_title("LKCA variants over seeds")
    right.set_xlabel("fraction of training (each run fills the same wall-clock budget)")
    right.set_title("Compared methods under one budget")
    fig.suptitle("Learning curves of the CAVE x4 study (EMA weights)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return drawn


def report(out: pathlib.Path, runs: list[dict], ship: bool, docs: pathlib.Path | None, paper: bool = False,
           records: pathlib.Path | None = None) -> None:
    """The report (``<out>/report.md``, its figures in ``<out>/figures``) of every run finished in ``out``
    or, failing that, in ``records``; with ``ship``, the shipped models written from the runs whose
    weights are here; with ``docs``, the report and figures copied there."""
    from lkca_jax.figures import compare_runs, plot_cumulative
    from lkca_jax.provenance import commit

    every = runs + [{"name": n, "group": "compressed", "seed": 0, "scale": 4} for n in compress_names()]
    done = finished(out, every, records)
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    tables = {r: seed_tables(done, r) for r in SEEDS}  # scale -> (its seed tables, its median-validation seeds)
    median4 = tables[4][1]
    commits = sorted({d["record"].get("commit", "not recorded") for d in done.values()
                      if d["run"]["group"] != "compressed"})
    budget = json.loads((out / "budget.json").read_text()) if (out / "budget.json").is_file() else {}
    nine = ["bicubic", *(name for name, *_ in COMPARED), *(median4[v] for v in SHIPPED if v in median4)]
    parts = [f"# CAVE study ({len(done)} of {len(every)} runs finished, the two compressed teachers included)\n",
             f"Trained at commit(s) {', '.join(commits) or '-'}; report written at {commit()}.\n",
             "Test split (4 scenes), mean over images; std is the sample standard deviation over seeds.\n",
             *(part for r, (text, _) in tables.items()
               for part in (f"## x{r}: LKCA-Net, LKCA-LR, LKCA-KD and the KD control over seeds\n", text)),
             "## Nine methods under one wall-clock budget (x4)\n",
             (f"Each compared method trains for an x4 LKCA-Net run's training time, {budget['lkca_net_train_s']:.0f} s "
              f"(its steps / steps per second, every rate, LKCA-Net's included, measured over a {CALIBRATION_STEPS}-"
              f"step run of its config on {budget.get('machine', 'one machine')}): "
              f"{', '.join(f'{n} {k} steps' for n, k in budget['steps'].items())}. The LKCA rows are the "
              "median-validation seeds; LKCA-KD's step also runs its teacher.\n"
              if budget else "The budget is set once LKCA-Net's x4 seeds have finished.\n"),
             other_table(done, "-", nine)]
    if any(d["run"]["group"] in ("ablation", "norm") for d in done.values()):  # --ablations
        parts += ["## KD ablations (x4, seed 0; the KD seed-0 run is the reference)\n",
                  other_table(done, "ablation", ["lkca_kd_s0", "lkca_lr_s0"]),
                  "## Normalisation (LKCA-Net, seed 0)\n", other_table(done, "norm", ["lkca_net_s0"])]
    shipped = {(r, v): shipped_from(done, r, v, paper) for r in SEEDS for v in SHIPPED}
    for r in SEEDS:
        stages = [ship_name(v, r, k) for k in range(len(SHIP[r])) for v in SHIPPED]
        parts += [f"## The shipped models (x{r}): {f'seed {SHIP_SEED} as trained' if paper else ship_label(r)}\n",
                  other_table(done, "-", [run_name(v, SHIP_SEED, r) for v in SHIPPED] + stages)]
    parts += ["## The teacher compressed without retraining (seed 0)\n",
              other_table(done, "compressed", ["lkca_net_s0", "lkca_lr_s0"]),
              "Median-validation seeds: " + ", ".join(f"x{r} {m}" for r, (_, m) in tables.items()) + "\n",
              "## Convergence (validation MPSNR on paints, EMA weights)\n", convergence_table(done)]
    x4 = {n: d for n, d in done.items() if d["run"].get("scale", 4) == 4}
    if x4:
        first = next(iter(x4))
        plot_curves(x4, figures / "learning_curves.png", validation_bicubic(x4[first]["root"] / first),
                    median4.get("net"))
    teachers = [done[n]["root"] / n for n in done if is_lkca_net(n)]
    teachers = [w for w in teachers if (w / "rank" / "rank.json").is_file() or has_weights(w)]
    if teachers:
        spectra = {k: v for w in teachers for k, v in json.loads(spectrum_file(out, w).read_text()).items()}
        _write_json(figures / "rank.json", spectra)
        plot_cumulative(spectra, figures / "rank.png")
        parts.append("## Upsampler spectrum (Fig. 4)\n\n" + "\n".join(
            f"- {k}: 90 % at {v['rank90']}, 95 % at {v['rank95']}, 99 % at {v['rank99']} of {min(v['shape'])}"
            for k, v in spectra.items()) + "\n")
    shown = [out / n for n in ("vdsr", "fcnn3d", "sspsr", "msdformer_residual", "essaformer_residual") if n in done] \
        + [out / median4[v] for v in SHIPPED if v in median4]
    if any(not has_weights(w) for w in shown):  # restored from the records (--records) on another machine
        parts.append("Side-by-side figures not drawn: no weights here for "
                     + ", ".join(w.name for w in shown if not has_weights(w)) + " (their records were restored).")
        shown = []
    if shown:
        for scene in done[shown[-1].name]["test"]["per_image"]:
            result = compare_runs(shown, figures, scene, which="last", box=BOXES.get(scene))
            parts.append(f"Comparison on {scene}: box {result['box']}, pixels {result['pixels']}; "
                         + "; ".join(f"{p['title'].split(' (')[0]} {p['psnr']:.2f} dB" for p in result["panels"]))
    text = "\n".join(parts) + "\n"
    (out / "report.md").write_text(text)
    print(text)
    if ship:
        from lkca_jax.pretrained import ship as ship_model

        for (scale, variant), name in shipped.items():
            if name and not has_weights(out / name):
                print(f"not shipped: cave-x{scale}-lkca-{variant}: {out / name} has no weights here (restored from "
                      "the records); the model shipped before stays")
            elif name:
                model = f"cave-x{scale}-lkca-{variant}"
                chain = lineage(done, name)
                missing = continues(done[(chain or [name])[0]]["run"])
                if missing:
                    raise RuntimeError(f"{name} continues {missing}, which has no "
                                       f"eval/test.json: its README would lack that run's command")
                readme = pretrained_readme(model, done[name], out, [done[n] for n in chain])
                print(f"shipped {ship_model(out / name, model, 'last', readme)}")
    if docs:
        docs.mkdir(parents=True, exist_ok=True)
        for png in figures.glob("*.png"):
            (docs / f"cave_study_{png.name}").write_bytes(png.read_bytes())
        (docs / "cave_study_report.md").write_text(text)


def pretrained_readme(name: str, d: dict, out: pathlib.Path, chain: list[dict] = ()) -> str:
    """The shipped model's README: what it is, the commands (the runs of ``chain``, the entries of
    :func:`finished` that it continues, first one first, then its own), what it suits, its test table
    and the citation."""
    run, test, scale = d["run"], d["test"], d["run"]["scale"]
    rows = [f"| {k} | {v['MPSNR']:.4f} | {v['SAM']:.4f} | {v['ERGAS']:.4f} |" for k, v in test["per_image"].items()]
    line = lambda r: shlex.join(["python", *command(r, out)[1:]])
    at = lambda e: e["record"].get("commit", "not recorded")
    rate = lambda r: f"{r['overrides']['train.num_steps']} steps at lr {r['overrides']['train.learning_rate']:g}"
    b, m = test["bicubic"], test["mean"]
    first, *later = [*chain, d]
    epochs = sum(run_epochs(e["run"]) for e in (first, *later))
    how = (f"the study's seed-{first['run']['seed']} run (commit {at(first)})" if first["run"]["group"] == "seeds"
           else f"seed {first['run']['seed']} trained from scratch for {rate(first['run'])}, cosine-decayed "
           f"(commit {at(first)})")
    for e in later:
        how += (f", continued from its {e['run']['overrides'].get('train.init_which', 'best')} EMA weights for "
                f"{rate(e['run'])}, cosine-decayed (commit {at(e)})")
    how += (f"; seed {SHIP_SEED} ships by a fixed rule, not by its score. Trained with:\n\n    "
            + "\n    ".join(line(e["run"]) for e in (first, *later)))
    return f"""# {name}

{m['Method']} ({run['overrides'].get('model.depth', 16)} LKBs of {run['overrides'].get('model.features', 128)}
features, {m['Param'] / 1e6:.3f} M parameters), x{scale}, trained by this project's CAVE study
(`recipes/cave_study.py`; docs/results.md): {how}

Its EMA weights (decay {run['overrides'].get('train.ema_decay', 0)}) are shipped.

For 31-band cubes of 400-700 nm at 10 nm steps (CAVE's camera: indoor objects under studio light,
16-bit values, divided by 65535 as in training; pass `--norm 1` to `sr` for values already in 0..1),
super-resolved x{scale} from an LR image made by MATLAB bicubic downsampling. Not for other band sets,
other sensors or scales, or real (blurred, noisy) low-resolution images: it has seen the 11 training
scenes of one camera for {epochs:.1f} epochs in all.

Test scenes (whole 512 x 512, values / 65535): MPSNR {m['MPSNR']:.4f} dB (Bicubic {b['MPSNR']:.4f}),
SAM {m['SAM']:.4f} deg (Bicubic {b['SAM']:.4f}), ERGAS {m['ERGAS']:.4f} (Bicubic {b['ERGAS']:.4f}).

| Scene | MPSNR | SAM | ERGAS |
|---|---|---|---|
""" + "\n".join(rows) + """

Data: the CAVE multispectral database. F. Yasuma, T. Mitsunaga, D. Iso and S. K. Nayar,
"Generalized assorted pixel camera: postcapture control of resolution, dynamic range, and spectrum",
IEEE TIP 19(9), 2010. https://cave.cs.columbia.edu/repository/Multispectral
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/cave_study", help="the study's folder (one workdir per run)")
    parser.add_argument("--paper", action="store_true", help="the paper's model sizes and schedule (a GPU)")
    parser.add_argument("--report", action="store_true", help="only write the report from finished runs")
    parser.add_argument("--ablations", action="store_true",
                        help="also the KD ablations of the paper's Tables II-IV and the LayerNorm run (x4, seed 0)")
    parser.add_argument("--ship", action="store_true",
                        help="also write each scale's shipped LKCA-Net, LR and KD (seed 0; at the CPU size as SHIP "
                             "says) into lkca_jax/pretrained/")
    parser.add_argument("--docs", help="also copy the report and its PNGs here (docs/img)")
    parser.add_argument("--records", help="keep each finished run's config, log, test table and record here "
                                          "(docs/records/cave_study; not its weights) and first restore from here "
                                          "the runs that --out lacks, to go on with the study on another machine")
    args = parser.parse_args(argv)
    from lkca_jax.config import load_config

    if not pathlib.Path(CONFIG).is_file():  # its runs' paths are the repository root's: before anything is written
        print(f"error: {pathlib.Path.cwd()}: no {CONFIG} here; run the study from the repository root",
              file=sys.stderr)
        return 2
    data = pathlib.Path(load_config(f"{CONFIG}:x4,net").data.path)
    if not data.is_dir():
        print(f"error: {data}: no such folder: the study reads CAVE's 16 scenes there (configs/cave.py's "
              "data.path), beside the repository", file=sys.stderr)
        return 2
    out = pathlib.Path(args.out)
    runs = plan(out, args.paper, args.ablations)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "plan.json", runs)
    records = pathlib.Path(args.records) if args.records else None
    budget = lambda: json.loads((out / "budget.json").read_text()) if (out / "budget.json").is_file() else {}
    every = lambda: runs + compared_runs(args.paper, budget().get("steps")) + ship_runs(out, runs, args.paper)
    if records:
        print(f"restored from {records}: {', '.join(restore(out, every(), records)) or 'none'}", flush=True)
    keep = (lambda name: archive(out, every(), records)) if records else None
    code = 0
    if not args.report:
        try:
            train_all(out, runs, args.paper, keep)
        except KeyboardInterrupt:
            print(f"interrupted: the same command resumes (finished runs are kept in {out})", file=sys.stderr)
            return 130
        except _recipe().RunFailed as err:  # the report is still written from whatever has finished
            print(f"error: {err}", file=sys.stderr)
            code = 1
    if records:
        archive(out, every(), records)
    report(out, every(), args.ship, pathlib.Path(args.docs) if args.docs else None, args.paper, records)
    return code


if __name__ == "__main__":
    sys.exit(main())
