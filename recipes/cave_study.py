"""The CAVE x4 study of docs/results.md: LKCA-Net, LKCA-LR and LKCA-KD with three seeds, the KD
ablations of the paper's Tables II-IV, the normalisation choice, the compared methods under the same
budget (SSPSR at an eighth of its width on the CPU), the seed-0 teacher compressed without
retraining (grouped g = 8 and SVD at its 90 % rank; the paper trains its low-rank models from
scratch, this is an extra experiment of ours), then the report (tables with
the seed spread, learning curves, Fig. 4, comparison figures) and, with ``--ship``, the shipped models.

    python recipes/cave_study.py --out runs/cave_study            # CPU size: about 2 h on 2 cores
    python recipes/cave_study.py --out runs/cave_study --paper    # the paper's sizes (GPU)
    python recipes/cave_study.py --out runs/cave_study --report   # only the report, from finished runs

Run from the repository root, beside ``../shared/data/cave`` (the 16 scenes; configs/cave.py's split).
Every run is an ordinary ``train.py`` / ``evaluate.py`` command, appended to ``<out>/commands.sh`` as
it starts; a rerun resumes an unfinished run from its checkpoint and skips a finished one (its
``eval/test.json`` exists). The report is rewritten from whatever has finished.

Sizes. CPU: 4 LKBs of 64 features (the paper: 16 of 128), 1200 steps of batch 16 (0.97 epoch of
all-8 copies), Adam at 5e-4 cosine-decayed to 1e-6. ``--paper``: 16 of 128, batch 32, lr 1e-4, 300
epochs (the configs' defaults: MSDformer's batch and epochs, SSPSR's learning rate; the paper's own
values are lost). The paper's tables themselves: recipes/paper.py (``--dataset cave`` for CAVE).

The KD decay period is scaled with the run's length: the paper decays lambda by 0.66 every 10 of its
300 epochs, thirty times over training; a run of E epochs decays every E / 30 epochs
(``--config.teacher.decay_epochs``, fractional; batches carry fractional epochs). Each KD seed
learns from the LKCA-Net teacher of its own seed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import shlex
import subprocess
import sys

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
    # KD: the decay period scaled to the run, and the global gradient norm clipped at 0.1 (about the
    # largest the LR student reaches without KD; docs/results.md): the cosine term of L_KD is singular
    # at the zero-initialised student's features, and its first gradients (323x the supervised one,
    # measured) would fill Adam's second moments for the rest of a short run
    kd_period = {"teacher.decay_epochs": round(epochs / 30, 6), "train.grad_clip_norm": 0.1}
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
    for name, change, label in [("kd_noclip_s0", {"train.grad_clip_norm": 0.0}, "no gradient clipping"),
                                ("kd_decay1", {"teacher.gamma": 1.0}, "decay 1.0 (no decay)"),
                                ("kd_lambda01", {"teacher.lambda0": 0.1}, "lambda0 0.1"),
                                ("kd_nocos", {"teacher.cos_weight": 0.0}, "without the cosine term")]:
        runs.append({"name": name, "method": "kd", "group": "ablation", "label": label, "seed": 0,
                     "overrides": {**kd0, **change}})
    runs.append({"name": "lkca_lr_clip_s0", "method": "lr", "group": "ablation", "seed": 0,
                 "label": "LKCA-LR, clipped as KD (control)",
                 "overrides": {**lkca, "train.grad_clip_norm": 0.1, "train.seed": 0}})
    runs.append({"name": "lkca_net_layernorm_s0", "method": "net", "group": "norm", "seed": 0,
                 "label": "LKCA-Net, model.norm layer", "overrides": {**lkca, "model.norm": "layer", "train.seed": 0}})
    for method in ("vdsr", "fcnn3d"):
        runs.append({"name": method, "method": method, "group": "compared", "seed": 0, "overrides": dict(common)})
    # SSPSR under the same budget and schedule (its own loss); on the CPU at an eighth of its width
    # (at 64 its 1,200 steps would take about 20 minutes here, a sixth of the whole study)
    runs.append({"name": "sspsr", "method": "sspsr", "group": "compared", "seed": 0,
                 "label": "SSPSR" + ("" if paper else " (width 32 of 256)"),
                 "overrides": {**({} if paper else {"model.sspsr.features": 32}), **common,
                               "train.schedule": "cosine"}})
    runs.append({"name": "bicubic", "method": "bicubic", "group": "compared", "seed": 0, "overrides": {}})
    return runs


def _recipe():
    """recipes/paper.py, whose runner this study shares."""
    spec = importlib.util.spec_from_file_location("paper_recipe", pathlib.Path(__file__).with_name("paper.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def as_recipe_run(run: dict) -> dict:
    """The study's run in recipes/paper.py's form (script, config spec, overrides, teacher)."""
    teacher = run["overrides"].get("teacher.workdir")
    return {**run, "script": "evaluate.py" if run["method"] == "bicubic" else "train.py",
            "config": f"{CONFIG}:x4,{run['method']}", "teacher": pathlib.Path(teacher).name if teacher else None}


def command(run: dict, out: pathlib.Path) -> list[str]:
    cmd = _recipe().command(as_recipe_run(run))
    cmd[cmd.index(None)] = str(out / run["name"])
    return [sys.executable, *cmd]


def train_all(out: pathlib.Path, runs: list[dict]) -> None:
    """Every run through recipes/paper.py's runner (commands.sh, logs, resume), then the compression."""
    recipe = _recipe()
    recipe.run_all([as_recipe_run(r) for r in runs], out)
    compress(out)


