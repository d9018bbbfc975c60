"""The CAVE x4 study of docs/results.md: LKCA-Net, LKCA-LR and LKCA-KD with three seeds, the KD
ablations of the paper's Tables II-IV, the normalisation choice, the compared methods under the same
budget, then the report (tables with the seed spread, learning curves, Fig. 4, comparison figures).

    python recipes/cave_study.py --out runs/cave_study            # CPU size: about 2 h on 2 cores
    python recipes/cave_study.py --out runs/cave_study --paper    # the paper's sizes and schedule (GPU)
    python recipes/cave_study.py --out runs/cave_study --report   # only the report, from finished runs

Run from the repository root, beside ``../shared/data/cave`` (the 16 scenes; configs/cave.py's split).
Every run is an ordinary ``train.py`` / ``evaluate.py`` command, appended to ``<out>/commands.sh`` as
it starts; a rerun resumes an unfinished run from its checkpoint and skips a finished one (its
``eval/test.json`` exists). The report is rewritten from whatever has finished.

Sizes. CPU: 4 LKBs of 64 features (the paper: 16 of 128), 1200 steps of batch 16 (0.97 epoch of
all-8 copies), Adam at 5e-4 cosine-decayed to 1e-6. ``--paper``: 16 of 128, batch 32, lr 1e-4, 300
epochs (MSDformer's schedule, the paper's recipe as RECONSTRUCTION.md section 4 gives it).

The KD decay period is scaled with the run's length: the paper decays lambda by 0.66 every 10 of its
300 epochs, thirty times over training; a run of E epochs decays every E / 30 epochs
(``--config.teacher.decay_epochs``, fractional; batches carry fractional epochs). Each KD seed
learns from the LKCA-Net teacher of its own seed.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shlex
import subprocess
import sys
import time

CONFIG = "configs/cave.py"
PATCHES = 2475  # CAVE x4 training patches (11 scenes, 64 x 64, stride 32); x 8 dihedral copies an epoch
SEEDS = (0, 1, 2)


def sizes(paper: bool) -> dict:
    if paper:
        return {"model": {}, "steps": 0, "epochs": 300, "batch": 32, "lr": 1e-4, "eval_every": 2000}
    return {"model": {"model.depth": 4, "model.features": 64}, "steps": 1200, "epochs": 0, "batch": 16,
            "lr": 5e-4, "eval_every": 100}


def plan(out: pathlib.Path, paper: bool) -> list[dict]:
    """Every run of the study: name, method, config overrides (the teacher's workdir for KD)."""
    s = sizes(paper)
    steps_per_epoch = PATCHES * 8 // s["batch"]
    epochs = s["epochs"] or s["steps"] / steps_per_epoch
    common = {"train.batch_size": s["batch"], "train.learning_rate": s["lr"], "train.log_every_steps": 50,
              "train.eval_every_steps": s["eval_every"], "train.checkpoint_every_steps": s["eval_every"],
              "train.keep_checkpoints": 1}
    if s["steps"]:
        common["train.num_steps"] = s["steps"]
    else:
        common["train.num_epochs"] = s["epochs"]
    lkca = {**s["model"], **common}
    kd_period = {"teacher.decay_epochs": round(epochs / 30, 6)}
    runs = []
    for seed in SEEDS:
        runs.append({"name": f"lkca_net_s{seed}", "method": "net", "group": "seeds", "seed": seed,
                     "overrides": {**lkca, "train.seed": seed}})
        runs.append({"name": f"lkca_lr_s{seed}", "method": "lr", "group": "seeds", "seed": seed,
                     "overrides": {**lkca, "train.seed": seed}})
        runs.append({"name": f"lkca_kd_s{seed}", "method": "kd", "group": "seeds", "seed": seed,
                     "overrides": {**lkca, **kd_period, "train.seed": seed,
                                   "teacher.workdir": str(out / f"lkca_net_s{seed}")}})
    kd0 = {**lkca, **kd_period, "train.seed": 0, "teacher.workdir": str(out / "lkca_net_s0")}
    for name, change, label in [("kd_decay1", {"teacher.gamma": 1.0}, "decay 1.0 (no decay)"),
                                ("kd_lambda01", {"teacher.lambda0": 0.1}, "lambda0 0.1"),
                                ("kd_nocos", {"teacher.cos_weight": 0.0}, "without the cosine term")]:
        runs.append({"name": name, "method": "kd", "group": "ablation", "label": label, "seed": 0,
                     "overrides": {**kd0, **change}})
    runs.append({"name": "lkca_net_layernorm_s0", "method": "net", "group": "norm", "seed": 0,
                 "label": "LKCA-Net, model.norm layer", "overrides": {**lkca, "model.norm": "layer", "train.seed": 0}})
    for method in ("vdsr", "fcnn3d"):
        runs.append({"name": method, "method": method, "group": "compared", "seed": 0, "overrides": dict(common)})
    runs.append({"name": "bicubic", "method": "bicubic", "group": "compared", "seed": 0, "overrides": {}})
    return runs


def command(run: dict, out: pathlib.Path) -> list[str]:
    script = "evaluate.py" if run["method"] == "bicubic" else "train.py"
    cmd = [sys.executable, script, "--config", f"{CONFIG}:x4,{run['method']}", "--workdir", str(out / run["name"])]
    for field, value in run["overrides"].items():
        cmd += [f"--config.{field}", str(value)]
    return cmd


def train_all(out: pathlib.Path, runs: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    todo = [r for r in runs if not (out / r["name"] / "eval" / "test.json").is_file()]
    print(f"{len(runs) - len(todo)} of {len(runs)} runs done; {len(todo)} to go", flush=True)
    began = time.perf_counter()
    for i, run in enumerate(todo):
        cmd = command(run, out)
        line = shlex.join(["python", *cmd[1:]])
        with open(out / "commands.sh", "a") as f:
            f.write(line + "\n")
        elapsed = time.perf_counter() - began
        eta = f", ETA {elapsed / i * (len(todo) - i) / 60:.0f} min" if i else ""
        print(f"[{i + 1}/{len(todo)}] {run['name']} ({elapsed / 60:.0f} min so far{eta})\n  {line}", flush=True)
        (out / "logs").mkdir(exist_ok=True)
        with open(out / "logs" / f"{run['name']}.log", "a") as log:
            code = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)
        if code:
            sys.exit(f"{run['name']}: exit {code}; see {out / 'logs' / run['name']}.log (rerun to resume)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/cave_study", help="the study's folder (one workdir per run)")
    parser.add_argument("--paper", action="store_true", help="the paper's model sizes and schedule (a GPU)")
    parser.add_argument("--report", action="store_true", help="only write the report from finished runs")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    runs = plan(out, args.paper)
    out.mkdir(parents=True, exist_ok=True)
    (out / "plan.json").write_text(json.dumps(runs, indent=1))
    if not args.report:
        train_all(out, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
