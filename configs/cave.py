"""CAVE multispectral (31 bands, 400-700 nm): the 16 scenes of ../shared/data/cave, or all 32.

The 16: scenes split 11 / 1 / 4 (lkca_jax/data/registry.py, CAVE_SCENES: the paper gives no split).
All 32 of the official complete_ms_data.zip (argument 'full', registry entry cave_full): 19 / 1 / 12,
MCNet's 20 / 12 proportions, restricted to the 16 it is the 16-scene split. Values / 65535, 64 x 64
training patches (stride 32) from the training scenes, the other scenes whole (512 x 512). Train:

    python train.py --config configs/cave.py:x4,net --workdir runs/cave_x4_net
    python train.py --config configs/cave.py:x4,net,full --workdir runs/cave32_x4_net \
        --config.data.path ~/data/complete_ms_data

What to expect: an epoch is 2475 patches x 8 copies, 1237 steps at batch 16; the paper's size
(16 blocks of 128) takes seconds a step on a 2-core CPU, so docs/results.md's study
(recipes/cave_study.py) runs a reduced model (`--config.model.depth 4 --config.model.features 64`).

Scoring a model (a shipped one, or a run) on a folder of CAVE scenes of your own, every scene of the
folder a test scene (argument 'own'; centre 256 x 256 crops as in docs/results.md):

    python evaluate.py --pretrained cave-x4-lkca-kd --config configs/cave.py:x4,kd,own \
        --config.data.path ~/data/my_cave_scenes --config.data.test_crop 256 --per_image

The argument is '<scale>,<method>[,full|,own]': scale x2 | x3 | x4 | x8, method a key of
lkca_jax/methods.py (net | lr | kd | vdsr | fcnn3d | sspsr | msdformer | essaformer | bicubic).
"""

from lkca_jax.config import base_config


def get_config(arg: str = "x4,net"):
    parts = [p.strip() for p in arg.split(",")]
    full, own = "full" in parts, "own" in parts
    if full and own:
        raise ValueError("configs/cave.py: 'full' and 'own' are two splits; give one")
    c = base_config("cave_full" if full else "cave", ",".join(p for p in parts if p not in ("full", "own")))
    # a folder of <scene>_ms band-PNG folders
    c.data.path = "" if full or own else "../shared/data/cave"
    if own:  # every scene of the folder is a test scene: a model scored on scenes of your own
        c.data.train_scenes, c.data.val_scenes, c.data.test_scenes = (), (), ("*",)
    # BatchNorm, as in docs/results.md's runs and for the reason configs/sample.py gives; the CAVE study
    # compares the two (--config.model.norm layer).
    c.model.norm = "batch"
    return c
