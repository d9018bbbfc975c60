"""TFDS builders: the paper's protocols written once to ``array_record`` files, and the reader
that trains and evaluates from them (``config.data.source = 'tfds'``).

Each builder reads the files the user downloaded from TFDS's ``manual_dir``
(``<data_dir>/downloads/manual`` unless told otherwise), applies the protocol of
:mod:`lkca_jax.data.protocols` with the dataset's registry entry
(:mod:`lkca_jax.data.registry`, which also gives the builder its description, home page,
citation and download instructions), and writes one example per training patch or
test image: ``hr`` and ``lr`` (float32, H x W x C, normalised), ``id`` (scene and
window), ``scale`` and ``norm`` (the constant the scene was divided by, so
evaluation and inference can undo it). There is a builder config per scale,
``x2``, ``x3``, ``x4`` and ``x8``.

Whole datasets prepare without TensorFlow, and every split is one TFDS split whatever its size
(``split="train"``). TFDS keeps a split's examples in memory up to 1 GB and past that spills them
to bucket files through ``tf.io.gfile``, which needs TensorFlow. The builders therefore generate a
split larger than :data:`PART_BYTES` in parts (``train_0``, ``train_1``, ..., each under the
limit), then rename the parts' shard files, in order, into the shards of the one split and record
it as such in ``dataset_info.json``. Records are in window order (``disable_shuffling``: record i
is the protocol's window i, so the raw-file path and this one see the same items at the same
indices; training shuffles per epoch anyway). The dataset's metadata (``metadata.json``) records
each split's ids, the scenes' normalisation constants and the data fields the windows were cut
with. Per-patch examples were kept over
scenes or tiles because training reads random patches: a patch is one small random-access read,
where a tile would be decoded whole for every patch drawn from it. Reading needs no TensorFlow::

    import tensorflow_datasets as tfds
    import lkca_jax.data.tfds  # registers the builders
    builder = tfds.builder("cave/x4", data_dir="~/tensorflow_datasets", file_format="array_record")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir="~/cave"))
    python train.py --config configs/cave.py:x4,net --workdir runs/x --config.data.source tfds

:func:`load_prepared` gives :class:`~lkca_jax.data.scenes.Split` objects whose images are read
on access, so each process of a multi-process run reads only the patches of its own shard.

Builders: one per registry entry with a ``tfds`` name: ``chikusei``, ``houston2018``,
``pavia_centre``, ``cave`` (the 16 scenes of ../shared/data/cave), ``cave_full`` (all 32),
``hsi_folder`` (any folder of cubes, split by scene) and ``lkca_sample`` (the embedded sample).
"""

from __future__ import annotations

import bisect
import dataclasses
import pathlib
from collections.abc import Sequence

import numpy as np
import tensorflow_datasets as tfds

from lkca_jax.data import protocols as P
from lkca_jax.data.io import DataError
from lkca_jax.data.registry import DATASETS, dataset_of
from lkca_jax.data.scenes import Split, scene_windows
from lkca_jax.data.spec import DataSpec, data_config, with_defaults

SCALES = (2, 3, 4, 8)
PART_BYTES = 768 << 20  # a split's examples past this many bytes go on in a further part (TFDS: 1 GB in memory)
ORDER_NOTE = " Examples in window order (metadata.json: splits.<split>.ids)."
# the config.data fields that decide the windows and values; a prepared dataset records them
WINDOW_FIELDS = ("protocol", "key", "normalisation", "norm_value", "test_size", "test_crop", "patch_size", "stride",
                 "val_fraction", "seed", "train_scenes", "val_scenes", "test_scenes")


@dataclasses.dataclass(eq=False)
class ScaleConfig(tfds.core.BuilderConfig):
    scale: int = 4


