"""TIFF and GeoTIFF: read and written through GDAL (rasterio), georeference and wavelengths kept.

One IFD holding every band (as GDAL and ENVI-to-TIFF tools write hyperspectral scenes) is read by
GDAL. A stack of one page per band (ImageJ stacks, and lkca-jax's own TIFFs before GeoTIFF
support) is something GDAL shows only as separate sub-datasets, so tifffile reads those pixels,
with the georeference of the first page. Writing: a band-interleaved GeoTIFF (BigTIFF when needed),
band metadata ``wavelength`` in nanometres.
"""

from __future__ import annotations

from lkca_jax.data.io import gdal
from lkca_jax.data.io.base import Cube, DataError, reason


def read(path) -> Cube:
    src = gdal.open_dataset(path, "TIFF")
    if not src.subdatasets:
        return gdal.read(path, src)
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            array, axes = series.asarray(), series.axes
    except Exception as err:
        src.close()
        raise DataError(path, f"not a readable TIFF ({reason(err)})") from None
    if array.ndim == 3 and axes.endswith("YX"):  # band-sequential pages: (C, H, W)
        array = array.transpose(1, 2, 0)
    return gdal.read(path, src, array)


class Writer(gdal.Writer):
    driver = "GTiff"
    options = {"interleave": "band", "BIGTIFF": "IF_SAFER"}
