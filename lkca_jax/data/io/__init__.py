"""Read and write hyperspectral cubes as float32 (H, W, C) arrays, one module per format.

=========================  ==========================================  =====================
format                     module                                      georeference
=========================  ==========================================  =====================
MATLAB ``.mat`` v5, v7.3   :mod:`~lkca_jax.data.io.mat`                no
ENVI (``.hdr`` + raw)      :mod:`~lkca_jax.data.io.envi` (GDAL)        ``map info``, nodata
TIFF / GeoTIFF             :mod:`~lkca_jax.data.io.tiff` (GDAL)        GeoTIFF tags, nodata
CAVE folders of band PNGs  :mod:`~lkca_jax.data.io.png` (read only)    no
NumPy ``.npy``/``.npz``    :mod:`~lkca_jax.data.io.npy`                no
=========================  ==========================================  =====================

Every failure is a :class:`DataError` whose message is one line naming the file and the problem.
Writers are atomic and streamed (:class:`~lkca_jax.data.io.base.RowWriter`).
"""

from __future__ import annotations

import pathlib

import numpy as np

from lkca_jax.data.io import envi, mat, npy, png, tiff
from lkca_jax.data.io.base import Cube, DataError, Georef, RowWriter

__all__ = ["Cube", "DataError", "Georef", "RowWriter", "open_writer", "read", "read_cube", "require_finite",
           "write_cube", "READ_SUFFIXES", "WRITE_SUFFIXES"]

READ_SUFFIXES = (".mat", ".npy", ".npz", ".tif", ".tiff", ".hdr")  # and folders of band PNGs
WRITERS = {".mat": mat.Writer, ".npy": npy.Writer, ".tif": tiff.Writer, ".tiff": tiff.Writer,
           ".hdr": envi.Writer, ".img": envi.Writer}
WRITE_SUFFIXES = tuple(WRITERS)
GEOREFERENCED = (tiff.Writer, envi.Writer)


def read_cube(path, key: str | None = None) -> Cube:
    """Read any supported file or PNG folder into a :class:`Cube`."""
    path = pathlib.Path(path)
    if not path.exists():
        raise DataError(path, "no such file or folder")
    if path.is_dir():
        return png.read(path)
    if path.stat().st_size == 0:
        raise DataError(path, "file is empty")
    suffix = path.suffix.lower()
    if suffix == ".mat":
        return mat.read(path, key)
    if suffix in (".npy", ".npz"):
        return npy.read(path, key)
    if suffix in (".tif", ".tiff"):
        return tiff.read(path)
    if envi.has_header(path):
        return envi.read(path)
    raise DataError(path, f"unknown format {suffix or '(no suffix)'}: expected .mat, .npy, .npz, .tif, "
                          ".hdr (ENVI) or a folder of band PNGs")


def read(path, key: str | None = None) -> np.ndarray:
    """The float32 (H, W, C) array of a file (see :func:`read_cube`)."""
    return read_cube(path, key).data


def require_finite(cube: Cube, path) -> None:
    """Refuse NaN or Inf values (training must not see them)."""
    if cube.nonfinite:
        raise DataError(path, f"{cube.nonfinite} NaN or Inf value(s)")


def writer_class(path) -> type[RowWriter]:
    suffix = pathlib.Path(path).suffix.lower()
    if suffix not in WRITERS:
        raise DataError(path, f"cannot write {suffix or '(no suffix)'}: use .mat, .npy, .tif or .hdr/.img (ENVI)")
    return WRITERS[suffix]


def open_writer(path, shape, dtype=np.float32, wavelengths=None, georef: Georef | None = None,
                **options) -> RowWriter:
    """A streamed, atomic writer of an (H, W, C) cube in the format ``path``'s suffix names.

    ``georef`` is written where the format holds one (GeoTIFF, ENVI); ``options``: ``key`` and
    ``mat_v73`` for ``.mat`` (v5 unless the data reach 2 GB or ``mat_v73=True``)."""
    cls = writer_class(path)
    options = {k: v for k, v in options.items() if v is not None}
    if cls is not mat.Writer and options:
        raise TypeError(f"{', '.join(options)}: only for .mat files")
    kwargs = {"georef": georef} if cls in GEOREFERENCED else {}
    return cls(path, shape, dtype, wavelengths, **kwargs, **options)


def write_cube(path, data: np.ndarray, wavelengths=None, georef: Georef | None = None, **options) -> None:
    """Write (H, W, C) ``data`` in the format the suffix names, atomically (see :func:`open_writer`)."""
    data = np.asarray(data)
    if data.ndim != 3:
        raise DataError(path, f"can only write (H, W, C) cubes, got shape {data.shape}")
    with open_writer(path, data.shape, data.dtype, wavelengths, georef, **options) as writer:
        writer.write_rows(0, data)
