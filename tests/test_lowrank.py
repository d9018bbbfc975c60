"""Low rank: the spectrum and ranks, SVD and grouped conversions of the upsampler, the rank and
lowrank commands."""

import json

import jax
import numpy as np
import pytest

from conftest import tiny_config
from lkca_jax import checkpoint, figures, lowrank
from lkca_jax.__main__ import main as cli
from lkca_jax.models import build_model


def tiny(variant="net", **model):
    return tiny_config(f"sample.py:x2,{variant}", bands=6, **model)


def test_svd_is_exact_at_full_rank_and_its_error_falls_with_rank(rng):
    kernel = rng.normal(size=(3, 3, 8, 24)).astype(np.float64)  # matrix 24 x 72
    m = lowrank.as_matrix(kernel)
    s = np.linalg.svd(m, compute_uv=False)
    errors = []
    for r in range(1, 25):
        v, u, err = lowrank.to_svd(kernel, r)
        approx = lowrank.as_matrix(np.einsum("abfr,ro->abfo", v, u[0, 0]))
        # Eckart-Young: the error of the best rank-r approximation is the discarded singular values
        assert err == pytest.approx(np.sqrt(np.sum(s[r:] ** 2)) / np.linalg.norm(m), abs=1e-9)
        assert np.linalg.norm(m - approx) / np.linalg.norm(m) == pytest.approx(err, abs=1e-9)
        errors.append(err)
    assert errors[-1] < 1e-12 and all(a > b for a, b in zip(errors, errors[1:]))
    with pytest.raises(ValueError, match="rank must be in 1..24"):
        lowrank.to_svd(kernel, 25)


def test_spectrum_ranks_against_numpy(rng):
    kernel = rng.normal(size=(3, 3, 16, 24)) * np.linspace(2, 0.01, 24)  # a decaying spectrum
    sp = lowrank.spectrum(kernel)
    s = np.linalg.svd(kernel.transpose(3, 2, 0, 1).reshape(24, -1), compute_uv=False)
    np.testing.assert_allclose(sp["singular_values"], s, rtol=1e-10)
    cum = np.cumsum(s) / s.sum()
    for p in (90, 95, 99):
        r = sp[f"rank{p}"]
        assert cum[r - 1] >= p / 100 - 1e-12 and (r == 1 or cum[r - 2] < p / 100)


def _model_outputs(c, variables, lr):
    return np.asarray(build_model(c).apply(variables, lr, train=False)[0])


@pytest.mark.parametrize("to", ["svd:24", "grouped:4"])
def test_converted_models_match_the_dense_one_when_nothing_is_lost(rng, to):
    """SVD at full rank; grouped when the dense kernel is already block-diagonal."""
    c = tiny()
    model = build_model(c)
    lr = rng.random((2, 7, 6, 6), dtype=np.float32)
    v = jax.tree.map(np.array, jax.device_get(model.init(jax.random.key(0), lr)))
    kernel = v["params"]["up"]["conv"]["kernel"]  # (3, 3, 16, 24)
    if to.startswith("grouped"):
        mask = np.zeros_like(kernel)
        for j in range(4):
            mask[:, :, 4 * j:4 * j + 4, 6 * j:6 * j + 6] = 1
        v["params"]["up"]["conv"]["kernel"] = kernel * mask
    dense = _model_outputs(c, v, lr)
    new, updates, err = lowrank.convert_variables(v, c.model, to)
    c2 = tiny(**updates)
    assert err < 1e-6
    np.testing.assert_allclose(_model_outputs(c2, new, lr), dense, atol=1e-5)
    if to.startswith("grouped"):  # and on a dense kernel it loses exactly the off-diagonal blocks
        v["params"]["up"]["conv"]["kernel"] = kernel
        _, _, err = lowrank.convert_variables(v, c.model, to)
        kept = np.linalg.norm(lowrank.as_matrix(kernel * mask))
        assert err == pytest.approx(np.sqrt(np.linalg.norm(lowrank.as_matrix(kernel)) ** 2 - kept ** 2)
                                    / np.linalg.norm(lowrank.as_matrix(kernel)), rel=1e-6)


@pytest.mark.parametrize("extra", ["scale", "prelu"])
def test_conversion_keeps_the_extra_vector_and_folds_a_scale(rng, extra):
    """With model.up_extra: SVD at full rank keeps the outputs; a trained (non-unit) scale is folded
    into the kernel, so the error and the spectrum are those of diag(s) W, the matrix applied."""
    c = tiny(up_extra=extra)
    model = build_model(c)
    lr = rng.random((2, 7, 6, 6), dtype=np.float32) - 0.5
    v = jax.tree.map(np.array, jax.device_get(model.init(jax.random.key(0), lr)))
    s = rng.uniform(0.2, 3.0, 24).astype(np.float32)
    v["params"]["up"][f"out_{extra}"] = s
    new, updates, err = lowrank.convert_variables(v, c.model, "svd:24")
    assert err < 1e-6 and f"out_{extra}" in new["params"]["up"]
    np.testing.assert_allclose(_model_outputs(tiny(up_extra=extra, **updates), new, lr), _model_outputs(c, v, lr),
                               atol=1e-5)
    kernel = np.asarray(v["params"]["up"]["conv"]["kernel"], np.float64)
    applied = kernel * s if extra == "scale" else kernel  # a PReLU slope is not a linear map: left out
    np.testing.assert_allclose(lowrank.dense_equivalent(v["params"]["up"]), applied, rtol=1e-6)


