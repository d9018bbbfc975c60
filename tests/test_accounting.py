"""Params and FLOPs against the numbers typed from the paper's tables (Tables I, V, VI, VII), and the
JAX counter against fvcore itself on the PyTorch reference of every method."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT
from lkca_jax.accounting import count_config
from lkca_jax.config import load_config
from lkca_jax.paper import count_entries

# {(dataset, scale, method, depth): (Param M, Flops G)} as printed: the paper's 47 distinct pairs
# (lkca_jax/paper_tables.csv; tests/test_paper.py checks that file against the paper's text).
PRINTED = count_entries()


def counts(dataset, scale, variant, **model):
    config = load_config(f"{ROOT}/configs/{dataset}.py:x{scale},{variant}")
    config.model.update(model)  # the configs as they are: the paper's model (norm 'layer', up_extra 'scale')
    return count_config(config)


def printed_as(value: float, printed: str) -> bool:
    """``value`` rounded to the printed number's decimals is the printed number."""
    decimals = len(printed.partition(".")[2])
    return f"{value:.{decimals}f}" == printed


def test_the_papers_47_count_entries():
    assert len(PRINTED) == 47
    assert sum(method in ("net", "lr") for _, _, method, _ in PRINTED) == 17


@pytest.mark.parametrize("key", sorted(PRINTED), ids=lambda k: "-".join(map(str, k)))
def test_param_and_flops_to_the_printed_digits(key):
    """Every Param and Flops entry of Tables I and V-VII from the paper's dataset configs (Table I's
    depths through model.depth): both columns round to the printed digits."""
    dataset, scale, method, depth = key
    n = counts(dataset, scale, method, **({"depth": depth} if method == "net" else {}))
    params, flops = PRINTED[key]
    assert printed_as(n["params"] / 1e6, params) and printed_as(n["macs"] / 1e9, flops), (key, n)
    if method in ("net", "lr"):  # the LKCA architecture alone, C r^2 parameters fewer, misses the column
        bands = {"chikusei": 128, "houston": 48, "pavia": 102}[dataset]
        assert not printed_as((n["params"] - bands * scale ** 2) / 1e6, params), (key, n)


@pytest.mark.parametrize("extra", ["scale", "prelu", "bias"])
def test_each_extra_form_adds_exactly_c_r2_parameters_and_no_flops(extra):
    """The upsampler's extra vector (model.up_extra): C r^2 parameters, no fvcore Flops."""
    base = counts("pavia", 8, "lr", up_extra="none", depth=1)
    with_extra = counts("pavia", 8, "lr", up_extra=extra, depth=1)
    assert with_extra["params"] - base["params"] == 102 * 8 * 8 and with_extra["macs"] == base["macs"]


def test_kd_counts_as_lr_and_bicubic_is_free():
    assert counts("chikusei", 4, "kd") == counts("chikusei", 4, "lr")
    assert counts("pavia", 8, "bicubic") == {"params": 0, "macs": 0}


@pytest.mark.parametrize("norm,per_pixel", [("layer", 54_528 + 384), ("batch", 54_528 + 384 + 2 * 2 * 128)])
def test_hand_derived_block_cost(norm, per_pixel):
    # One LKB at F = 128: 74,776 parameters; per LR pixel 54,528 MACs of convs and 384 for the SE's
    # pooling (docs/design.md section 3.2), plus 2 per element for each of two BatchNorms; plus the
    # SE's two dense layers (384*24 + 24*384 per image). The hand-written LayerNorm costs 0.
    a, b = (counts("chikusei", 4, "net", depth=d, norm=norm) for d in (1, 2))
    assert b["params"] - a["params"] == 74_776
    assert b["macs"] - a["macs"] == per_pixel * 256 + 2 * 384 * 24


