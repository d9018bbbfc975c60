"""Chikusei (Headwall Hyperspec-VNIR-C, 128 bands, 363-1018 nm): the paper's Table V.

Needs HyperspecVNIR_Chikusei_20140729.mat (MATLAB v7.3, variable 'chikusei'; where to get it:
lkca_jax/data/registry.py). The SSPSR protocol: the 2304 x 2048 crop divided by its max, 4 test
images of 512 x 512 along the top, 3465 x4 training patches below (10% to validation). Train:

    python train.py --config configs/chikusei.py:x4,net --workdir runs/chikusei_x4_net \
        --config.data.path /data/HyperspecVNIR_Chikusei_20140729.mat

What to expect: the paper reports LKCA-Net x4 at 40.31 dB MPSNR and SAM 2.27 (x8: 35.88 dB)
after training on a GPU (its length is lost with the formulas; this config takes MSDformer's 300
epochs of batch 32); at 3119 training patches (3465 less 10% to validation) x 8 copies an
epoch is 779 steps of batch 32, so the full recipe is out of reach of a CPU (minutes per hundred
steps). Count the paper's Param and Flops columns without data:

    python -m lkca_jax count --config=configs/chikusei.py:x4,net

The model keeps the channels-first LayerNorm (model.norm layer, the base default) because that is
the model the paper's counts describe; trained here on CAVE it ended 0.97 dB below BatchNorm
(docs/results.md), so set --config.model.norm batch to train it.

The argument is '<scale>,<method>': scale x2 | x3 | x4 | x8, method a key of
lkca_jax/methods.py (net | lr | kd | vdsr | bicubic).
"""

from lkca_jax.config import base_config


def get_config(arg: str = "x4,net"):
    c = base_config("chikusei", arg)
    c.data.path = ""  # HyperspecVNIR_Chikusei_20140729.mat (MATLAB v7.3, variable 'chikusei')
    c.model.up_extra = "scale"  # the paper's model as its Param column counts it (lkca_jax/config.py)
    return c