def compress_names(teacher: str = "lkca_net_s0") -> list[str]:
    return [f"{teacher}_grouped", f"{teacher}_svd"]


def compress(out: pathlib.Path, teacher: str = "lkca_net_s0") -> list[str]:
    """A compression without retraining (ours; the paper trains LKCA-LR from scratch): the seed-0
    teacher's dense upsampler to its block-diagonal part (grouped g = 8, LKCA-LR's shape) and to the
    truncated SVD at its 90 % rank, each evaluated as a run of its own. Returns the converted runs' names."""
    spectrum = out / teacher / "rank" / "rank.json"
    names = compress_names(teacher)
    for name, to in zip(names, ("grouped:8", "svd:90%")):
        if (out / name / "eval" / "test.json").is_file():
            continue
        if to == "svd:90%":
            if not spectrum.is_file():
                _call(out, ["-m", "lkca_jax", "rank", "--workdir", str(out / teacher), "--which", "last"])
            to = f"svd:{next(iter(json.loads(spectrum.read_text()).values()))['rank90']}"
        if not (out / name / "config.json").is_file():
            _call(out, ["-m", "lkca_jax", "lowrank", "convert", "--workdir", str(out / teacher), "--to", to,
                        "--out", str(out / name), "--which", "last"])
        _call(out, ["evaluate.py", "--workdir", str(out / name)])
    return names


def _call(out: pathlib.Path, args: list[str]) -> None:
    line = shlex.join(["python", *args])
    with open(out / "commands.sh", "a") as f:
        f.write(line + "\n")
    print(f"  {line}", flush=True)
    with open(out / "logs" / "compress.log", "a") as log:
        if subprocess.call([sys.executable, *args], stdout=log, stderr=subprocess.STDOUT):
            sys.exit(f"{line}: failed; see {out / 'logs' / 'compress.log'}")


# ---------------------------------------------------------------------------------------------- report

METRICS = ("MPSNR", "MSSIM", "SAM", "ERGAS")
DISPLAY = {"net": "LKCA-Net", "lr": "LKCA-LR", "kd": "LKCA-KD"}
SHIP = {"net": "cave-x4-lkca-net", "lr": "cave-x4-lkca-lr", "kd": "cave-x4-lkca-kd"}


def finished(out: pathlib.Path, runs: list[dict]) -> dict[str, dict]:
    """name -> {run, test (eval/test.json), curve [(step, val MPSNR)], best_val} of the finished runs."""
    done = {}
    for run in runs:
        path = out / run["name"] / "eval" / "test.json"
        if not path.is_file():
            continue
        log = out / run["name"] / "metrics.jsonl"
        rows = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
        curve = [(r["step"], r["val_mpsnr"]) for r in rows if "val_mpsnr" in r]
        record = out / "logs" / f"{run['name']}.json"
        done[run["name"]] = {"run": run, "test": json.loads(path.read_text()), "curve": curve,
                             "best_val": max((v for _, v in curve), default=float("nan")),
                             "record": json.loads(record.read_text()) if record.is_file() else {}}
    return done


