"""What every format module shares: the error type, the cube and its georeference, the row writer.

A :class:`Cube` is float32 (H, W, C) data plus what the file said about it: its stored dtype, band
wavelengths and, for GeoTIFF and ENVI, a :class:`Georef` (CRS, affine geotransform, nodata).
Writers (:class:`RowWriter`) take the cube block of rows by block of rows into a temporary file
beside the target and rename it into place on :meth:`RowWriter.commit`, so memory stays that of
one block and a target is never half-written.
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from lkca_jax.atomic import finish, remove, replace, temp_beside


class DataError(ValueError):
    """A file that cannot be used, with a one-line reason."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        super().__init__(f"{path}: {reason}")


def reason(err: Exception) -> str:
    """An exception's message on one line, at most 200 characters."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text[:200]


@dataclasses.dataclass(frozen=True)
class Georef:
    """Where a raster lies on the ground: ``crs`` as WKT (None: no CRS), ``transform`` the affine
    map from (column, row) pixel corners to map coordinates (GDAL's geotransform, as an
    ``affine.Affine``), ``nodata`` the value that marks pixels without data (None: none)."""

    crs: str | None
    transform: object
    nodata: float | None = None

    def scaled(self, scale: int) -> Georef:
        """The same origin and CRS with pixels ``scale`` times smaller (a super-resolved raster)."""
        from affine import Affine

        return dataclasses.replace(self, transform=self.transform @ Affine.scale(1 / scale))

    @property
    def pixel_size(self) -> tuple[float, float]:
        """(x, y) size of a pixel in map units."""
        t = self.transform
        return float(np.hypot(t.a, t.d)), float(np.hypot(t.b, t.e))

    @property
    def crs_name(self) -> str:
        """A short name for the CRS ('EPSG:32633' where it has one)."""
        if self.crs is None:
            return "none"
        from rasterio.crs import CRS

        crs = CRS.from_wkt(self.crs)
        code = crs.to_epsg()
        return f"EPSG:{code}" if code else (crs.to_dict().get("proj") or "custom")


@dataclasses.dataclass
class Cube:
    """A cube read from disk: float32 (H, W, C) data plus what the file said about it."""

    data: np.ndarray
    source_dtype: str
    wavelengths: np.ndarray | None = None
    georef: Georef | None = None
    scaled: int = 1  # the factor the reader multiplied the stored values by (8-bit band PNGs: 257)

    @property
    def nonfinite(self) -> int:  # counted in slabs: no full-size temporary for a large scene
        return sum(int(np.size(s) - np.count_nonzero(np.isfinite(s))) for s in np.array_split(self.data, 16))

    def nodata_mask(self) -> np.ndarray | None:
        """(H, W) bool, True where any band holds the georeference's nodata value; None without one."""
        nodata = None if self.georef is None else self.georef.nodata
        if nodata is None:
            return None
        if np.isnan(nodata):
            return np.isnan(self.data).any(-1)
        return (self.data == np.float32(nodata)).any(-1)


def as_cube(path, array: np.ndarray, wavelengths=None, georef: Georef | None = None) -> Cube:
    """Check an (H, W, C) (or (H, W)) numeric array and wrap it as a float32 :class:`Cube`."""
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or 0 in array.shape:
        raise DataError(path, f"expected an (H, W, C) image, found shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise DataError(path, f"data of type {array.dtype} is not a real numeric array")
    wl = None if wavelengths is None else np.asarray(wavelengths, np.float64).ravel()
    if wl is not None and wl.size != array.shape[2]:
        wl = None
    return Cube(np.ascontiguousarray(array, dtype=np.float32), str(array.dtype), wl, georef)


def largest_cube(path, arrays: dict) -> np.ndarray | None:
    """The single largest 3-D array, None if there is none; ties are an error asking for a key."""
    cubes = {k: v for k, v in arrays.items() if np.ndim(v) == 3}
    if not cubes:
        return None
    largest = max(v.size for v in cubes.values())
    top = sorted(k for k, v in cubes.items() if v.size == largest)
    if len(top) > 1:
        raise DataError(path, f"several equally large 3-D arrays ({', '.join(top)}); choose one with --key")
    return cubes[top[0]]


class RowWriter:
    """Writes an (H, W, C) cube block of rows by block of rows into a temporary file, renamed
    into place by :meth:`commit`; :meth:`abort` (or leaving a ``with`` block by an exception)
    removes it. A format module subclasses it with ``_open``, ``_write``, ``_finish`` and
    ``_close``; ``sidecars`` are extra temporary files renamed (or removed) with the main one."""

    def __init__(self, path, shape, dtype=np.float32, wavelengths=None, georef: Georef | None = None):
        self.path = pathlib.Path(path)
        self.shape, self.dtype = tuple(int(n) for n in shape), np.dtype(dtype)
        if len(self.shape) != 3:
            raise DataError(self.path, f"can only write (H, W, C) cubes, got shape {self.shape}")
        self.wavelengths = None if wavelengths is None else np.asarray(wavelengths, np.float64).ravel()
        self.georef = georef
        self.sidecars: dict[str, pathlib.Path] = {}  # temporary file -> its final name
        self.tmp = temp_beside(self.path)
        try:
            self._open()
        except BaseException as err:
            self.abort()
            if isinstance(err, OSError):  # EFBIG on the first byte, a folder that cannot be written
                raise self.failed(err) from None
            raise

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def write_rows(self, row: int, block: np.ndarray) -> None:
        """Rows ``row .. row + len(block)`` of the cube, as an (rows, W, C) array."""
        h, w, c = self.shape
        block = np.asarray(block)
        if block.ndim != 3 or block.shape[1:] != (w, c) or not 0 <= row <= row + len(block) <= h:
            raise ValueError(f"rows {row}..{row + len(block)} of shape {block.shape} do not fit a {self.shape} cube")
        try:
            self._write(row, block.astype(self.dtype.newbyteorder("<"), copy=False))
        except Exception as err:  # a short write, ENOSPC, EFBIG, GDAL's error: one line naming the target
            raise self.failed(err) from None

    def failed(self, err: Exception) -> DataError:
        """``err`` (or the library error it wraps: rasterio's 'Write failed') as one line naming
        the target."""
        err = err.__cause__ or err
        return DataError(self.path, f"cannot write it ({reason(err)}); the temporary file is removed"
                                    + (" and the existing file is kept" if self.path.exists() else ""))

    def commit(self) -> None:
        """Finish the file, flush it (and its sidecars, such as an ENVI header) to disk and rename
        them into place; any failure removes them and leaves the targets as they were."""
        try:
            self._finish()
            for tmp, final in ((self.tmp, self.path), *self.sidecars.items()):
                finish(tmp, final)
            replace(self.tmp, self.path)
            for tmp, final in self.sidecars.items():
                replace(tmp, final)
        except BaseException as err:
            self.abort()
            if isinstance(err, DataError) or not isinstance(err, Exception):
                raise
            raise self.failed(err) from None

    def abort(self) -> None:
        try:
            self._close()
        except Exception:  # already closed or broken: the files are removed anyway
            pass
        remove(self.tmp, *self.sidecars)

    def _open(self) -> None:
        raise NotImplementedError

    def _write(self, row: int, block: np.ndarray) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        self._close()

    def _close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if kind is None:
            self.commit()
        else:
            self.abort()
