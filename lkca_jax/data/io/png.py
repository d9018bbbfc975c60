"""CAVE-style folders of one greyscale PNG per band, ``<name>_NN.png`` (16-bit, or 8-bit RGB(A) with
R = G = B as some copies of CAVE store a scene), directly or in one sub-folder (the official
``<scene>_ms/<scene>_ms/`` layout). Read only: PNG bands hold integers, and the outputs this
project writes (super-resolved cubes) are floating point, which a band PNG cannot hold."""

from __future__ import annotations

import pathlib
import re

import numpy as np

from lkca_jax.data.io.base import Cube, DataError, reason


def band_files(path: pathlib.Path) -> list[pathlib.Path]:
    pngs = sorted(path.glob("*.png"))
    if not pngs:
        subdirs = [d for d in path.iterdir() if d.is_dir()]
        if len(subdirs) == 1:  # the official layout: <scene>_ms/<scene>_ms/*.png
            pngs = sorted(subdirs[0].glob("*.png"))
    return pngs


def read(path: pathlib.Path) -> Cube:
    from PIL import Image

    pngs = band_files(path)
    if not pngs:
        raise DataError(path, "folder holds no band PNGs (expected <name>_NN.png, one per band)")
    numbered = []
    for p in pngs:
        m = re.search(r"(\d+)\.png$", p.name)
        if not m:
            raise DataError(p, "band PNG name does not end in a band number")
        numbered.append((int(m.group(1)), p))
    numbered.sort()
    numbers = [n for n, _ in numbered]
    missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
    if missing:
        raise DataError(path, f"band(s) {', '.join(map(str, missing))} missing between {numbers[0]} and {numbers[-1]}")
    bands, dtype = [], None
    for _, p in numbered:
        try:
            with Image.open(p) as im:
                band = np.asarray(im)
                if im.mode == "I" and band.dtype == np.int32:  # older Pillow widens 16-bit grey to int32
                    band = band.astype(np.uint16)  # a PNG sample has at most 16 bits
        except Exception as err:
            raise DataError(p, f"not a readable PNG ({reason(err)})") from None
        if band.ndim == 3:  # 8-bit RGB(A) copies store grey as R = G = B
            rgb = band[..., :3]
            if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
                raise DataError(p, "colour PNG whose R, G and B differ; expected one grey band")
            band = rgb[..., 0]
        if bands and band.shape != bands[0].shape:
            raise DataError(p, f"band size {band.shape} differs from the first band's {bands[0].shape}")
        dtype = band.dtype
        bands.append(band)
    return Cube(np.stack(bands, axis=-1).astype(np.float32), str(dtype))
