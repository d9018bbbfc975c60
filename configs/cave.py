"""CAVE multispectral (31 bands, 400-700 nm).

Count parameters and MACs of LKCA-Net at x4:

    python -m lkca_jax count --config=configs/cave.py:x4,net

The argument is '<scale>,<variant>': scale x2 | x3 | x4 | x8, variant
net | lr | kd | vdsr | bicubic (see lkca_jax/config.py).
"""

from lkca_jax.config import base_config


def get_config(arg: str = "x4,net"):
    c = base_config("cave", arg)
    c.data.path = "../shared/data/cave"  # a folder of <scene>_ms band-PNG folders
    return c
