"""recipes/cave_study.py: every run of the study is a command whose config fields exist, at both sizes."""

import importlib.util
import pathlib

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
    s = study()
    out = pathlib.Path("runs/study")
    runs = s.plan(out, paper)
    assert len({r["name"] for r in runs}) == len(runs)
    assert {f"lkca_{m}_s{seed}" for m in ("net", "lr", "kd") for seed in s.SEEDS} <= {r["name"] for r in runs}
    for run in runs:
        cmd = s.command(run, out)
        rest, overrides = split_overrides(cmd[2:])
        spec = rest[rest.index("--config") + 1]
        config = load_config(str(ROOT / spec), overrides)  # raises on a field that does not exist
        assert config.variant == run["method"]
        if run["method"] == "kd":  # each KD run learns from a study teacher, decaying 30 times in the run
            assert config.teacher.workdir.startswith(str(out / "lkca_net_s"))
            epochs = (config.train.num_steps / (s.PATCHES * 8 // config.train.batch_size)  # as the trainer counts
                      if config.train.num_steps else config.train.num_epochs)
            assert config.teacher.decay_epochs == pytest.approx(epochs / 30, rel=1e-4)
        if not paper and run["method"] in ("net", "lr", "kd"):
            assert (config.model.depth, config.model.features) == (4, 64)
        if paper and run["method"] in ("net", "lr", "kd"):
            assert (config.model.depth, config.model.features, config.train.num_epochs) == (16, 128, 300)