def test_count_cli_json():
    out = subprocess.run([sys.executable, "-m", "lkca_jax", "count", "--config=configs/chikusei.py:x4,lr", "--json"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    # Hand-summed: head 128*9*128 + 128, 16 blocks of 74,776, the grouped upsampler 128*9*2048/8 + 2048,
    # the extra vector 2048 (docs/architecture.md); MACs per 16 x 16 input.
    assert json.loads(out) == {"params": 128 * 9 * 128 + 128 + 16 * 74_776 + 128 * 9 * 2048 // 8 + 2048 + 2048,
                               "macs": 338_460_672}


def test_count_cli_overrides_as_train_py():
    """Table I's depth rows through the command line, as train.py reads overrides."""
    for depth in (32, 64):
        params, flops = PRINTED[("chikusei", 4, "net", depth)]
        out = subprocess.run([sys.executable, "-m", "lkca_jax", "count", "--config=configs/chikusei.py:x4,net",
                              "--config.model.depth", str(depth), "--json"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout
        n = json.loads(out)
        assert printed_as(n["params"] / 1e6, params) and printed_as(n["macs"] / 1e9, flops), (depth, n)
    res = subprocess.run([sys.executable, "-m", "lkca_jax", "count", "--config=configs/chikusei.py:x4,net",
                          "--config.model.dpth", "3"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 2 and "model.dpth" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_count_cli_bad_config():
    res = subprocess.run([sys.executable, "-m", "lkca_jax", "count", "--config=configs/pavia.py:x4,wrong"],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1 and "wrong" in res.stderr


FVCORE_CASES = [("pavia", 4, "net", "layer"), ("pavia", 4, "net", "batch"), ("houston", 8, "lr", "layer"),
                ("chikusei", 4, "kd", "layer"), ("chikusei", 4, "vdsr", "layer"), ("pavia", 8, "fcnn3d", "layer"),
                ("houston", 4, "sspsr", "layer"), ("chikusei", 4, "msdformer", "layer"),
                ("houston", 8, "essaformer", "layer")]


def test_fvcore_cases_cover_every_registered_method_with_a_reference():
    from lkca_jax.methods import ARCHITECTURES, METHODS

    with_reference = {m.name for m in METHODS.values() if ARCHITECTURES[m.architecture].torch}
    assert {case[2] for case in FVCORE_CASES} == with_reference  # Bicubic has none, and counts 0 above


@pytest.mark.parametrize("dataset,scale,variant,norm", FVCORE_CASES)
def test_fvcore_on_the_pytorch_reference_agrees_exactly(dataset, scale, variant, norm):
    """fvcore itself (a PyPI package, dev requirement) on the PyTorch reference of each method,
    in eval mode on one 16 x 16 input: the same FLOPs and parameters as the JAX counter."""
    torch = pytest.importorskip("torch")
    fvcore_nn = pytest.importorskip("fvcore.nn")
    from lkca_jax.reference import build_torch_model

    config = load_config(f"{ROOT}/configs/{dataset}.py:x{scale},{variant}")
    config.model.update(norm=norm, depth=2)  # two blocks: the per-block terms show, fvcore stays quick
    net = build_torch_model(config).eval()
    x = torch.zeros(1, config.model.bands, 16, 16)
    analysis = fvcore_nn.FlopCountAnalysis(net, x)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    # The paper's models upsample with F.interpolate (aten::upsample_bicubic2d, which fvcore counts
    # 0); the reference computes MATLAB's bicubic as two matmuls, which fvcore counts: leave them out.
    bicubic = analysis.by_module().get("bicubic", 0)
    want = {"params": sum(p.numel() for p in net.parameters()), "macs": analysis.total() - bicubic}
    assert count_config(config) == want


def test_parameters_by_part_the_papers_fig1(tmp_path):
    """`count --parts`: each part hand-summed from docs/design.md section 8 at Chikusei x4 (C = 128)."""
    def run(*methods, json_out=False):
        args = [f"--config=configs/chikusei.py:x4,{m}" for m in methods] + (["--json"] if json_out else [])
        return subprocess.run([sys.executable, "-m", "lkca_jax", "count", *args, "--parts", str(tmp_path / "fig1.png")],
                              cwd=ROOT, capture_output=True, text=True, check=True).stdout

    assert "Learnable upsampler" in run("vdsr", "essaformer", "lr") and (tmp_path / "fig1.png").stat().st_size > 0
    got = {m: json.loads(run(m, json_out=True))["parts"] for m in ("vdsr", "essaformer", "msdformer")}
    c, r = 128, 4
    # VDSR: the last conv 64 -> C r^2, no bias; nothing after it
    assert got["vdsr"]["learnable upsampler"] == 64 * 9 * c * r * r and got["vdsr"]["reconstruction"] == 0
    # ESSAformer: two stages of conv 256 -> 1024 (2,360,320 each), conv_last 256 -> C
    assert got["essaformer"]["learnable upsampler"] == 2 * 2_360_320
    assert got["essaformer"]["reconstruction"] == 256 * 9 * c + c
    # MSDformer: two stages of conv 240 -> 960 (2,074,560 each); skip_conv C -> 240 and tail 240 -> C
    assert got["msdformer"]["learnable upsampler"] == 2 * 2_074_560
    assert got["msdformer"]["reconstruction"] == (c * 9 * 240 + 240) + (240 * 9 * c + c)
    assert sum(got["msdformer"].values()) == 15_526_788