class _ProtocolBuilder:
    """What every builder does; :func:`_builder` makes one per registry entry (``DATASET``)."""

    DATASET = ""  # a key of lkca_jax.data.registry.DATASETS
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "The paper's protocol (docs/design.md section 6)."}
    BUILDER_CONFIGS = [ScaleConfig(name=f"x{r}", description=f"x{r} super-resolution pairs", scale=r)
                       for r in SCALES]
    DEFAULT_CONFIG_NAME = "x4"

    def _info(self):
        entry = DATASETS[self.DATASET]
        image = tfds.features.Tensor(shape=(None, None, entry.bands), dtype=np.float32, encoding="bytes")
        return tfds.core.DatasetInfo(
            builder=self,
            description=entry.description + ORDER_NOTE,
            features=tfds.features.FeaturesDict({
                "hr": image, "lr": image, "id": tfds.features.Text(), "scale": np.int32, "norm": np.float32}),
            homepage=entry.homepage or None,
            citation=entry.citation or None,
            disable_shuffling=True,  # window order: record i is the protocol's window i
            metadata=tfds.core.MetadataDict(),
        )

    def _source(self, manual_dir: pathlib.Path) -> pathlib.Path:
        files = DATASETS[self.DATASET].files
        if not files:
            return manual_dir
        for name in files:
            if (manual_dir / name).exists():
                return manual_dir / name
        raise DataError(manual_dir, f"expected {' or '.join(files)} here; see the manual download instructions")

    def _spec(self, manual_dir) -> DataSpec:
        # the dataset's default data block; a folder's band count is whatever its files hold
        entry = DATASETS[self.DATASET]
        d = data_config(self.DATASET)
        d.path = "" if entry.embedded else str(self._source(pathlib.Path(manual_dir)))
        return DataSpec(d, self.builder_config.scale, entry.bands)

    def _split_generators(self, dl_manager):
        entry = DATASETS[self.DATASET]
        spec = self._spec(None if entry.embedded else dl_manager.manual_dir)
        cubes, norms, splits = scene_windows(spec)
        r = self.builder_config.scale
        generators, layout = {}, {}
        for name, ws in splits.items():
            if not ws:
                continue
            parts, size = [[]], 0
            for i, w in enumerate(ws):
                nbytes = w.height * w.width * cubes[w.scene].shape[2] * 4 * (1 + 1 / r ** 2)
                if parts[-1] and size + nbytes > PART_BYTES:
                    parts.append([])
                    size = 0
                parts[-1].append(i)
                size += nbytes
            names = [name] if len(parts) == 1 else [f"{name}_{k}" for k in range(len(parts))]
            for part, indices in zip(names, parts):
                generators[part] = self._generate_examples(cubes, norms, ws, indices)
            layout[name] = {"parts": names, "sizes": [len(p) for p in parts], "ids": [w.id for w in ws]}
        self.info.metadata.update({"splits": layout, "norms": {k: float(v) for k, v in norms.items()},
                                   "data": {f: _plain(spec.data[f]) for f in WINDOW_FIELDS}})
        return generators

    def _generate_splits(self, dl_manager, download_config):
        """TFDS's generation, then each split generated in parts made one: the parts' shard files,
        in order, renamed to the split's own shards (no data rewritten)."""
        infos = {info.name: info for info in super()._generate_splits(dl_manager, download_config)}
        merged = []
        for name, layout in self.info.metadata["splits"].items():
            parts = [infos.pop(part) for part in layout["parts"]]
            if len(parts) > 1:
                template = parts[0].filename_template.replace(split=name)
                paths = [path for part in parts for path in part.filename_template.sharded_filepaths(part.num_shards)]
                for k, path in enumerate(paths):
                    path.rename(template.sharded_filepath(shard_index=k, num_shards=len(paths)))
                parts = [tfds.core.SplitInfo(name=name, filename_template=template,
                                             shard_lengths=[n for part in parts for n in part.shard_lengths],
                                             num_bytes=sum(int(part.num_bytes) for part in parts))]
                layout.update(parts=[name], sizes=[sum(layout["sizes"])])
            merged += parts
        return merged + list(infos.values())

    def _generate_examples(self, cubes, norms, ws, indices):
        scale = self.builder_config.scale
        for i in indices:
            w = ws[i]
            hr = P.crop(cubes[w.scene], w)
            yield i, {"hr": hr, "lr": P.degrade(hr, scale), "id": w.id, "scale": scale, "norm": norms[w.scene]}


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


