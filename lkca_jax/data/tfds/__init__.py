"""TFDS builders: the paper's protocols written once to ``array_record`` files.

Each builder reads the files the user downloaded from TFDS's ``manual_dir``
(``<data_dir>/downloads/manual`` unless told otherwise), applies the protocol of
:mod:`lkca_jax.data.protocols` with the dataset's registry entry
(:mod:`lkca_jax.data.registry`, which also gives the builder its description, home page,
citation and download instructions), and writes one example per training patch or
test image: ``hr`` and ``lr`` (float32, H x W x C, normalised), ``id`` (scene and
window), ``scale`` and ``norm`` (the constant the scene was divided by, so
evaluation and inference can undo it). There is a builder config per scale,
``x2``, ``x3``, ``x4`` and ``x8``. Reading needs no TensorFlow::

    import tensorflow_datasets as tfds
    import lkca_jax.data.tfds  # registers the builders
    builder = tfds.builder("pavia_centre/x4", data_dir="~/tensorflow_datasets", file_format="array_record")
    builder.download_and_prepare()
    train = builder.as_data_source(split="train")  # random access; feed to lkca_jax.data.pipeline

Builders: one per registry entry with a ``tfds`` name: ``chikusei``, ``houston2018``,
``pavia_centre``, ``cave`` and ``hsi_folder`` (any folder of cubes, split by scene).
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from lkca_jax.config import base_config
from lkca_jax.data import protocols as P
from lkca_jax.data.datasets import scene_windows
from lkca_jax.data.io import DataError
from lkca_jax.data.registry import DATASETS

SCALES = (2, 3, 4, 8)


@dataclasses.dataclass(eq=False)
class ScaleConfig(tfds.core.BuilderConfig):
    scale: int = 4


class _ProtocolBuilder:
    """What every builder does; :func:`_builder` makes one per registry entry (``DATASET``)."""

    DATASET = ""  # a key of lkca_jax.data.registry.DATASETS
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "The paper's protocol (RECONSTRUCTION.md section 5)."}
    BUILDER_CONFIGS = [ScaleConfig(name=f"x{r}", description=f"x{r} super-resolution pairs", scale=r)
                       for r in SCALES]
    DEFAULT_CONFIG_NAME = "x4"

    def _info(self):
        entry = DATASETS[self.DATASET]
        image = tfds.features.Tensor(shape=(None, None, entry.bands), dtype=np.float32, encoding="bytes")
        return tfds.core.DatasetInfo(
            builder=self,
            description=entry.description,
            features=tfds.features.FeaturesDict({
                "hr": image, "lr": image, "id": tfds.features.Text(), "scale": np.int32, "norm": np.float32}),
            homepage=entry.homepage or None,
            citation=entry.citation or None,
        )

    def _source(self, manual_dir: pathlib.Path) -> pathlib.Path:
        files = DATASETS[self.DATASET].files
        if not files:
            return manual_dir
        for name in files:
            if (manual_dir / name).exists():
                return manual_dir / name
        raise DataError(manual_dir, f"expected {' or '.join(files)} here; see the manual download instructions")

    def _config(self, manual_dir: pathlib.Path):
        # A folder learns its band count from the data; the window code does not use it.
        bands = DATASETS[self.DATASET].bands
        c = base_config(self.DATASET, f"x{self.builder_config.scale}", bands=None if bands else 1)
        c.data.path = str(self._source(pathlib.Path(manual_dir)))
        return c

    def _split_generators(self, dl_manager):
        config = self._config(dl_manager.manual_dir)
        cubes, norms, splits = scene_windows(config, check_bands=DATASETS[self.DATASET].bands is not None)
        return {name: self._generate_examples(cubes, norms, ws) for name, ws in splits.items() if ws}

    def _generate_examples(self, cubes, norms, ws):
        scale = self.builder_config.scale
        for w in ws:
            hr = P.crop(cubes[w.scene], w)
            yield w.id, {"hr": hr, "lr": P.degrade(hr, scale), "id": w.id, "scale": scale, "norm": norms[w.scene]}


def _builder(entry) -> type:
    """The TFDS builder class of a registry entry; TFDS registers it by the class name, the entry's
    ``tfds`` name in CamelCase (``pavia_centre`` -> ``PaviaCentre``)."""
    name = "".join(part.capitalize() for part in entry.tfds.split("_"))
    return type(name, (_ProtocolBuilder, tfds.core.GeneratorBasedBuilder), {
        "__doc__": entry.title, "__module__": __name__, "DATASET": entry.name,
        "MANUAL_DOWNLOAD_INSTRUCTIONS": entry.download})


BUILDERS = {entry.tfds: _builder(entry) for entry in DATASETS.values() if entry.tfds}
Chikusei, Houston2018, PaviaCentre, Cave, HsiFolder = (
    BUILDERS[n] for n in ("chikusei", "houston2018", "pavia_centre", "cave", "hsi_folder"))
