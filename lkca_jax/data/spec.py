"""What the data layer reads of a run's config: its ``data`` block, the scale and the band count.

:func:`data_config` makes the ``data`` block of a dataset (the defaults below, then the dataset's
own fields from its registry entry); :mod:`lkca_jax.config` puts it in every config, and a TFDS
builder uses it alone, without the model or training config. Everything in ``lkca_jax.data`` that
reads or cuts data takes a :class:`DataSpec` (``DataSpec.of(config)``), never the whole config.

Each fact about a dataset has one home. What a user may change for a run (the file, the
normalisation, the test-image size and crop, the patch size and stride, the scene splits) is a field of the
``data`` block, its default taken from the registry entry once, here; what no run changes (the
layout, the crop of the raw file, the number of test images, the embedded file, the wavelengths)
stays in the registry entry and is read from there (:func:`lkca_jax.data.registry.dataset_of`).
"""

from __future__ import annotations

import dataclasses

import ml_collections

from lkca_jax.data.registry import DATASETS


def data_config(dataset: str) -> ml_collections.ConfigDict:
    """The ``config.data`` block of ``dataset``, each field's meaning beside it (docs/design.md
    section 6; lkca_jax/data/protocols.py)."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset {dataset!r} is not registered; known: {', '.join(DATASETS)}")
    d = ml_collections.ConfigDict()
    d.protocol = dataset  # the registry entry (lkca_jax/data/registry.py): its layout, crop and test images
    # Where the splits come from: 'files' (read and cut the downloaded files at every start) or 'tfds'
    # (the dataset prepared once by its TFDS builder, lkca_jax/data/tfds: images read on access, each
    # process only its own shard; it must have been prepared with the data fields below).
    d.source = "files"
    d.tfds_dir = ""  # the TFDS data_dir of source 'tfds' ('': TFDS's default, ~/tensorflow_datasets)
    d.path = ""  # the downloaded file (or folder of scenes) the protocol reads
    d.key = ""  # variable/array name inside the file, when it holds several
    d.normalisation = "global_max"  # global_max | constant | per_file_max
    d.norm_value = 0.0  # the constant, for normalisation='constant'
    d.test_size = 0  # side of the square test images (top-strip protocols)
    # 0: each test image as the protocol cuts it; n > 0: its centre n x n instead (a multiple of the scale;
    # the LR input made from that crop), as papers that score centre crops do
    d.test_crop = 0
    d.patch_size = 0  # training HR patch side; 0: 16 * scale (the paper's 64 at x4, 128 at x8)
    d.stride = 0  # 0: 8 * scale (the paper's 32 at x4, 64 at x8)
    d.val_fraction = 0.1
    d.seed = 0  # validation split
    d.train_scenes = ()  # scene-level protocols (cave): the scene names of each split
    d.val_scenes = ()
    d.test_scenes = ()  # '*': also every scene of the folder that no split names (scoring scenes of your own)
    d.update(DATASETS[dataset].data_fields())
    return d


def with_defaults(data, protocol: str) -> dict:
    """``data``'s fields, and the dataset's defaults for those it lacks: a run or a prepared dataset
    recorded before a field existed reads as that field's default, which is the behaviour it had."""
    return {**data_config(protocol), **data}


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """``data``: a config's ``data`` block; ``scale``: the SR factor; ``bands``: the band count the
    model expects (None: whatever the files hold)."""

    data: ml_collections.ConfigDict
    scale: int
    bands: int | None = None

    @classmethod
    def of(cls, config) -> DataSpec:
        return cls(config.data, config.model.scale, config.model.get("bands"))
