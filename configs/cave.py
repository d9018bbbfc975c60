"""CAVE multispectral (31 bands, 400-700 nm), the 16 scenes of ../shared/data/cave.

Scenes split 11 / 1 / 4 (lkca_jax/data/registry.py, CAVE_SCENES: the paper gives no split),
values / 65535, 64 x 64 training patches (stride 32) from the training scenes, the other scenes
whole (512 x 512). Train:

    python train.py --config configs/cave.py:x4,net --workdir runs/cave_x4_net

What to expect: an epoch is 2475 patches x 8 copies, 618 steps at batch 32; the paper's size
(16 blocks of 128) takes seconds a step on a 2-core CPU, so docs/results.md runs a reduced model
(`--config.model.depth 4 --config.model.features 64`), which beat Bicubic (36.30 dB MPSNR on the
4 test scenes) by 0.75 dB after 800 steps. recipes/cave_x4.sh runs the paper's whole recipe.

The argument is '<scale>,<method>': scale x2 | x3 | x4 | x8, method a key of
lkca_jax/methods.py (net | lr | kd | vdsr | bicubic).
"""

from lkca_jax.config import base_config


def get_config(arg: str = "x4,net"):
    c = base_config("cave", arg)
    c.data.path = "../shared/data/cave"  # a folder of <scene>_ms band-PNG folders
    # BatchNorm, as in docs/results.md's runs and for the reason configs/sample.py gives; the CAVE study
    # compares the two (--config.model.norm layer).
    c.model.norm = "batch"
    return c