def _run(tmp_path, c, name, rng):
    model = build_model(c)
    v = jax.device_get(model.init(jax.random.key(1), np.zeros((1, 8, 8, c.model.bands), np.float32)))
    workdir = tmp_path / name
    checkpoint.save_run(workdir, c, v)
    return workdir, v


def test_rank_and_lowrank_commands(tmp_path, rng, capsys):
    dense, v = _run(tmp_path, tiny(), "dense", rng)
    grouped, _ = _run(tmp_path, tiny("lr"), "grouped", rng)
    assert cli(["rank", "--workdir", str(dense), "--workdir", str(grouped), "--out", str(tmp_path / "r")]) == 0
    record = json.loads((tmp_path / "r" / "rank.json").read_text())
    first = next(iter(record.values()))
    want = np.linalg.svd(lowrank.as_matrix(v["params"]["up"]["conv"]["kernel"]), compute_uv=False)
    np.testing.assert_allclose(first["singular_values"], want, rtol=1e-6)
    assert len(record) == 2 and (tmp_path / "r" / "rank.png").stat().st_size > 10_000

    assert cli(["lowrank", "convert", "--workdir", str(dense), "--to", "svd:4", "--out", str(tmp_path / "svd")]) == 0
    assert "relative Frobenius error" in capsys.readouterr().out
    config, new, meta = checkpoint.restore_variables(tmp_path / "svd")
    assert config.model.upsampler == "svd" and config.model.rank == 4
    assert new["params"]["up"]["conv_v"]["kernel"].shape == (3, 3, 16, 4)
    np.testing.assert_array_equal(new["params"]["block0"]["proj_in"]["kernel"],
                                  v["params"]["block0"]["proj_in"]["kernel"])  # everything else copied
    assert 0 < meta["relative_frobenius_error"] < 1
    assert cli(["lowrank", "convert", "--workdir", str(grouped), "--to", "svd:4", "--out", str(tmp_path / "x")]) == 2
    assert "only a dense" in capsys.readouterr().err


def _quarter_circle_rank90():
    """The fraction of a large square Gaussian matrix's singular values that holds 90 % of their sum,
    from the quarter-circle law (density sqrt(4 - s^2) / pi on [0, 2], s in units of sqrt(n))."""
    s = np.linspace(2, 0, 200_001)
    density = np.sqrt(np.clip(4 - s**2, 0, None)) / np.pi
    ds = s[0] - s[1]
    mass = np.cumsum(density) * ds  # fraction of the singular values above s
    weight = np.cumsum(density * s) * ds  # their share of the sum (the whole sum is 8 / (3 pi))
    return float(np.interp(0.9, weight / weight[-1], mass))


def test_fig4_draws_a_random_reference_and_the_papers_points(rng, tmp_path):
    decaying = {"a": lowrank.spectrum(rng.normal(size=(3, 3, 64, 576)) * np.geomspace(1, 1e-3, 576)),
                "b": lowrank.spectrum(rng.normal(size=(3, 3, 32, 288)) * np.geomspace(1, 1e-3, 288))}
    drawn = figures.plot_cumulative(decaying, tmp_path / "several.png")
    refs = {k: v for k, v in drawn["curves"].items() if k.startswith("random")}
    assert sorted(refs) == [f"random {n} x {n} matrix: 90% at {lowrank.random_spectrum((n, n))['rank90']} of {n}"
                            for n in (288, 576)]
    for x, y in refs.values():
        n = len(x)
        assert x[-1] == pytest.approx(1.0) and y[-1] == pytest.approx(1.0)  # relative axis: 1..n over n
        assert np.searchsorted(y, 0.9) / n == pytest.approx(_quarter_circle_rank90(), abs=0.02)
    assert drawn["paper"] == {"paper, Chikusei, Houston: 90% at about 60 of 1152": (60 / 1152, 0.9),
                              "paper, Pavia: 90% at about 130 of 1152": (130 / 1152, 0.9)}
    one = figures.plot_cumulative({"a": decaying["a"]}, tmp_path / "one.png")
    assert one["paper"]["paper, Pavia: 90% at about 130 of 1152"] == pytest.approx((130 / 1152 * 576, 0.9))
    x, _ = one["curves"][f"a: 90% at {decaying['a']['rank90']} of 576"]
    assert x[0] == 1 and x[-1] == 576  # one matrix: the absolute index
    assert (tmp_path / "several.png").stat().st_size > 10_000
