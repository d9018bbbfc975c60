"""CAVE-style folders of one greyscale PNG per band, ``<name>_NN.png`` (16-bit, or 8-bit grey or RGB(A)
with R = G = B as some copies of CAVE store a scene), directly or in one sub-folder (the official
``<scene>_ms/<scene>_ms/`` layout). Every band is read on the 16-bit scale: an 8-bit scene is widened
(x 257), so that CAVE's division by 65535 puts it in 0..1 like the others. Read only: PNG bands hold
integers, and the outputs this project writes (super-resolved cubes) are floating point, which a band
PNG cannot hold."""

from __future__ import annotations

import pathlib
import re

import numpy as np

from lkca_jax.data.io.base import Cube, DataError, reason

# Pillow's modes of a grey band: 16-bit ('I;16*', or 'I' from older Pillow), 8-bit grey ('L', 'LA') or
# 8-bit colour with R = G = B ('RGB', 'RGBA': some copies of CAVE store a scene so).
GREY_MODES = ("I;16", "I;16B", "I;16L", "I", "L", "LA", "RGB", "RGBA")


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
    bands, depth = [], None
    for _, p in numbered:
        try:
            with Image.open(p) as im:
                mode = im.mode
                band = np.asarray(im)
        except Exception as err:
            raise DataError(p, f"not a readable PNG ({reason(err)})") from None
        if mode not in GREY_MODES:
            raise DataError(p, f"PNG of mode {mode}; expected one grey band (16-bit, or 8-bit grey or RGB(A) "
                               "with R = G = B)")
        if band.ndim == 3:  # 8-bit RGB(A) copies store grey as R = G = B (LA: grey and alpha)
            grey = band[..., :3] if band.shape[-1] >= 3 else band[..., :1]
            if not all(np.array_equal(grey[..., 0], grey[..., i]) for i in range(1, grey.shape[-1])):
                raise DataError(p, "colour PNG whose R, G and B differ; expected one grey band")
            band = grey[..., 0]
        bits = 8 if band.dtype == np.uint8 else 16  # older Pillow widens 16-bit grey ('I') to int32
        if depth is not None and bits != depth:
            raise DataError(p, f"{bits}-bit band among {depth}-bit ones; expected one bit depth per scene")
        if bands and band.shape != bands[0].shape:
            raise DataError(p, f"band size {band.shape} differs from the first band's {bands[0].shape}")
        depth = bits
        # One scale whatever the bit depth: an 8-bit band is widened to 16 bits (x 257, so 255 -> 65535),
        # and a scene divided by 65535 (CAVE's normalisation) lies in 0..1 either way.
        bands.append(band.astype(np.uint16) * np.uint16(257) if bits == 8 else band.astype(np.uint16))
    dtype = "uint16" if depth == 16 else "uint8 (widened to 16 bits, x 257)"
    return Cube(np.stack(bands, axis=-1).astype(np.float32), dtype)