class PreparedImages(Sequence):
    """The ``hr`` or ``lr`` images of a prepared split, read on access (one record at a time, the
    last one kept so that reading an item's HR and LR decodes it once)."""

    def __init__(self, records: Records, key: str):
        self.records, self.key = records, key

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self.records[i][self.key]


class Records:
    """Random access over a split's parts, end to end."""

    def __init__(self, sources):
        self.sources = sources
        self.starts = np.cumsum([0] + [len(s) for s in sources]).tolist()
        self.reads = 0  # records decoded (tests check that a process reads only its own shard)
        self._last = (None, None)

    def __len__(self) -> int:
        return self.starts[-1]

    def __getitem__(self, i: int) -> dict:
        i = int(i) + (len(self) if i < 0 else 0)
        if not 0 <= i < len(self):
            raise IndexError(i)
        if self._last[0] != i:
            k = bisect.bisect_right(self.starts, i) - 1
            self.reads += 1
            self._last = (i, self.sources[k][i - self.starts[k]])
        return self._last[1]


def load_prepared(spec: DataSpec, names=("train", "validation", "test")) -> dict[str, Split]:
    """The splits of the prepared TFDS dataset of the spec's protocol and scale (in
    ``data.tfds_dir``, TFDS's default when empty), images read on access. The dataset must have
    been cut with the spec's data fields; any difference is an error that names them."""
    d = spec.data
    entry = dataset_of(d.protocol)
    if not entry.tfds:
        raise ValueError(f"dataset {d.protocol!r} has no TFDS builder; use config.data.source 'files'")
    name = f"{entry.tfds}/x{spec.scale}"
    data_dir = str(pathlib.Path(d.tfds_dir).expanduser()) if d.get("tfds_dir", "") else None
    builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
    where = builder.data_dir
    if not builder.is_prepared():
        raise DataError(where, f"no prepared {name} here; prepare it first (tfds.builder({name!r}, data_dir=...)"
                               ".download_and_prepare(), README 'TFDS')")
    meta = dict(builder.info.metadata or {})
    if "splits" not in meta:
        raise DataError(where, f"{name} was prepared by an older lkca_jax (no split layout in metadata.json); "
                               "prepare it again")
    recorded = with_defaults(meta["data"], d.protocol)
    differ = [f for f in WINDOW_FIELDS if _plain(d[f]) != _plain(recorded[f])]
    if differ:
        raise DataError(where, f"{name} was prepared with other data fields than the config's: " + ", ".join(
            f"{f} {_plain(recorded[f])!r} there, {_plain(d[f])!r} here" for f in differ))
    out = {}
    for split in names:
        layout = meta["splits"].get(split)
        if layout is None:
            out[split] = Split([], [], [], {})
            continue
        records = Records([builder.as_data_source(split=part) for part in layout["parts"]])
        ids = list(layout["ids"])
        if len(records) != len(ids):
            raise DataError(where, f"{name} holds {len(records)} of the {len(ids)} {split} examples (prepared with "
                                   "max_examples_per_split?); prepare it again without a cap")
        scenes = {i.split("/")[0] for i in ids}
        out[split] = Split(PreparedImages(records, "hr"), PreparedImages(records, "lr"), ids,
                           {k: v for k, v in meta["norms"].items() if k in scenes})
    return out


def _builder(entry) -> type:
    """The TFDS builder class of a registry entry; TFDS registers it by the class name, the entry's
    ``tfds`` name in CamelCase (``pavia_centre`` -> ``PaviaCentre``)."""
    name = "".join(part.capitalize() for part in entry.tfds.split("_"))
    return type(name, (_ProtocolBuilder, tfds.core.GeneratorBasedBuilder), {
        "__doc__": entry.title, "__module__": __name__, "DATASET": entry.name,
        "MANUAL_DOWNLOAD_INSTRUCTIONS": None if entry.embedded else entry.download})


BUILDERS = {entry.tfds: _builder(entry) for entry in DATASETS.values() if entry.tfds}
Chikusei, Houston2018, PaviaCentre, Cave, CaveFull, HsiFolder, LkcaSample = (
    BUILDERS[n] for n in ("chikusei", "houston2018", "pavia_centre", "cave", "cave_full", "hsi_folder", "lkca_sample"))
