"""Chikusei (Headwall Hyperspec VNIR-C, 128 bands).

Count parameters and MACs of LKCA-Net at x4:

    python -m lkca_jax count --config=configs/chikusei.py:x4,net

The argument is '<scale>,<variant>': scale x2 | x3 | x4 | x8, variant
net | lr | kd | vdsr | bicubic (see lkca_jax/config.py).
"""

from lkca_jax.config import base_config


def get_config(arg: str = "x4,net"):
    c = base_config("chikusei", arg)
    c.data.path = ""  # HyperspecVNIR_Chikusei_20140729.mat (MATLAB v7.3, variable 'chikusei')
    return c
