"""A data spec's scenes and windows: the user's files (or the embedded sample) read and normalised as the
protocol says, and each split's windows (nothing cropped yet), with the :class:`Split` that holds
(HR, LR) pairs. Both ways of loading splits build on this: from the files in memory
(:mod:`lkca_jax.data.datasets`) and from a prepared TFDS dataset (:mod:`lkca_jax.data.tfds`,
whose builder cuts the same windows). The normalisation constant travels with every split so
evaluation and inference can undo it.
"""

from __future__ import annotations

import dataclasses
import pathlib
import warnings

import numpy as np

from lkca_jax.data import protocols as P
from lkca_jax.data.io import READ_SUFFIXES, DataError, read_cube, require_finite
from lkca_jax.data.registry import dataset_of
from lkca_jax.data.spec import DataSpec

PACKAGE_DATA = pathlib.Path(__file__).parent
EVERY = "*"  # in data.test_scenes: every scene of the folder that the other splits do not name


@dataclasses.dataclass
class Split:
    """Equal-length lists: HR crops (H, W, C), LR inputs (H/r, W/r, C), ids; and, per scene,
    the constant its data were divided by."""

    hr: list[np.ndarray]
    lr: list[np.ndarray]
    ids: list[str]
    norm: dict[str, float]

    def __len__(self) -> int:
        return len(self.ids)


def _read(path, key: str) -> np.ndarray:
    cube = read_cube(path, key or None)
    require_finite(cube, path)
    return cube.data


def _scene_files(folder: pathlib.Path) -> dict[str, pathlib.Path]:
    """Scenes of a folder: sub-folders of band PNGs (CAVE's <name>_ms) and cube files."""
    if not folder.is_dir():
        raise DataError(folder, "expected a folder of scenes")
    found = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_dir() or p.suffix.lower() in READ_SUFFIXES:
            found[p.name[:-3] if p.is_dir() and p.name.endswith("_ms") else p.stem] = p
    if not found:
        raise DataError(folder, "holds no scenes (band-PNG folders or cube files)")
    return found


def load_scenes(spec: DataSpec) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """The protocol's normalised scenes by name, and each one's normalisation constant."""
    d = spec.data
    entry = dataset_of(d.protocol)
    if entry.layout in ("scenes", "folder"):
        if not d.path:
            raise DataError(f"{d.protocol} data", "config.data.path is empty: point it at the folder of scenes")
        files = _scene_files(pathlib.Path(d.path))
        named = set(d.train_scenes) | set(d.val_scenes) | set(d.test_scenes) - {EVERY}
        wanted = set(files) | named if EVERY in d.test_scenes or not named else named
        missing = sorted(wanted - set(files))
        if missing:
            raise DataError(d.path, f"lacks {len(missing)} configured scene(s): {', '.join(missing)}; found "
                                    f"{len(files)}: {', '.join(sorted(files))}")
        unused = sorted(set(files) - wanted)
        if unused:  # not silently: a folder of all 32 CAVE scenes read with the 16-scene split
            warnings.warn(f"{d.path}: {len(unused)} scene(s) outside the configured split are not used "
                          f"({', '.join(unused)}); configs/cave.py:<scale>,<method>,full splits all 32 CAVE scenes, "
                          "and ',own' scores every scene of a folder", stacklevel=2)
        sources = {name: p for name, p in files.items() if name in wanted}
        raw = {name: _read(p, d.key) for name, p in sources.items()}
    else:  # one scene
        path = d.path or (PACKAGE_DATA / entry.embedded if entry.embedded else "")
        if not path:
            raise DataError(f"{d.protocol} data", "config.data.path is empty: point it at the downloaded file")
        cube = _read(path, d.key)
        if entry.crop:
            try:
                cube = P.crop_region(cube, entry.crop, entry.raw_shape)
            except ValueError as err:
                raise DataError(path, str(err)) from None
        # the embedded sample's protocol on a file of your own: images named after that file
        name = pathlib.Path(path).stem if entry.embedded and d.path else entry.scene or entry.name
        raw, sources = {name: cube}, {name: path}
    if d.normalisation == "global_max":  # one max over everything the protocol reads
        mode, value = "constant", float(max(np.max(v) for v in raw.values()))
    else:  # constant, or per_file_max (each scene by its own max)
        mode, value = d.normalisation, d.norm_value
    out = {k: P.normalise(v, mode, value) for k, v in raw.items()}
    far = {}  # not silently: raw counts under a constant of 1 train to nonsense
    for k, (cube, c) in out.items():
        low, high = float(np.min(cube)), float(np.max(cube))  # two passes, no full-size |cube| temporary
        peak = max(high, -low)
        if peak > P.RANGE_FACTOR or 0 < peak < P.RANGE_FACTOR ** -4:
            far[k] = f"values span {low:.3g} .. {high:.3g} after dividing by {c:g}"
    if far:
        k, others = next(iter(far)), f" (and {len(far) - 1} other scene(s))" if len(far) > 1 else ""
        warnings.warn(f"{sources[k]}: {far[k]}{others} (config.data.normalisation {d.normalisation}); the models "
                      "expect about 0..1: set config.data.normalisation global_max or per_file_max, or "
                      "config.data.norm_value to the data's full-scale value", stacklevel=2)
    return {k: v[0] for k, v in out.items()}, {k: v[1] for k, v in out.items()}