CONVERGED_DB = 0.02


def convergence(curve: list[tuple[int, float]], tolerance: float = CONVERGED_DB) -> dict:
    """Whether a validation curve [(step, MPSNR)] has flattened: over the last quarter of its steps it
    rises by at most ``tolerance`` dB (its best there minus its value where the quarter starts), and its
    best there is within ``tolerance`` of its best overall. Returns both numbers and the verdict."""
    if len(curve) < 2:
        return {"rise": float("nan"), "gap": float("nan"), "converged": False}
    last = curve[-1][0]
    start = last - (last - curve[0][0]) / 4
    quarter = [v for step, v in curve if step >= start]
    before = [v for step, v in curve if step <= start]
    base = before[-1] if before else quarter[0]
    rise, gap = max(quarter) - base, max(v for _, v in curve) - max(quarter)
    return {"rise": rise, "gap": gap, "converged": rise <= tolerance and gap <= tolerance}


def convergence_table(done: dict) -> str:
    lines = [f"Converged: over the last quarter of its steps validation MPSNR rose by at most {CONVERGED_DB} dB, "
             f"and its best there is within {CONVERGED_DB} dB of its best overall.\n",
             "| Run | steps | rise over the last quarter (dB) | best overall - best of the last quarter (dB) "
             "| converged | wall (s) |", "|---|---|---|---|---|---|"]
    for name, d in done.items():
        if d["curve"]:
            c = convergence(d["curve"])
            lines.append(f"| {name} | {d['curve'][-1][0]} | {c['rise']:+.4f} | {c['gap']:.4f} | "
                         f"{'yes' if c['converged'] else 'no'} | {d['record'].get('wall_s', '-')} |")
    return "\n".join(lines) + "\n"


# Student's t quantiles t(0.975, dof) for dof 1..10: a 95 % interval of a mean over paired seeds
T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281)


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


