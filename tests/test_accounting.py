"""Params and MACs against the numbers typed from the paper's tables (Tables I, V, VI, VII)."""

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
# VDSR's Param column; Houston x4 (1.268M) is a misprint (RECONSTRUCTION.md section 2).
VDSR = {("chikusei", 4): 1.917, ("chikusei", 8): 5.456, ("houston", 8): 2.461,
        ("pavia", 4): 1.662, ("pavia", 8): 4.482}


def counts(dataset, scale, variant, **model):
    config = load_config(f"{ROOT}/configs/{dataset}.py:x{scale},{variant}")
    config.model.update(model)
    return count_config(config)


def close(value, published, rel=0.005):
    return abs(value - published) <= rel * published


@pytest.mark.parametrize("key", sorted(PAPER))
def test_paper_tables(key):
    n = counts(*key)
    params, flops = PAPER[key]
    assert close(n["params"] / 1e6, params), (key, n)
    assert close(n["macs"] / 1e9, flops), (key, n)


@pytest.mark.parametrize("depth", sorted(DEPTH))
def test_depth_ablation(depth):
    n = counts("chikusei", 4, "net", depth=depth)
    assert close(n["params"] / 1e6, DEPTH[depth][0]) and close(n["macs"] / 1e9, DEPTH[depth][1]), n


@pytest.mark.parametrize("key", sorted(VDSR))
def test_vdsr_params(key):
    assert close(counts(*key, "vdsr")["params"] / 1e6, VDSR[key])


def test_kd_counts_as_lr_and_bicubic_is_free():
    assert counts("chikusei", 4, "kd") == counts("chikusei", 4, "lr")
    assert counts("pavia", 8, "bicubic") == {"params": 0, "macs": 0}


def test_hand_derived_block_cost():
    # One LKB at F = 128: 74,776 parameters and 55,040 MACs per LR pixel (RECONSTRUCTION.md),
    # plus the SE's two dense layers (384*24 + 24*384 MACs per image).
    a, b = counts("chikusei", 4, "net", depth=1), counts("chikusei", 4, "net", depth=2)
    assert b["params"] - a["params"] == 74_776
    assert b["macs"] - a["macs"] == 55_040 * 256 + 2 * 384 * 24


def test_count_cli_json():
    out = subprocess.run([sys.executable, "-m", "lkca_jax", "count", "--config=configs/chikusei.py:x4,lr", "--json"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == {"params": 1_640_960, "macs": 338_984_960}  # hand-summed from section 2


def test_count_cli_bad_config():
    res = subprocess.run([sys.executable, "-m", "lkca_jax", "count", "--config=configs/pavia.py:x4,wrong"],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1 and "wrong" in res.stderr