def windows(spec: DataSpec, shapes: dict[str, tuple[int, int]]) -> dict[str, list[P.Window]]:
    d = spec.data
    try:
        out = _protocol_windows(spec, shapes)
    except DataError:
        raise
    except ValueError as err:  # e.g. Pavia's test images on a small crop: name the data and the fields
        raise DataError(d.path or d.protocol, f"{err} (config.data.test_size, patch_size and stride set the "
                                              "windows)") from None
    if d.test_crop:
        try:
            out["test"] = [P.centre(w, d.test_crop, spec.scale) for w in out["test"]]
        except ValueError as err:
            raise DataError(d.path or d.protocol, f"config.data.test_crop: {err}") from None
    return out


def _protocol_windows(spec: DataSpec, shapes: dict[str, tuple[int, int]]) -> dict[str, list[P.Window]]:
    d, r = spec.data, spec.scale
    entry = dataset_of(d.protocol)
    kw = dict(patch_size=d.patch_size or None, stride=d.stride or None)
    if entry.layout == "strip":
        (name, (h, w)), = shapes.items()
        n_test = entry.n_test or w // d.test_size  # 0: as many as fit
        return P.top_strip(name, h, w, r, n_test, d.test_size, val_fraction=d.val_fraction, seed=d.seed, **kw)
    if entry.layout == "scenes" or d.train_scenes:
        test = [s for s in d.test_scenes if s != EVERY]
        if EVERY in d.test_scenes:  # and every scene of the folder that no split names
            test += [s for s in sorted(shapes) if s not in {*d.train_scenes, *d.val_scenes, *test}]
        return P.scenes(shapes, r, list(d.train_scenes), list(d.val_scenes), test, **kw)
    return P.folder(shapes, r, val_fraction=d.val_fraction, seed=d.seed, **kw)


def scene_windows(spec: DataSpec) -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, list[P.Window]]]:
    """The normalised scenes, their constants, and each split's windows (nothing cropped yet);
    scenes whose band count is not ``spec.bands`` are refused (None: any)."""
    cubes, norms = load_scenes(spec)
    counts = {}  # band count -> the scenes that have it, where it is not the model's
    for k, v in cubes.items():
        if spec.bands is not None and v.shape[2] != spec.bands:
            counts.setdefault(v.shape[2], []).append(k)
    if counts:
        listed = "; ".join(f"{', '.join(names)}: {n} bands" for n, names in counts.items())
        raise DataError(spec.data.path or spec.data.protocol, f"{listed}; the model expects {spec.bands} "
                                                              "(config.model.bands)")
    return cubes, norms, windows(spec, {k: v.shape[:2] for k, v in cubes.items()})
