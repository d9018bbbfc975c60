"""From a config's ``data`` block to splits of (HR, LR) pairs: cut from the files in memory, or read
on access from the prepared TFDS dataset.

In memory, the protocol's windows of the normalised scenes (:mod:`lkca_jax.data.scenes`) are cut as
views, no copies, and each LR input is made by MATLAB bicubic degradation of its HR crop.
"""

from __future__ import annotations

from lkca_jax.data import protocols as P
from lkca_jax.data.scenes import Split, scene_windows


def load_splits(config, names=("train", "validation", "test")) -> dict[str, Split]:
    """HR/LR pairs of each named split, per the config's protocol: cut from the files in memory, or
    (``config.data.source = 'tfds'``) read on access from the prepared TFDS dataset."""
    source = config.data.get("source", "files")
    if source == "tfds":
        from lkca_jax.data.tfds import load_prepared

        return load_prepared(config, names)
    if source != "files":
        raise ValueError(f"config.data.source must be 'files' or 'tfds', got {source!r}")
    cubes, norms, split_windows = scene_windows(config)
    out = {}
    for name, ws in split_windows.items():
        if name in names:
            hr = [P.crop(cubes[w.scene], w) for w in ws]
            norm = {w.scene: norms[w.scene] for w in ws}
            out[name] = Split(hr, [P.degrade(x, config.model.scale) for x in hr], [w.id for w in ws], norm)
    return out