def seed_tables(done: dict) -> tuple[str, dict]:
    """The per-seed and mean +- std table of the LKCA family, the paired differences, and the
    median-validation seed of each method."""
    head = "| Run | " + " | ".join(METRICS) + " | best val MPSNR |\n|---|" + "---|" * (len(METRICS) + 1)
    lines, summary, median = [head], {}, {}
    bicubic = next((d["test"]["bicubic"] for d in done.values() if "bicubic" in d["test"]), None)
    if bicubic:
        lines.append(_row("Bicubic", bicubic) + " - |")
    for method in ("net", "lr", "kd"):
        names = [f"lkca_{method}_s{s}" for s in SEEDS if f"lkca_{method}_s{s}" in done]
        for name in names:
            lines.append(_row(f"{DISPLAY[method]} seed {done[name]['run']['seed']}", done[name]["test"]["mean"])
                         + f" {done[name]['best_val']:.4f} |")
        if len(names) > 1:
            stats = {m: _mean_std([done[n]["test"]["mean"][m] for n in names]) for m in METRICS}
            summary[method] = stats
            lines.append("| **" + DISPLAY[method] + f" mean +- std ({len(names)} seeds)** | "
                         + " | ".join(f"{a:.4f} +- {b:.4f}" for a, b in stats.values()) + " | |")
        if names:
            by_val = sorted(names, key=lambda n: done[n]["best_val"])
            median[method] = by_val[(len(by_val) - 1) // 2]
    text = "\n".join(lines) + "\n"
    pairs = [("net", "kd"), ("kd", "lr"), ("net", "lr")]
    diff_lines = ["Differences over paired seeds: mean +- half-width of the 95 % t-interval (n - 1 degrees of "
                  "freedom); an interval that contains 0 does not settle the ordering.\n",
                  "| Difference (same seed) | MPSNR dB | SAM deg | seeds |", "|---|---|---|---|"]
    for a, b in pairs:
        seeds = [s for s in SEEDS if f"lkca_{a}_s{s}" in done and f"lkca_{b}_s{s}" in done]
        if len(seeds) > 1:
            d = {m: interval95([done[f"lkca_{a}_s{s}"]["test"]["mean"][m] - done[f"lkca_{b}_s{s}"]["test"]["mean"][m]
                                for s in seeds]) for m in ("MPSNR", "SAM")}
            diff_lines.append(f"| {DISPLAY[a]} - {DISPLAY[b]} | {d['MPSNR'][0]:+.4f} +- {d['MPSNR'][1]:.4f} | "
                              f"{d['SAM'][0]:+.4f} +- {d['SAM'][1]:.4f} | {len(seeds)} |")
    if bicubic:
        for method, stats in summary.items():
            diff_lines.append(f"| {DISPLAY[method]} - Bicubic | {stats['MPSNR'][0] - bicubic['MPSNR']:+.4f} +- "
                              f"{stats['MPSNR'][1]:.4f} | {stats['SAM'][0] - bicubic['SAM']:+.4f} +- "
                              f"{stats['SAM'][1]:.4f} | {len(SEEDS)} |")
    return text + "\n" + "\n".join(diff_lines) + "\n", median


def other_table(done: dict, group: str, reference: list[str]) -> str:
    lines = ["| Run | " + " | ".join(METRICS) + " | Param | Flops |", "|---|" + "---|" * (len(METRICS) + 2)]
    for name in reference + [n for n, d in done.items() if d["run"]["group"] == group]:
        if name in done:
            d = done[name]
            label = d["run"].get("label") or d["test"]["mean"]["Method"]
            lines.append(_row(f"{label} ({name})", d["test"]["mean"])
                         + f" {d['test']['mean']['Param'] / 1e6:.3f}M | {d['test']['mean']['Flops'] / 1e9:.3f}G |")
    return "\n".join(lines) + "\n"


def validation_bicubic(workdir: pathlib.Path) -> float:
    """Bicubic's MPSNR on the validation split of ``workdir``'s run: the level the curves start from."""
    from lkca_jax import checkpoint, evaluation, inference
    from lkca_jax.data.datasets import load_splits
    from lkca_jax.data.spec import DataSpec

    config = checkpoint.load_config(workdir)
    split = load_splits(DataSpec.of(config), ("validation",))["validation"]
    return float(evaluation.score(inference.bicubic_config(config), {}, split)[0]["MPSNR"])


def plot_curves(done: dict, path: pathlib.Path, bicubic: float | None = None) -> list[tuple]:
    """Every run's validation curve, each its own colour of tab20 (line styles too past 20 runs), and
    Bicubic's level as a black dashed line; returns the (label, colour, line style) drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5), dpi=110)
    colours = plt.get_cmap("tab20")
    for i, (name, d) in enumerate(sorted(done.items())):
        if d["curve"]:
            steps, vals = zip(*d["curve"])
            ax.plot(steps, vals, marker=".", lw=1, color=colours(i % 20), ls=("-", "--", ":")[(i // 20) % 3],
                    label=name)
    if bicubic is not None:
        ax.axhline(bicubic, color="black", ls="--", lw=1.2, label=f"Bicubic ({bicubic:.2f} dB)")
    ax.set_xlabel("step")
    ax.set_ylabel("validation MPSNR (dB, paints)")
    ax.set_title("Learning curves of the CAVE x4 study")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    drawn = [(line.get_label(), matplotlib.colors.to_hex(line.get_color()), line.get_linestyle())
             for line in ax.get_lines()]
    plt.close(fig)
    return drawn


def report(out: pathlib.Path, runs: list[dict], ship: bool, docs: pathlib.Path | None) -> None:
    from lkca_jax.figures import compare_runs, plot_cumulative
    from lkca_jax.lowrank import rank_report
    from lkca_jax.provenance import commit

    every = runs + [{"name": n, "group": "compressed", "seed": 0} for n in compress_names()]
    done = finished(out, every)
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    seeds, median = seed_tables(done)
    commits = sorted({d["record"].get("commit", "not recorded") for d in done.values()
                      if d["run"]["group"] != "compressed"})
    parts = [f"# CAVE x4 study ({len(done)} of {len(every)} runs finished, the two compressed teachers included)\n",
             f"Trained at commit(s) {', '.join(commits) or '-'}; report written at {commit()}.\n",
             "Test split (4 scenes), mean over images; std is the sample standard deviation over seeds.\n",
             "## LKCA-Net, LKCA-LR, LKCA-KD over seeds\n", seeds,
             "## KD ablations (seed 0; the KD seed-0 run is the reference)\n",
             other_table(done, "ablation", ["lkca_kd_s0", "lkca_lr_s0"]),
             "## Normalisation (LKCA-Net, seed 0)\n", other_table(done, "norm", ["lkca_net_s0"]),
             "## The teacher compressed without retraining (seed 0)\n",
             other_table(done, "compressed", ["lkca_net_s0", "lkca_lr_s0"]),
             "## The compared methods under the same budget\n",
             other_table(done, "compared", [median[m] for m in ("net", "lr", "kd") if m in median]),
             f"Median-validation seeds: {median}\n",
             "## Convergence (validation MPSNR on paints)\n", convergence_table(done)]
    plot_curves(done, figures / "learning_curves.png", validation_bicubic(out / next(iter(done))))
    teachers = [out / f"lkca_net_s{s}" for s in SEEDS if f"lkca_net_s{s}" in done]
    if teachers:
        spectra, _ = rank_report(teachers + ([out / "lkca_net_layernorm_s0"] if "lkca_net_layernorm_s0" in done
                                             else []), "last", figures)
        plot_cumulative(spectra, figures / "rank.png")
        parts.append("## Upsampler spectrum (Fig. 4)\n\n" + "\n".join(
            f"- {k}: 90 % at {v['rank90']}, 95 % at {v['rank95']}, 99 % at {v['rank99']} of {min(v['shape'])}"
            for k, v in spectra.items()) + "\n")
    shown = [out / n for n in ("vdsr", "fcnn3d", "sspsr") if n in done] + [out / median[m] for m in ("net", "lr", "kd")
                                                                  if m in median]
    if shown:
        for scene in done[next(iter(done))]["test"]["per_image"]:
            result = compare_runs(shown, figures, scene, which="last")
            parts.append(f"Comparison on {scene}: box {result['box']}, pixels {result['pixels']}; "
                         + "; ".join(f"{p['title'].split(' (')[0]} {p['psnr']:.2f} dB" for p in result["panels"]))
    text = "\n".join(parts) + "\n"
    (out / "report.md").write_text(text)
    print(text)
    if ship:
        from lkca_jax.pretrained import ship as ship_model

        for method, name in median.items():
            d = done[name]
            readme = pretrained_readme(SHIP[method], d, out / name)
            print(f"shipped {ship_model(out / name, SHIP[method], 'last', readme)}")
    if docs:
        docs.mkdir(parents=True, exist_ok=True)
        for png in figures.glob("*.png"):
            (docs / f"cave_study_{png.name}").write_bytes(png.read_bytes())
        (docs / "cave_study_report.md").write_text(text)


def pretrained_readme(name: str, d: dict, workdir: pathlib.Path) -> str:
    run, test = d["run"], d["test"]
    rows = [f"| {k} | {v['MPSNR']:.4f} | {v['SAM']:.4f} | {v['ERGAS']:.4f} |" for k, v in test["per_image"].items()]
    line = shlex.join(["python", *command(run, workdir.parent)[1:]])
    b, m = test["bicubic"], test["mean"]
    return f"""# {name}

{m['Method']} ({run['overrides'].get('model.depth', 16)} LKBs of {run['overrides'].get('model.features', 128)}
features, {m['Param'] / 1e6:.3f} M parameters), trained by this project's CAVE x4 study
(`recipes/cave_study.py`; docs/results.md), seed {run['seed']}: the seed with the median validation
MPSNR of three, not the best test score. Trained with:

    {line}

For 31-band cubes of 400-700 nm at 10 nm steps (CAVE's camera: indoor objects under studio light,
16-bit values, divided by 65535 as in training; pass `--norm 1` to `sr` for values already in 0..1),
super-resolved x4 from an LR image made by MATLAB bicubic downsampling. Not for other band sets,
other sensors or scales, or real (blurred, noisy) low-resolution images: it has seen 11 scenes of one
camera for about one epoch.

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
    parser.add_argument("--ship", action="store_true",
                        help="also write the median-validation LKCA-Net, LR and KD into lkca_jax/pretrained/")
    parser.add_argument("--docs", help="also copy the report and its PNGs here (docs/img)")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    runs = plan(out, args.paper)
    out.mkdir(parents=True, exist_ok=True)
    (out / "plan.json").write_text(json.dumps(runs, indent=1))
    if not args.report:
        train_all(out, runs)
    report(out, runs, args.ship, pathlib.Path(args.docs) if args.docs else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
