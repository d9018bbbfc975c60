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

COLOUR_TYPES = {0: "grey", 2: "RGB", 3: "palette", 4: "grey + alpha", 6: "RGBA"}  # the PNG header's codes
WIDEN = 257  # an 8-bit band's factor to the 16-bit scale: 255 -> 65535


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
        bits = _bit_depth(p)
        try:
            with Image.open(p) as im:
                band = np.asarray(im)
        except Exception as err:
            raise DataError(p, f"not a readable PNG ({reason(err)})") from None
        if band.ndim == 3:  # 8-bit RGB(A) copies store grey as R = G = B (LA: grey and alpha)
            grey = band[..., :3] if band.shape[-1] >= 3 else band[..., :1]
            if not all(np.array_equal(grey[..., 0], grey[..., i]) for i in range(1, grey.shape[-1])):
                raise DataError(p, "colour PNG whose R, G and B differ; expected one grey band")
            band = grey[..., 0]
        if depth is not None and bits != depth:
            raise DataError(p, f"{bits}-bit band among {depth}-bit ones; expected one bit depth per scene")
        if bands and band.shape != bands[0].shape:
            raise DataError(p, f"band size {band.shape} differs from the first band's {bands[0].shape}")
        depth = bits
        bands.append(band.astype(np.uint16))  # older Pillow gives 16-bit grey ('I') as int32
    # One scale whatever the bit depth: an 8-bit scene is widened to 16 bits (x 257, so 255 -> 65535),
    # and divided by 65535 (CAVE's normalisation) it lies in 0..1 as a 16-bit one does.
    cube, factor = np.stack(bands, axis=-1).astype(np.float32), WIDEN if depth == 8 else 1
    cube *= np.float32(factor)
    return Cube(cube, f"uint{depth}", scaled=factor)


def _bit_depth(p: pathlib.Path) -> int:
    """8 or 16, from the PNG header (Pillow reads 16-bit colour PNGs as 8-bit, silently dropping the
    low byte, so its mode cannot tell); a band kind this reader cannot take is refused."""
    try:
        with open(p, "rb") as f:
            head = f.read(26)
    except OSError as err:
        raise DataError(p, f"cannot read ({reason(err)})") from None
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise DataError(p, "not a readable PNG (no PNG header)")
    bits, colour = head[24], head[25]
    kind = COLOUR_TYPES.get(colour, f"colour type {colour}")
    if (colour == 0 and bits in (8, 16)) or (colour in (2, 4, 6) and bits == 8):
        return bits
    raise DataError(p, f"{bits}-bit {kind} PNG; expected one grey band (8- or 16-bit grey, or 8-bit RGB(A) "
                       "with R = G = B)")
