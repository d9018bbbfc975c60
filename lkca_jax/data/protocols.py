"""The paper's data protocols (docs/design.md section 6) as pure functions.

A protocol maps a scene's shape (or a list of scenes) to named splits, each a
list of :class:`Window` crops of the high-resolution cube; nothing is copied
until :func:`crop` is called. Low-resolution inputs are made from each crop by
MATLAB ``imresize(hr, 1/r)`` after the crop (:func:`degrade`).

* :func:`top_strip` (Chikusei after :func:`crop_region`, Houston 2018, Pavia Centre, the sample):
  test images side by side along the top, training patches from the rows below, a seeded
  fraction of them to validation. Chikusei (SSPSR, exact): 4 images of 512 x 512, x4 patches
  64 stride 32 (3465 of them), x8 128 stride 64.
* :func:`scenes` (CAVE): whole scenes, listed per split; patches from the training scenes.
* :func:`folder` (any folder of cubes): scenes split by a seeded shuffle.

Each dataset's numbers (crop, test images, scene lists) are in :mod:`lkca_jax.data.registry`.

Patches default to 16 r (the paper's x4 64 and x8 128, i.e. 16 x 16 LR) with stride 8 r.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lkca_jax.ops.imresize import imresize_np

NORMALISATIONS = ("global_max", "constant", "per_file_max")


@dataclasses.dataclass(frozen=True)
class Window:
    """A crop of scene ``scene``: rows top..top+height, columns left..left+width."""

    scene: str
    top: int
    left: int
    height: int
    width: int

    @property
    def id(self) -> str:
        return f"{self.scene}/{self.top}_{self.left}_{self.height}x{self.width}"


def crop(cube: np.ndarray, w: Window) -> np.ndarray:
    return cube[w.top:w.top + w.height, w.left:w.left + w.width]


def degrade(hr: np.ndarray, scale: int) -> np.ndarray:
    """LR = MATLAB imresize(hr, 1/r), bicubic with antialiasing; hr sides must be multiples of r."""
    if hr.shape[-3] % scale or hr.shape[-2] % scale:
        raise ValueError(f"HR size {hr.shape[-3]}x{hr.shape[-2]} is not a multiple of the scale {scale}")
    return imresize_np(hr, 1.0 / scale).astype(np.float32)


# Normalised data reaching beyond RANGE_FACTOR (or only to 1 / RANGE_FACTOR ** 4 = 1/256) of the 0..1
# range the models train on draws a warning: raw counts, or a wrong constant.
RANGE_FACTOR = 4


def norm_value(cube: np.ndarray, mode: str, value: float | None = None) -> float:
    """The constant :func:`normalise` divides by."""
    if mode not in NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {mode!r}")
    if mode == "constant":
        if not value or value <= 0:
            raise ValueError(f"constant normalisation needs a positive value, got {value!r}")
        return float(value)
    c = float(np.max(cube))
    if not np.isfinite(c) or c <= 0:
        raise ValueError(f"cannot normalise by the max {c}: it must be finite and positive")
    return c


def normalise(cube: np.ndarray, mode: str, value: float | None = None) -> tuple[np.ndarray, float]:
    """Divide by the protocol's constant; returns (cube / c, c). Negative values are kept.

    ``global_max``: the max of this (already cropped) cube, as SSPSR does for Chikusei;
    ``constant``: ``value`` (Pavia 8000 as SSPSR suggests, CAVE 65535);
    ``per_file_max``: the max of each file, the same computation applied file by file.
    """
    c = norm_value(cube, mode, value)
    return np.divide(cube, c, dtype=np.float32), c  # one float32 result, no extra copy


def patch_grid(scene: str, top: int, left: int, height: int, width: int, size: int, stride: int) -> list[Window]:
    """All size x size windows with the given stride inside a region (row-major)."""
    if size > height or size > width:
        return []
    return [Window(scene, top + y, left + x, size, size)
            for y in range(0, height - size + 1, stride) for x in range(0, width - size + 1, stride)]


def split_validation(windows: list[Window], fraction: float, seed: int) -> tuple[list[Window], list[Window]]:
    """A seeded random ``fraction`` (rounded) of the windows to validation; order kept within each part."""
    n_val = int(round(fraction * len(windows)))
    chosen = set(np.random.default_rng(seed).permutation(len(windows))[:n_val].tolist())
    train = [w for i, w in enumerate(windows) if i not in chosen]
    val = [w for i, w in enumerate(windows) if i in chosen]
    return train, val


def default_patch(scale: int, size: int | None = None, stride: int | None = None) -> tuple[int, int]:
    return (size or 16 * scale), (stride or 8 * scale)


def top_strip(scene: str, height: int, width: int, scale: int, n_test: int, test_size: int,
              patch_size: int | None = None, stride: int | None = None, val_fraction: float = 0.1,
              seed: int = 0) -> dict[str, list[Window]]:
    """Test images side by side along the top; training patches from the rows below them."""
    if n_test * test_size > width or test_size >= height:
        raise ValueError(f"{n_test} test images of {test_size} do not fit a {height}x{width} scene")
    if test_size % scale:
        raise ValueError(f"test size {test_size} is not a multiple of the scale {scale}")
    size, step = default_patch(scale, patch_size, stride)
    test = [Window(scene, 0, i * test_size, test_size, test_size) for i in range(n_test)]
    patches = patch_grid(scene, test_size, 0, height - test_size, width, size, step)
    train, val = split_validation(patches, val_fraction, seed)
    return {"train": train, "validation": val, "test": test}


def crop_region(raw: np.ndarray, region: tuple[int, int, int, int], raw_shape: tuple[int, int] | None = None):
    """``raw[r0:r1, c0:c1]`` for ``region`` = (r0, r1, c0, c1), a view; ``raw_shape``: the (H, W)
    the raw scene must have (Chikusei's SSPSR crop of 2517 x 2335 to 2304 x 2048)."""
    if raw_shape is not None and raw.shape[:2] != tuple(raw_shape):
        raise ValueError(f"the raw scene must be {raw_shape[0]}x{raw_shape[1]}, got {raw.shape[0]}x{raw.shape[1]}")
    r0, r1, c0, c1 = region
    return raw[r0:r1, c0:c1]


def centre(w: Window, size: int, scale: int) -> Window:
    """The centre ``size`` x ``size`` crop of a window (``size`` a multiple of the scale, at most the
    window's shorter side; odd margins leave the extra row or column at the bottom and right)."""
    if size % scale:
        raise ValueError(f"a test crop of {size} is not a multiple of the scale {scale}")
    if size > min(w.height, w.width):
        raise ValueError(f"a test crop of {size} exceeds test image {w.id} ({w.height} x {w.width})")
    return Window(w.scene, w.top + (w.height - size) // 2, w.left + (w.width - size) // 2, size, size)


def whole(scene: str, height: int, width: int, scale: int) -> Window:
    """A whole scene as one test image, cropped to a multiple of the scale."""
    return Window(scene, 0, 0, height - height % scale, width - width % scale)


def scenes(shapes: dict[str, tuple[int, int]], scale: int, train: list[str], validation: list[str],
           test: list[str], patch_size: int | None = None, stride: int | None = None) -> dict[str, list[Window]]:
    """Scene-level splits (CAVE and any folder): patches from training scenes, the others whole."""
    named = set(train) | set(validation) | set(test)
    unknown = sorted(named - set(shapes))
    if unknown:
        raise ValueError(f"scene(s) {', '.join(unknown)} not found; available: {', '.join(sorted(shapes))}")
    overlap = (set(train) & set(test)) | (set(train) & set(validation)) | (set(validation) & set(test))
    if overlap:
        raise ValueError(f"scene(s) {', '.join(sorted(overlap))} are in more than one split")
    size, step = default_patch(scale, patch_size, stride)
    return {
        "train": [w for s in train for w in patch_grid(s, 0, 0, *shapes[s], size, step)],
        "validation": [whole(s, *shapes[s], scale) for s in validation],
        "test": [whole(s, *shapes[s], scale) for s in test],
    }


def folder(shapes: dict[str, tuple[int, int]], scale: int, test_fraction: float = 0.2,
           val_fraction: float = 0.1, seed: int = 0, **kwargs) -> dict[str, list[Window]]:
    """Any folder of cubes: a seeded shuffle of the scene names assigns test and validation scenes."""
    names = sorted(shapes)
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    n_test = max(1, int(round(test_fraction * len(names)))) if len(names) > 1 else 0
    n_val = int(round(val_fraction * len(names))) if len(names) > 2 else 0
    return scenes(shapes, scale, train=order[n_test + n_val:], validation=order[n_test:n_test + n_val],
                  test=order[:n_test], **kwargs)
