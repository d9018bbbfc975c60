"""Houston 2018 (ITRES CASI 1500, 48 bands).

Count parameters and MACs of LKCA-Net at x4:

    python -m lkca_jax count --config=configs/houston.py:x4,net

The argument is '<scale>,<variant>': scale x2 | x3 | x4 | x8, variant
net | lr | kd | vdsr | bicubic (see lkca_jax/config.py).
"""

from lkca_jax.config import base_config


def get_config(arg: str = "x4,net"):
    c = base_config("houston", arg)
    c.data.path = ""  # the 48-band Houston 2018 cube, any format `python -m lkca_jax inspect` reads
    return c
