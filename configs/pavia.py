"""Pavia Centre (ROSIS, 102 bands).

Count parameters and MACs of LKCA-Net at x4:

    python -m lkca_jax count --config=configs/pavia.py:x4,net

The argument is '<scale>,<variant>': scale x2 | x3 | x4 | x8, variant
net | lr | kd | vdsr | bicubic (see lkca_jax/config.py).
"""

from lkca_jax.config import base_config


def get_config(arg: str = "x4,net"):
    c = base_config("pavia", bands=102, arg=arg)
    c.data.normalisation = "constant"  # SSPSR's scripts hint at 8000 for Pavia Centre
    c.data.norm_value = 8000.0
    c.data.test_size = 224  # not stated; 3 x 224 = 672 <= 715 and a multiple of 8
    return c
