"""Params and FLOPs against the numbers typed from the paper's tables (Tables I, V, VI, VII), and the
JAX counter against fvcore itself on the PyTorch reference of every method."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT
from lkca_jax.accounting import count_config
from lkca_jax.config import load_config

# (dataset, scale, variant): (Param in M, Flops in G), as printed in the paper.
PAPER = {
    ("chikusei", 4, "net"): (3.707, 0.867), ("chikusei", 4, "lr"): (1.643, 0.338),
    ("chikusei", 8, "net"): (10.798, 2.679), ("chikusei", 8, "lr"): (2.540, 0.565),
    ("houston", 4, "net"): (2.138, 0.466), ("houston", 4, "lr"): (1.364, 0.268),
    ("houston", 8, "net"): (4.797, 1.145), ("houston", 8, "lr"): (1.700, 0.353),
    ("pavia", 4, "net"): (3.197, 0.737), ("pavia", 4, "lr"): (1.552, 0.315),
    ("pavia", 8, "net"): (8.847, 2.180), ("pavia", 8, "lr"): (2.267, 0.496),
}
# Table I: Chikusei x4 LKCA-Net with 4..64 blocks.
DEPTH = {4: (2.810, 0.698), 8: (3.109, 0.754), 16: (3.707, 0.867), 32: (4.904, 1.092),
         48: (6.100, 1.317), 64: (7.297, 1.543)}
# Tables V-VII, VDSR, 3D-FCNN, SSPSR, MSDformer and ESSAformer: (Param in M, Flops in G) as printed, except Houston x4,
# whose VDSR and 3D-FCNN cells the paper swapped (BASELINES.md section 0, point 2): here each
# method has its own.
BASELINES = {
    ("chikusei", 4, "vdsr"): (1.917, 0.491), ("chikusei", 8, "vdsr"): (5.456, 1.397),
    ("houston", 4, "vdsr"): (1.134, 0.290), ("houston", 8, "vdsr"): (2.461, 0.630),
    ("pavia", 4, "vdsr"): (1.662, 0.426), ("pavia", 8, "vdsr"): (4.482, 1.148),
    ("chikusei", 4, "fcnn3d"): (3.378, 0.864), ("chikusei", 8, "fcnn3d"): (7.531, 1.926),
    ("houston", 4, "fcnn3d"): (1.268, 0.324), ("houston", 8, "fcnn3d"): (2.826, 0.723),
    ("pavia", 4, "fcnn3d"): (2.692, 0.689), ("pavia", 8, "fcnn3d"): (6.002, 1.535),
    ("chikusei", 4, "sspsr"): (13.564, 43.484), ("chikusei", 8, "sspsr"): (15.925, 122.891),
    ("houston", 4, "sspsr"): (13.011, 20.538), ("houston", 8, "sspsr"): (15.372, 62.706),
    ("pavia", 4, "sspsr"): (13.385, 36.394), ("pavia", 8, "sspsr"): (15.745, 104.255),
    ("chikusei", 4, "msdformer"): (15.527, 13.109), ("chikusei", 8, "msdformer"): (17.601, 28.398),
    ("houston", 4, "msdformer"): (13.536, 7.675), ("houston", 8, "msdformer"): (15.611, 18.717),
    ("pavia", 4, "msdformer"): (14.908, 11.413), ("pavia", 8, "msdformer"): (16.983, 25.321),
    ("chikusei", 4, "essaformer"): (11.641, 52.135), ("chikusei", 8, "essaformer"): (14.149, 205.593),
    ("houston", 4, "essaformer"): (11.272, 51.333), ("houston", 8, "essaformer"): (13.780, 202.526),
    ("pavia", 4, "essaformer"): (11.521, 51.874), ("pavia", 8, "essaformer"): (14.029, 204.596),
}


def counts(dataset, scale, variant, **model):
    config = load_config(f"{ROOT}/configs/{dataset}.py:x{scale},{variant}")
    config.model.update(model)  # the configs as they are: the paper's model (model.norm = 'layer')
    return count_config(config)


def close(value, published, rel=0.005):
    return abs(value - published) <= rel * published


def rounds_to(macs, printed_g):
    """The paper prints Flops in G with 3 decimals: fvcore's count must round to exactly that."""
    return f"{macs / 1e9:.3f}" == f"{printed_g:.3f}"


@pytest.mark.parametrize("key", sorted(PAPER))
def test_paper_tables(key):
    n = counts(*key)
    params, flops = PAPER[key]
    assert close(n["params"] / 1e6, params), (key, n)
    assert rounds_to(n["macs"], flops), (key, n)


@pytest.mark.parametrize("depth", sorted(DEPTH))
def test_depth_ablation(depth):
    n = counts("chikusei", 4, "net", depth=depth)
    assert close(n["params"] / 1e6, DEPTH[depth][0]) and rounds_to(n["macs"], DEPTH[depth][1]), n


@pytest.mark.parametrize("key", sorted(BASELINES))
def test_baseline_tables(key):
    """Params and Flops both round to the printed digits."""
    n = counts(*key)
    params, flops = BASELINES[key]
    assert f"{n['params'] / 1e6:.3f}" == f"{params:.3f}" and rounds_to(n["macs"], flops), (key, n)


def test_kd_counts_as_lr_and_bicubic_is_free():
    assert counts("chikusei", 4, "kd") == counts("chikusei", 4, "lr")
    assert counts("pavia", 8, "bicubic") == {"params": 0, "macs": 0}


@pytest.mark.parametrize("norm,per_pixel", [("layer", 54_528 + 384), ("batch", 54_528 + 384 + 2 * 2 * 128)])
def test_hand_derived_block_cost(norm, per_pixel):
    # One LKB at F = 128: 74,776 parameters; per LR pixel 54,528 MACs of convs and 384 for the SE's
    # pooling (RECONSTRUCTION.md section 2), plus 2 per element for each of two BatchNorms; plus the
    # SE's two dense layers (384*24 + 24*384 per image). The hand-written LayerNorm costs 0.
    a, b = (counts("chikusei", 4, "net", depth=d, norm=norm) for d in (1, 2))
    assert b["params"] - a["params"] == 74_776
    assert b["macs"] - a["macs"] == per_pixel * 256 + 2 * 384 * 24


def test_count_cli_json():
    out = subprocess.run([sys.executable, "-m", "lkca_jax", "count", "--config=configs/chikusei.py:x4,lr", "--json"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    # Hand-summed from section 2: head 102*9*128... per 16 x 16 input, 16 blocks as above, the grouped upsampler.
    assert json.loads(out) == {"params": 1_640_960, "macs": 338_460_672}


def test_count_cli_overrides_as_train_py():
    """Table I's depth rows through the command line, as train.py reads overrides."""
    for depth, (params, flops) in [(32, DEPTH[32]), (64, DEPTH[64])]:
        out = subprocess.run([sys.executable, "-m", "lkca_jax", "count", "--config=configs/chikusei.py:x4,net",
                              "--config.model.depth", str(depth), "--json"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout
        n = json.loads(out)
        assert close(n["params"] / 1e6, params) and rounds_to(n["macs"], flops), (depth, n)
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
    from lkca_jax.torch_ref import build_torch_model

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
    """`count --parts`: each part hand-summed from BASELINES.md section 2 at Chikusei x4 (C = 128)."""
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
