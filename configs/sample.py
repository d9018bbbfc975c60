"""The embedded real sample: a 100 x 100 x 102 ROSIS Pavia crop shipped in the package.

Two 48 x 48 test images along the top, 32 x 32 training patches below them.
Needs no download and no ../shared. Count the model (training lands with train.py):

    python -m lkca_jax count --config=configs/sample.py:x4,net

The argument is '<scale>,<variant>' as for the dataset configs (x4 by default;
x2 and x4 fit the 48-pixel test images and 32-pixel patches).
"""

from lkca_jax.config import base_config


def get_config(arg: str = "x4,net"):
    c = base_config("sample", arg)
    c.data.path = ""  # empty: the copy inside the package
    return c
