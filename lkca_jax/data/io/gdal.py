"""GDAL through rasterio: the reading and writing that the GeoTIFF and ENVI modules share.

Reading keeps the georeference (CRS, geotransform, nodata) and band wavelengths (GDAL exposes an
ENVI header's ``wavelength`` and a GeoTIFF's band metadata the same way). Writing goes row block by
row block through GDAL windows into a temporary file, so memory stays that of one block; GDAL's
``.aux.xml`` side files are switched off, so nothing but the format's own files is written.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import warnings

import numpy as np

from lkca_jax.data.io.base import Cube, DataError, Georef, RowWriter, as_cube, reason

WAVELENGTH_UNITS = "Nanometers"


@contextlib.contextmanager
def _quiet():
    """rasterio warns on every raster without a geotransform; a hyperspectral crop often has none."""
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield


def open_dataset(path, what: str):
    """An open rasterio dataset, or a :class:`DataError` naming ``path`` and ``what`` it should be."""
    import rasterio

    try:
        with _quiet():
            return rasterio.open(path)
    except rasterio.errors.RasterioIOError as err:
        raise DataError(path, f"not a readable {what} ({reason(err)})") from None


def georef_of(src) -> Georef | None:
    """The dataset's georeference, None when it has no CRS, no geotransform and no nodata."""
    if src.crs is None and src.transform.is_identity and src.nodata is None:
        return None
    return Georef(src.crs.to_wkt() if src.crs else None, src.transform, src.nodata)


def wavelengths_of(src) -> np.ndarray | None:
    try:
        return np.array([float(src.tags(b)["wavelength"]) for b in range(1, src.count + 1)])
    except (KeyError, ValueError):
        return None


def read(path, src, data: np.ndarray | None = None) -> Cube:
    """The cube of an open dataset ``src`` (closed here); ``data``: pixels read otherwise, (H, W, C)."""
    with src:
        if data is None:
            try:
                data = src.read().transpose(1, 2, 0)
            except Exception as err:
                raise DataError(path, f"unreadable pixels ({reason(err)})") from None
        return as_cube(path, data, wavelengths_of(src), georef_of(src))


class _Errors(logging.Handler):
    """GDAL's errors while a file is written. rasterio raises some of them, and reports the rest
    (a raw ENVI band that could not be written, a failed flush at close) only to its logger, at
    INFO, and libtiff's at ERROR: this collects them all there, and shows none of them (the write
    fails with the first)."""

    LOGGER = "rasterio"
    active: list = []  # the collectors attached now (writers may overlap); the logger's own settings

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []
        self.logger = logging.getLogger(self.LOGGER)
        if not _Errors.active:
            _Errors.saved = self.logger.level, self.logger.propagate
            self.logger.setLevel(logging.INFO)
            self.logger.propagate = False
        _Errors.active.append(self)
        self.logger.addHandler(self)

    def emit(self, record) -> None:
        text = record.getMessage()
        if record.levelno >= logging.ERROR or text.startswith("GDAL signalled an error"):
            quoted = re.search(r"msg='(.*)'", text)  # 'GDAL signalled an error: err_no=3, msg=...'
            self.messages.append(quoted.group(1) if quoted else text)

    def detach(self) -> None:
        if self not in _Errors.active:
            return
        self.logger.removeHandler(self)
        _Errors.active.remove(self)
        if not _Errors.active:
            self.logger.setLevel(_Errors.saved[0])
            self.logger.propagate = _Errors.saved[1]


class Writer(RowWriter):
    """A GDAL raster of ``driver`` (with creation ``options``), georeferenced when ``georef`` is
    given, band ``wavelength`` metadata when wavelengths are. Any error GDAL signals while writing,
    and a data file shorter than the uncompressed cube, fail the write."""

    driver = ""
    options: dict = {}

    def _open(self) -> None:
        import rasterio

        self.errors = _Errors()

        h, w, c = self.shape
        profile = dict(driver=self.driver, width=w, height=h, count=c, dtype=self.dtype.name, **self.options)
        if self.georef is not None:
            profile.update(crs=self.georef.crs, transform=self.georef.transform, nodata=self.georef.nodata)
        self.env = rasterio.Env(GDAL_PAM_ENABLED="NO", CPL_LOG=os.devnull)  # GDAL prints nothing itself
        self.env.__enter__()
        with _quiet():
            self.ds = rasterio.open(self.tmp, "w", **profile)
        if self.wavelengths is not None:
            for b, wl in enumerate(self.wavelengths, 1):
                self.ds.update_tags(b, wavelength=f"{wl:g}", wavelength_units=WAVELENGTH_UNITS)

    def _write(self, row: int, block: np.ndarray) -> None:
        from rasterio.windows import Window

        self.ds.write(block.transpose(2, 0, 1), window=Window(0, row, self.shape[1], len(block)))

    def _finish(self) -> None:
        self._close()
        if self.errors.messages:
            raise OSError(f"GDAL: {self.errors.messages[0].strip()}")
        size = os.path.getsize(self.tmp)
        if size < self.nbytes:  # uncompressed: at least every pixel's bytes
            raise OSError(f"short write, {size} of at least {self.nbytes} bytes")

    def _close(self) -> None:
        ds, env, errors = getattr(self, "ds", None), getattr(self, "env", None), getattr(self, "errors", None)
        self.ds = self.env = None
        try:
            if ds is not None:
                ds.close()
        finally:
            if env is not None:
                env.__exit__(None, None, None)
            if errors is not None:
                errors.detach()
