"""A folder of hyperspectral scenes of your own (the registry's 'folder' dataset).

Every file or band-PNG folder in config.data.path is a scene: .mat, .npy/.npz, GeoTIFF, ENVI, or a
CAVE-style folder of band PNGs, all with the same bands. A seeded shuffle of the scene names
(data.seed) puts 20 % of them in test and 10 % in validation; the others give the training patches
(16 x scale pixels, stride 8 x scale); every scene is divided by the largest value of all
(data.normalisation global_max). The band count is part of the argument:

    python train.py --config configs/folder.py:x4,net,bands=102 --workdir runs/mine \
        --config.data.path ~/data/my_scenes
    python evaluate.py --workdir runs/mine --per_image --save_images

The argument is '<scale>,<method>,bands=<n>': scale x2 | x3 | x4 | x8, method a key of
lkca_jax/methods.py (net | lr | kd | vdsr | fcnn3d | sspsr | msdformer | essaformer | bicubic).
"""

from lkca_jax.config import base_config


def get_config(arg: str = ""):
    parts = [p.strip() for p in arg.split(",") if p.strip()]
    given = [p for p in parts if p.startswith("bands=")]
    count = given[0].removeprefix("bands=") if len(given) == 1 else ""
    if not count.isdigit() or int(count) < 1:
        raise ValueError(f"configs/folder.py:{arg}: give the scenes' band count once, as in "
                         "configs/folder.py:x4,net,bands=102")
    bands = int(count)
    c = base_config("folder", ",".join(p for p in parts if p not in given), bands=bands)
    c.data.path = ""  # the folder of scenes: --config.data.path
    c.model.norm = "batch"  # as configs/sample.py and configs/cave.py train (the reason is given there)
    return c
