"""Pavia Centre (ROSIS, 102 bands): the paper's Table VII.

Needs Pavia.mat (variable 'pavia', 1096 x 715 x 102; lkca_jax/data/registry.py). Divided by 8000
(SSPSR's scripts); 3 test images of 224 x 224 along the top, training patches below. Train:

    python train.py --config configs/pavia.py:x4,net --workdir runs/pavia_x4_net --config.data.path /data/Pavia.mat

What to expect: the paper reports LKCA-Net x4 at 32.55 dB MPSNR and SAM 6.14 (x8: 28.23 dB);
the hardest of its three datasets, with the fewest training patches. The embedded sample
(configs/sample.py) is a ROSIS Pavia crop with the same 102 bands. Count the paper's columns:

    python -m lkca_jax count --config=configs/pavia.py:x4,net

The model keeps the channels-first LayerNorm (model.norm layer, the base default) because that is
the model the paper's counts describe; trained here on CAVE it ended 0.97 dB below BatchNorm
(docs/results.md), so set --config.model.norm batch to train it.

The argument is '<scale>,<method>': scale x2 | x3 | x4 | x8, method a key of
lkca_jax/methods.py (net | lr | kd | vdsr | bicubic).
"""

from lkca_jax.config import base_config


def get_config(arg: str = "x4,net"):
    c = base_config("pavia", arg)
    c.data.path = ""  # Pavia.mat (variable 'pavia', 1096 x 715 x 102)
    c.model.up_extra = "scale"  # the paper's model as its Param column counts it (lkca_jax/config.py)
    return c
