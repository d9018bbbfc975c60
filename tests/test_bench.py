"""The benchmarks' machinery: the diagnostics that train run on the trainer's own step
(training.assemble), and bench/compare.py's two worker processes agree and report failures."""

import importlib.util
import math
import platform
import sys

import pytest

from conftest import ROOT


def _bench(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
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


def test_compare_runs_each_framework_in_its_own_worker(capsys, tmp_path):
    """bench/compare.py: both workers answer, the weights PyTorch drew reach JAX (the same output),
    and a worker that dies gives a row that says so instead of ending the suite."""
    pytest.importorskip("torch")
    compare = _bench("compare")
    assert compare.main(["--suite", "acceptance", "--depth", "1", "--features", "8", "--rounds", "2",
                         "--iters", "1"]) == 0
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in capsys.readouterr().out.splitlines()
            if line.startswith("| LKCA-Net")]
    assert [r[2] for r in rows] == ["inference", "train step"]
    infer, train = rows
    assert float(infer[10]) < 1e-4  # max |JAX - PyTorch| on the same input: one model in two frameworks
    for row in rows:
        assert row[13] == "1" and all(float(v) > 0 for v in row[7:9] + row[11:13] + row[14:17])
    # the PyTorch worker cannot import SSPSR from an empty folder: the row says it failed
    compare.grid_row(compare.Case("infer", "sspsr", 16, 4, 8, 1, official=str(tmp_path)))
    failed = capsys.readouterr().out
    assert "SSPSR (official)" in failed and "failed: the torch worker exited with 1" in failed
    # a train step as 2 micro-batches of 2 in both workers (--accum): both run it, the row says so
    res = compare.grid_row(compare.Case("train", "net", 16, 4, 8, 4, depth=1, features=8, accum=2))
    assert "| train step | 4 (2 x 2) | 8x8 |" in capsys.readouterr().out
    assert res is not None and res.jax_s > 0 and res.torch_s > 0


def test_torch_train_step_in_micro_batches_is_the_whole_batch_update():
    """bench/compare.py's PyTorch step with --accum K: each micro-batch's loss over K, one update,
    is the update of the whole batch at once (VDSR: no BatchNorm, no dropout; plain SGD, so the
    update is the gradient itself), and it moves the weights."""
    torch = pytest.importorskip("torch")
    import numpy as np

    from lkca_jax.reference import build_torch_model, losses

    compare = _bench("compare")
    c = compare.make_config("vdsr", 8, 2)
    c.model.vdsr.depth, c.model.vdsr.features = 2, 8
    rng = np.random.default_rng(0)
    lr = torch.from_numpy(rng.random((4, 8, 6, 6), np.float32))
    hr = torch.from_numpy(rng.random((4, 8, 12, 12), np.float32))
    after = {}
    for k in (1, 2, 4):
        torch.manual_seed(0)
        net = build_torch_model(c)
        before = [p.detach().clone() for p in net.parameters()]
        compare.torch_train_step(net, torch.optim.SGD(net.parameters(), lr=0.5), losses.training_loss(c.train),
                                 (lr,), hr, k)
        after[k] = [p.detach().clone() for p in net.parameters()]
    assert max(float((a - b).abs().max()) for a, b in zip(after[1], before)) > 1e-4
    for k in (2, 4):
        for a, b in zip(after[k], after[1]):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-6)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_hostmem_bench_runs_each_allocator_mode_in_its_own_process():
    """bench/hostmem.py: each mode's worker sets its allocator before JAX and times the step; only
    the kept modes keep, and only 'bounded' calls bound_growth (forced after the first step)."""
    import argparse

    hostmem_bench = _bench("hostmem")
    args = argparse.Namespace(method="vdsr", bands=8, scale=2, batch=2, steps=1)
    rows = {mode: hostmem_bench.run(args, mode) for mode in hostmem_bench.MODES}
    assert all("error" not in row for row in rows.values()), rows
    assert [(rows[m]["kept"], rows[m]["bounded"]) for m in ("keep", "bounded", "system")] == \
        [(True, False), (True, True), (False, False)]
    for row in rows.values():
        assert 0 < row["min_s"] <= row["median_s"] and 0 < row["rss_gib"] <= row["peak_gib"] + 1e-9, row
