"""From a data spec (:class:`~lkca_jax.data.spec.DataSpec`: a config's ``data`` block, scale and
bands) to splits of (HR, LR) pairs: cut from the files in memory, or read on access from the
prepared TFDS dataset.

In memory, the protocol's windows of the normalised scenes (:mod:`lkca_jax.data.scenes`) are cut as
views, no copies, and each LR input is made by MATLAB bicubic degradation of its HR crop.
"""

from __future__ import annotations

from lkca_jax.data import protocols as P
from lkca_jax.data.scenes import Split, scene_windows
from lkca_jax.data.spec import DataSpec


def load_splits(spec: DataSpec, names=("train", "validation", "test")) -> dict[str, Split]:
    """HR/LR pairs of each named split, per the spec's protocol: cut from the files in memory, or
    (``data.source = 'tfds'``) read on access from the prepared TFDS dataset."""
    source = spec.data.get("source", "files")
    if source == "tfds":
        from lkca_jax.data.tfds import load_prepared  # TFDS is imported only by the runs that read it

        return load_prepared(spec, names)
    if source != "files":
        raise ValueError(f"config.data.source must be 'files' or 'tfds', got {source!r}")
    cubes, norms, split_windows = scene_windows(spec)
    out = {}
    for name, ws in split_windows.items():
        if name in names:
            hr = [P.crop(cubes[w.scene], w) for w in ws]
            norm = {w.scene: norms[w.scene] for w in ws}
            out[name] = Split(hr, [P.degrade(x, spec.scale) for x in hr], [w.id for w in ws], norm)
    return out
