"""The datasets this library knows: one registry entry each (docs/design.md section 6), the
tables of ``datasets.toml`` beside this file.

An entry holds every fact about a dataset that code needs: its band count, the files a user
downloads and the variable inside them, its layout (how scenes become splits), the crop, the
normalisation, the test images, the scene lists, and what the TFDS builder says about it
(description, home page, citation, download instructions). ``configs/<name>.py`` (through
:func:`lkca_jax.config.base_config`), the split code in :mod:`lkca_jax.data.scenes` and the
TFDS builders in :mod:`lkca_jax.data.tfds` all read it; ``config.data.protocol`` names the entry.

Layouts:

* ``strip``: one scene; ``n_test`` test images of ``test_size`` side by side along the top
  (``n_test = 0``: as many as fit), training patches from the rows below (Chikusei, Houston 2018,
  Pavia Centre, the embedded sample);
* ``scenes``: a folder of scenes named per split (CAVE);
* ``folder``: a folder of any scenes, split by a seeded shuffle of their names.
"""

from __future__ import annotations

import dataclasses
import pathlib
import tomllib

import numpy as np

LAYOUTS = ("strip", "scenes", "folder")


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One dataset. ``bands`` None: learnt from the files; ``files``: the downloaded file names it
    may come as (``()``: a folder); ``crop``: (row0, row1, col0, col1), 0-based half-open, of the
    valid region, and ``raw_shape`` the (H, W) the raw scene must have for it; ``scene``: the strip
    scene's name in window ids (default ``name``); ``embedded``: a file shipped in ``lkca_jax/data``
    read when ``config.data.path`` is empty; ``tfds``: the TFDS builder's name ('' for none);
    ``wavelengths``: (first, last) band centre in nm, the sensor's stated range, for plots (the
    bands taken as evenly spaced between them; None where the source does not state it)."""

    name: str
    title: str
    layout: str
    bands: int | None = None
    files: tuple[str, ...] = ()
    key: str = ""
    crop: tuple[int, int, int, int] | None = None
    raw_shape: tuple[int, int] | None = None
    normalisation: str = "global_max"
    norm_value: float = 0.0
    n_test: int = 0
    test_size: int = 0
    scenes: dict = dataclasses.field(default_factory=dict)
    patch_size: int = 0
    stride: int = 0
    scene: str = ""
    embedded: str = ""
    tfds: str = ""
    description: str = ""
    homepage: str = ""
    citation: str = ""
    download: str = ""
    wavelengths: tuple[float, float] | None = None

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise ValueError(f"{self.name}: layout must be one of {LAYOUTS}, got {self.layout!r}")

    def band_centres(self, bands: int) -> np.ndarray | None:
        """Each band's nominal centre in nm (evenly spaced over ``wavelengths``), or None."""
        return None if self.wavelengths is None else np.linspace(*self.wavelengths, bands)

    def data_fields(self) -> dict:
        """The ``config.data`` fields this dataset sets over the base config's."""
        fields = {"protocol": self.name, "key": self.key, "normalisation": self.normalisation,
                  "norm_value": self.norm_value, "test_size": self.test_size, "patch_size": self.patch_size,
                  "stride": self.stride}
        if self.scenes:
            fields.update(train_scenes=self.scenes["train"], val_scenes=self.scenes["validation"],
                          test_scenes=self.scenes["test"])
        return fields


def _load(path: pathlib.Path) -> dict[str, Dataset]:
    with open(path, "rb") as f:
        tables = tomllib.load(f)
    tuples = ("files", "crop", "raw_shape", "wavelengths")
    return {name: Dataset(name, **{k: tuple(v) if k in tuples else v for k, v in table.items() if k != "scenes"},
                          scenes={k: tuple(v) for k, v in table.get("scenes", {}).items()})
            for name, table in tables.items()}


DATASETS = _load(pathlib.Path(__file__).with_name("datasets.toml"))
CAVE_SCENES = DATASETS["cave"].scenes


def dataset_of(name: str) -> Dataset:
    if name not in DATASETS:
        raise ValueError(f"dataset {name!r} is not registered; known: {', '.join(DATASETS)}")
    return DATASETS[name]
