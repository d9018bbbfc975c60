"""CAVE multispectral (31 bands, 400-700 nm).

Count parameters and MACs of LKCA-Net at x4:

    python -m lkca_jax count --config=configs/cave.py:x4,net

The argument is '<scale>,<variant>': scale x2 | x3 | x4 | x8, variant
net | lr | kd | vdsr | bicubic (see lkca_jax/config.py).
"""

from lkca_jax.config import base_config


def get_config(arg: str = "x4,net"):
    c = base_config("cave", bands=31, arg=arg)
    c.data.path = "../shared/data/cave"
    c.data.normalisation = "constant"  # 16-bit PNGs
    c.data.norm_value = 65535.0
    c.data.train_scenes = ("balloons", "cd", "clay", "egyptian_statue", "fake_and_real_beers",
                           "fake_and_real_lemon_slices", "fake_and_real_peppers", "fake_and_real_sushi",
                           "feathers", "glass_tiles", "jelly_beans")
    c.data.val_scenes = ("paints",)
    c.data.test_scenes = ("pompoms", "real_and_fake_peppers", "stuffed_toys", "thread_spools")
    return c
