"""Houston 2018 (ITRES CASI 1500, 48 bands, 380-1050 nm): the paper's Table VI.

Needs the 48-band Houston 2018 cube in any format `python -m lkca_jax inspect` reads (the contest's
ENVI pair 20170218_UH_CASI_S4_NAD83.hdr + .pix included; lkca_jax/data/registry.py). Divided by its
max; 8 test images of 256 x 256 along the top, training patches below. Train:

    python train.py --config configs/houston.py:x4,net --workdir runs/houston_x4_net \
        --config.data.path /data/20170218_UH_CASI_S4_NAD83.hdr

What to expect: the paper reports LKCA-Net x4 at 46.52 dB MPSNR and SAM 1.71 (x8: 40.35 dB),
the easiest of its three datasets. Count the paper's columns without data:

    python -m lkca_jax count --config=configs/houston.py:x4,net

The model keeps the channels-first LayerNorm (model.norm layer, the base default) because that is
the model the paper's counts describe; trained here on CAVE it ended 0.97 dB below BatchNorm
(docs/results.md), so set --config.model.norm batch to train it.

The argument is '<scale>,<method>': scale x2 | x3 | x4 | x8, method a key of
lkca_jax/methods.py (net | lr | kd | vdsr | bicubic).
"""

from lkca_jax.config import base_config


def get_config(arg: str = "x4,net"):
    c = base_config("houston", arg)
    c.data.path = ""  # the 48-band Houston 2018 cube, any format `python -m lkca_jax inspect` reads
    c.model.up_extra = "scale"  # the paper's model as its Param column counts it (lkca_jax/config.py)
    return c
