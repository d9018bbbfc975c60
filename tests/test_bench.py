"""The diagnostics in bench/ that train: they run on the trainer's own step (training.assemble)."""

import importlib.util
import math

from conftest import ROOT


def _bench(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_layer_stats_reports_every_conv_and_the_loss(capsys):
    layer_stats = _bench("layer_stats")
    assert layer_stats.main(["--config", f"{ROOT}/configs/sample.py:x4,vdsr", "--steps", "0,2",
                             "--config.model.vdsr.depth", "3", "--config.model.vdsr.features", "8",
                             "--config.train.batch_size", "4"]) == 0
    out = capsys.readouterr().out
    reports = out.split("\nstep ")[1:]
    assert [r.split("\n")[0] for r in reports] == ["0", "2"]
    for report in reports:
        rows = [line.split() for line in report.splitlines() if line.startswith(("conv", "up/"))]
        # VDSR of depth 3: its 3 x 3 convs (the first, 3 - 2 inner, the last) and the upsampler's
        assert len(rows) == 4 and all(math.isfinite(float(v)) for row in rows for v in row[1:])
    losses = [line for line in out.splitlines() if line.startswith("loss ")]
    assert len(losses) == 1 and math.isfinite(float(losses[0].split()[1]))  # printed after step 0
