"""ENVI: a raw data file with a ``.hdr`` text header, read and written through GDAL (rasterio).

GDAL reads every interleave (BSQ, BIL, BIP), data type and byte order, and the header's ``map
info`` / ``coordinate system string`` (the georeference), ``data ignore value`` (nodata) and
``wavelength``. Our own code does two things GDAL does not: it finds the data file when given the
header (GDAL opens the data file only, and DFC 2018's Houston scene names it ``.pix``), and it
checks the data file's size against the header, since GDAL reads a truncated file with zeros where
the missing bytes are. Writing: BSQ ``.img`` beside its ``.hdr`` (``map info`` from the
georeference, ``wavelength`` in nanometres).
"""

from __future__ import annotations

import pathlib
import re

import numpy as np

from lkca_jax.atomic import track
from lkca_jax.data.io import gdal
from lkca_jax.data.io.base import Cube, DataError

DATA_SUFFIXES = ("", ".img", ".dat", ".raw", ".bsq", ".bil", ".bip", ".pix")  # .pix: DFC 2018 (Houston)
BYTES = {1: 1, 2: 2, 3: 4, 4: 4, 5: 8, 6: 8, 9: 16, 12: 2, 13: 4, 14: 8, 15: 8}  # ENVI data type -> bytes


def has_header(path: pathlib.Path) -> bool:
    return path.suffix.lower() == ".hdr" or path.with_suffix(".hdr").is_file() or \
        pathlib.Path(str(path) + ".hdr").is_file()


def pair(path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """(header, data file) for either of the two."""
    if path.suffix.lower() == ".hdr":
        for suffix in DATA_SUFFIXES:
            data = path.with_suffix(suffix)
            if data.is_file() and data != path:
                return path, data
        raise DataError(path, "ENVI header without its data file (same name, no suffix or .img/.dat/.raw/.pix)")
    for hdr in (path.with_suffix(".hdr"), pathlib.Path(str(path) + ".hdr")):
        if hdr.is_file():
            return hdr, path
    raise DataError(path, "no ENVI header (.hdr) beside this file")


def _expected_bytes(hdr: pathlib.Path) -> int | None:
    """Header offset plus the cube's bytes, as the header states them (None if it does not say)."""
    text = hdr.read_text(errors="replace")
    if not text.lstrip().upper().startswith("ENVI"):
        raise DataError(hdr, "not an ENVI header (first line is not 'ENVI')")
    fields = {m.group(1).strip().lower(): m.group(2).strip()
              for m in re.finditer(r"^\s*([^=\n{]+?)\s*=\s*([^\n{]*)$", text, re.M)}
    try:
        n = int(fields["samples"]) * int(fields["lines"]) * int(fields["bands"])
        return int(fields.get("header offset", "0")) + n * BYTES[int(fields["data type"])]
    except (KeyError, ValueError):
        return None  # GDAL names what is missing or malformed


def read(path: pathlib.Path) -> Cube:
    hdr, data = pair(path)
    expect, size = _expected_bytes(hdr), data.stat().st_size
    if expect is not None and size != expect:
        raise DataError(data, f"holds {size} bytes but the header {hdr.name} describes {expect}")
    return gdal.read(path, gdal.open_dataset(data, "ENVI file"))


class Writer(gdal.Writer):
    """``path`` may name the header or the data file; the data go to ``.img``."""

    driver = "ENVI"
    options = {"interleave": "bsq"}

    def __init__(self, path, shape, dtype=np.float32, wavelengths=None, georef=None):
        super().__init__(pathlib.Path(path).with_suffix(".img"), shape, dtype, wavelengths, georef)

    def _open(self) -> None:
        self.header = pathlib.Path(track(pathlib.Path(self.tmp).with_suffix(".hdr")))  # GDAL writes it
        self.sidecars[str(self.header)] = self.path.with_suffix(".hdr")
        super()._open()
        if self.wavelengths is not None:  # the header's own field, which ENVI programs read
            self.ds.update_tags(ns="ENVI", wavelength="{" + ", ".join(f"{x:g}" for x in self.wavelengths) + "}",
                                wavelength_units=gdal.WAVELENGTH_UNITS)

    def _finish(self) -> None:
        super()._finish()
        # GDAL describes the file by its (temporary) name; describe it by the name it will have.
        text = self.header.read_text()
        text = re.sub(r"description = \{[^}]*\}", f"description = {{{self.path.name}, written by lkca-jax}}", text)
        self.header.write_text(text)
