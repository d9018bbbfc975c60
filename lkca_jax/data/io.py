"""Read and write hyperspectral cubes as float32 (H, W, C) arrays.

Formats: MATLAB ``.mat`` v5 (scipy) and v7.3 (HDF5, transposed to MATLAB's
order), CAVE-style folders of one PNG per band (16-bit greyscale or 8-bit RGBA
with R = G = B), ``.npy``/``.npz``, TIFF/GeoTIFF (tifffile) and ENVI
(``.hdr`` + raw data, BSQ/BIL/BIP, any ENVI data type and byte order).

Every failure is a :class:`DataError` whose message is one line naming the
file and the problem. Writers are atomic: a temporary file beside the target,
then a rename, so an existing file is never left half-written.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import tempfile

import numpy as np

MAT_V73_THRESHOLD = 2 ** 31 - 1  # MATLAB v5 cannot hold variables of 2 GB or more
ENVI_DTYPES = {1: "u1", 2: "i2", 3: "i4", 4: "f4", 5: "f8", 12: "u2", 13: "u4", 14: "i8", 15: "u8"}
ENVI_CODES = {np.dtype(v).str[1:]: k for k, v in ENVI_DTYPES.items()}
ENVI_DATA_SUFFIXES = ("", ".img", ".dat", ".raw", ".bsq", ".bil", ".bip", ".pix")  # .pix: DFC 2018 (Houston)


class DataError(ValueError):
    """A file that cannot be used, with a one-line reason."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        super().__init__(f"{path}: {reason}")


@dataclasses.dataclass
class Cube:
    """A cube read from disk: float32 (H, W, C) data plus what the file said about it."""

    data: np.ndarray
    source_dtype: str
    wavelengths: np.ndarray | None = None

    @property
    def nonfinite(self) -> int:  # counted in slabs: no full-size temporary for a large scene
        return sum(int(np.size(s) - np.count_nonzero(np.isfinite(s))) for s in np.array_split(self.data, 16))


def _float32(path, array: np.ndarray) -> np.ndarray:
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise DataError(path, f"data of type {array.dtype} is not a real numeric array")
    return np.ascontiguousarray(array, dtype=np.float32)


def _as_cube(path, array: np.ndarray, wavelengths=None) -> Cube:
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or 0 in array.shape:
        raise DataError(path, f"expected an (H, W, C) image, found shape {array.shape}")
    wl = None if wavelengths is None else np.asarray(wavelengths, np.float64).ravel()
    if wl is not None and wl.size != array.shape[2]:
        wl = None
    return Cube(_float32(path, array), str(array.dtype), wl)


# ---------------------------------------------------------------- MATLAB


def _mat_variables(path, key: str | None = None) -> dict:
    """{name: array} of a .mat file; v7.3 (HDF5) arrays are transposed to MATLAB's order. With a
    ``key``, other large v7.3 arrays are not read (a Chikusei file is GBs)."""
    import scipy.io

    try:
        return {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    except NotImplementedError:  # v7.3: HDF5
        pass
    except Exception as err:  # scipy raises many types for damaged files
        raise DataError(path, f"not a readable MATLAB file ({_reason(err)})") from None
    import h5py

    try:
        found = {}

        def collect(name, obj):  # returns None, so h5py visits every item
            if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "iuf":
                if key is None or name == key or obj.size < 2 ** 20:
                    found[name] = obj[()].T

        with h5py.File(path, "r") as f:
            f.visititems(collect)
        return found
    except OSError as err:
        raise DataError(path, f"not a readable MATLAB v7.3 file ({_reason(err)})") from None


def _read_mat(path, key: str | None) -> Cube:
    variables = _mat_variables(path, key)
    numeric = {k: np.asarray(v) for k, v in variables.items()
               if isinstance(v, np.ndarray) and v.dtype.kind in "iuf" and v.size > 1}
    wavelengths = next((numeric[k] for k in ("wavelengths", "wavelength", "wl") if k in numeric), None)
    if key is not None:
        if key not in variables:
            raise DataError(path, f"no variable {key!r}; variables: {', '.join(sorted(variables)) or 'none'}")
        if key not in numeric:
            raise DataError(path, f"variable {key!r} is not a numeric array")
        return _as_cube(path, _maybe_pixels_matrix(path, numeric[key], variables), wavelengths)
    cube = _largest_cube(path, numeric)
    if cube is not None:
        return _as_cube(path, cube, wavelengths)
    for v in sorted(numeric.values(), key=lambda a: -a.size):
        cube = _maybe_pixels_matrix(path, v, variables)
        if cube.ndim == 3:
            return _as_cube(path, cube, wavelengths)
    listing = ", ".join(f"{k} {tuple(np.shape(v))}" for k, v in sorted(variables.items())) or "none"
    raise DataError(path, f"no 3-D numeric image, nor a bands-by-pixels matrix with nRow/nCol; variables: {listing}")


def _largest_cube(path, arrays: dict) -> np.ndarray | None:
    """The single largest 3-D array, None if there is none; ties are an error asking for a key."""
    cubes = {k: v for k, v in arrays.items() if np.ndim(v) == 3}
    if not cubes:
        return None
    largest = max(v.size for v in cubes.values())
    top = sorted(k for k, v in cubes.items() if v.size == largest)
    if len(top) > 1:
        raise DataError(path, f"several equally large 3-D arrays ({', '.join(top)}); choose one with --key")
    return cubes[top[0]]


def _maybe_pixels_matrix(path, array: np.ndarray, variables: dict) -> np.ndarray:
    """A 2-D bands-by-pixels matrix (as samson.mat's V) reshaped with nRow/nCol, column-major."""
    if array.ndim != 2 or "nRow" not in variables or "nCol" not in variables:
        return array
    rows, cols = int(np.ravel(variables["nRow"])[0]), int(np.ravel(variables["nCol"])[0])
    if array.shape[1] == rows * cols:
        return array.T.reshape(rows, cols, array.shape[0], order="F")
    if array.shape[0] == rows * cols:
        return array.reshape(rows, cols, array.shape[1], order="F")
    raise DataError(path, f"matrix {array.shape} does not have nRow*nCol = {rows}*{cols} pixels")


# ---------------------------------------------------------------- PNG folders (CAVE)


def _band_pngs(path: pathlib.Path) -> list[pathlib.Path]:
    pngs = sorted(path.glob("*.png"))
    if not pngs:
        subdirs = [d for d in path.iterdir() if d.is_dir()]
        if len(subdirs) == 1:  # the official layout: <scene>_ms/<scene>_ms/*.png
            pngs = sorted(subdirs[0].glob("*.png"))
    return pngs


def _read_png_folder(path: pathlib.Path) -> Cube:
    from PIL import Image

    pngs = _band_pngs(path)
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
        except Exception as err:
            raise DataError(p, f"not a readable PNG ({_reason(err)})") from None
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


# ---------------------------------------------------------------- ENVI


def _parse_envi_header(hdr: pathlib.Path) -> dict:
    text = hdr.read_text(errors="replace")
    if not text.lstrip().upper().startswith("ENVI"):
        raise DataError(hdr, "not an ENVI header (first line is not 'ENVI')")
    fields = {}
    for m in re.finditer(r"^\s*([^=\n]+?)\s*=\s*(\{[^}]*\}|[^\n]*)", text, re.M):
        fields[m.group(1).strip().lower()] = m.group(2).strip()
    for need in ("samples", "lines", "bands", "data type"):
        if need not in fields:
            raise DataError(hdr, f"ENVI header lacks '{need}'")
    return fields


def _envi_pair(path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    if path.suffix.lower() == ".hdr":
        hdr = path
        for suffix in ENVI_DATA_SUFFIXES:
            data = path.with_suffix(suffix)
            if data.is_file() and data != hdr:
                return hdr, data
        raise DataError(path, "ENVI header without its data file (same name, no suffix or .img/.dat/.raw/.pix)")
    for hdr in (path.with_suffix(".hdr"), pathlib.Path(str(path) + ".hdr")):
        if hdr.is_file():
            return hdr, path
    raise DataError(path, "no ENVI header (.hdr) beside this file")


def _read_envi(path: pathlib.Path) -> Cube:
    hdr, data_file = _envi_pair(path)
    f = _parse_envi_header(hdr)
    try:
        samples, lines, bands = int(f["samples"]), int(f["lines"]), int(f["bands"])
        code = int(f["data type"])
        offset = int(f.get("header offset", "0"))
        big = int(f.get("byte order", "0")) == 1
    except ValueError as err:
        raise DataError(hdr, f"malformed ENVI header field ({err})") from None
    if code not in ENVI_DTYPES:
        raise DataError(hdr, f"unsupported ENVI data type {code}")
    dtype = np.dtype(ENVI_DTYPES[code]).newbyteorder(">" if big else "<")
    expect = offset + samples * lines * bands * dtype.itemsize
    size = data_file.stat().st_size
    if size != expect:
        raise DataError(data_file, f"holds {size} bytes but the header's {lines}x{samples}x{bands} "
                                   f"{dtype.name} cube needs {expect}")
    raw = np.fromfile(data_file, dtype=dtype, offset=offset)
    interleave = f.get("interleave", "bsq").lower()
    if interleave == "bsq":
        cube = raw.reshape(bands, lines, samples).transpose(1, 2, 0)
    elif interleave == "bil":
        cube = raw.reshape(lines, bands, samples).transpose(0, 2, 1)
    elif interleave == "bip":
        cube = raw.reshape(lines, samples, bands)
    else:
        raise DataError(hdr, f"unknown ENVI interleave {interleave!r}")
    wavelengths = None
    if "wavelength" in f:
        try:
            wavelengths = [float(v) for v in f["wavelength"].strip("{}").split(",") if v.strip()]
        except ValueError:
            wavelengths = None
    return _as_cube(path, cube.astype(dtype.newbyteorder("=")), wavelengths)


# ---------------------------------------------------------------- TIFF, NumPy


def _read_tiff(path) -> Cube:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            array, axes = series.asarray(), series.axes
    except Exception as err:
        raise DataError(path, f"not a readable TIFF ({_reason(err)})") from None
    if array.ndim == 3 and axes.endswith("YX"):  # band-sequential pages: (C, H, W)
        array = array.transpose(1, 2, 0)
    return _as_cube(path, array)


def _read_numpy(path, key: str | None) -> Cube:
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as err:
        raise DataError(path, f"not a readable NumPy file ({_reason(err)})") from None
    if isinstance(loaded, np.ndarray):
        return _as_cube(path, loaded)
    with loaded:
        arrays = {k: loaded[k] for k in loaded.files}
    if key is not None:
        if key not in arrays:
            raise DataError(path, f"no array {key!r}; arrays: {', '.join(sorted(arrays))}")
        return _as_cube(path, arrays[key])
    cube = _largest_cube(path, arrays)
    if cube is None:
        raise DataError(path, f"no 3-D array; arrays: {', '.join(sorted(arrays)) or 'none'}")
    return _as_cube(path, cube, arrays.get("wavelengths"))


def _reason(err: Exception) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text[:200]


# ---------------------------------------------------------------- public API


def read_cube(path, key: str | None = None) -> Cube:
    """Read any supported file or PNG folder into a :class:`Cube`."""
    path = pathlib.Path(path)
    if not path.exists():
        raise DataError(path, "no such file or folder")
    if path.is_dir():
        return _read_png_folder(path)
    if path.stat().st_size == 0:
        raise DataError(path, "file is empty")
    suffix = path.suffix.lower()
    if suffix == ".mat":
        return _read_mat(path, key)
    if suffix in (".npy", ".npz"):
        return _read_numpy(path, key)
    if suffix in (".tif", ".tiff"):
        return _read_tiff(path)
    if suffix == ".hdr" or path.with_suffix(".hdr").is_file() or pathlib.Path(str(path) + ".hdr").is_file():
        return _read_envi(path)
    raise DataError(path, f"unknown format {suffix or '(no suffix)'}: expected .mat, .npy, .npz, .tif, "
                          ".hdr (ENVI) or a folder of band PNGs")


def read(path, key: str | None = None) -> np.ndarray:
    """The float32 (H, W, C) array of a file (see :func:`read_cube`)."""
    return read_cube(path, key).data


def require_finite(cube: Cube, path) -> None:
    """Refuse NaN or Inf values (training must not see them)."""
    if cube.nonfinite:
        raise DataError(path, f"{cube.nonfinite} NaN or Inf value(s)")


def atomic_write(path, write) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


MAT_HEADER = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created by: lkca-jax HDF5 schema 1.00 ."
MAT_CLASSES = {"float32": "single", "float64": "double"}


class CubeWriter:
    """Writes an (H, W, C) cube block of rows by block of rows, in the format the suffix names.

    Everything goes to temporary files beside the target that :meth:`commit` renames into place
    (:meth:`abort`, or leaving a ``with`` block by an exception, removes them), so a target is never
    half-written. Memory stays that of one block: ``.npy``, TIFF and ENVI rows are written at their
    offsets in the file, ``.mat`` v7.3 through HDF5 hyperslabs. The exception is ``.mat`` v5, which
    SciPy writes whole: it is chosen only below 2 GB (MATLAB v5's limit), larger ones are v7.3.

    Layouts: ``.npy`` (H, W, C); TIFF band-sequential pages, axes QYX; ENVI BSQ ``.img`` with a
    ``.hdr`` (wavelengths kept); ``.mat`` variable ``key`` (plus ``wavelengths``), v7.3 stored
    transposed as MATLAB does.
    """

    def __init__(self, path, shape, dtype=np.float32, wavelengths=None, key: str = "data",
                 mat_v73: bool | None = None):
        self.path = pathlib.Path(path)
        self.shape, self.dtype = tuple(int(n) for n in shape), np.dtype(dtype)
        if len(self.shape) != 3:
            raise DataError(self.path, f"can only write (H, W, C) cubes, got shape {self.shape}")
        self.wavelengths = None if wavelengths is None else np.asarray(wavelengths, np.float64).ravel()
        suffix = self.path.suffix.lower()
        nbytes = int(np.prod(self.shape)) * self.dtype.itemsize
        if suffix == ".mat":
            self.kind = "mat73" if mat_v73 or (mat_v73 is None and nbytes >= MAT_V73_THRESHOLD) else "mat5"
        elif suffix in (".npy", ".tif", ".tiff"):
            self.kind = suffix.lstrip(".")[:3]
        elif suffix in (".hdr", ".img"):
            self.kind = "envi"
            if self.dtype.str[1:] not in ENVI_CODES:
                self.dtype = np.dtype(np.float32)
            self.path = self.path.with_suffix(".img")
        else:
            raise DataError(self.path, f"cannot write {suffix or '(no suffix)'}: use .mat, .npy, .tif or .hdr/.img "
                                       "(ENVI)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=self.path.suffix, dir=self.path.parent)
        os.close(fd)
        try:
            self._open(key, nbytes)
        except BaseException:
            self.abort()
            raise

    def _open(self, key: str, nbytes: int) -> None:
        h, w, c = self.shape
        self.file = self.h5 = self.array = None
        self.layout, offset = "CHW", 0
        if self.kind == "mat5":
            self.array = np.zeros(self.shape, self.dtype)
            self.key = key
        elif self.kind == "mat73":
            import h5py

            self.h5 = h5py.File(self.tmp, "w", userblock_size=512)
            self.dataset = self._mat_dataset(key, (c, w, h), self.dtype)
            if self.wavelengths is not None:
                self._mat_dataset("wavelengths", (1, c), np.float64)[...] = self.wavelengths[None]
        elif self.kind == "npy":
            with open(self.tmp, "wb") as f:
                np.lib.format.write_array_header_2_0(
                    f, {"descr": np.lib.format.dtype_to_descr(self.dtype.newbyteorder("<")), "fortran_order": False,
                        "shape": self.shape})
                offset = f.tell()
            self.layout = "HWC"
        elif self.kind == "tif":
            import tifffile

            tifffile.imwrite(self.tmp, shape=(c, h, w), dtype=self.dtype.newbyteorder("<"), photometric="minisblack",
                             metadata={"axes": "QYX"}, bigtiff=nbytes > 2 ** 32 - 2 ** 25)
            with tifffile.TiffFile(self.tmp) as tif:
                offset = tif.series[0].dataoffset
        if self.kind in ("npy", "tif", "envi"):
            self.file = open(self.tmp, "r+b")
            self.file.truncate(offset + nbytes)
            self.offset = offset

    def _mat_dataset(self, name: str, shape, dtype):
        ds = self.h5.create_dataset(name, shape=shape, dtype=dtype)
        ds.attrs["MATLAB_class"] = np.bytes_(MAT_CLASSES.get(np.dtype(dtype).name, np.dtype(dtype).name))
        return ds

    def write_rows(self, row: int, block: np.ndarray) -> None:
        """Rows ``row .. row + len(block)`` of the cube, as an (rows, W, C) array."""
        h, w, c = self.shape
        block = np.asarray(block)
        if block.ndim != 3 or block.shape[1:] != (w, c) or not 0 <= row <= row + len(block) <= h:
            raise ValueError(f"rows {row}..{row + len(block)} of shape {block.shape} do not fit a {self.shape} cube")
        block = block.astype(self.dtype.newbyteorder("<"), copy=False)
        if self.array is not None:
            self.array[row:row + len(block)] = block
        elif self.h5 is not None:
            self.dataset[:, :, row:row + len(block)] = block.T
        elif self.layout == "HWC":
            self.file.seek(self.offset + row * w * c * self.dtype.itemsize)
            self.file.write(np.ascontiguousarray(block).tobytes())
        else:  # band-sequential: one run of rows per band
            for band in range(c):
                self.file.seek(self.offset + (band * h + row) * w * self.dtype.itemsize)
                self.file.write(np.ascontiguousarray(block[:, :, band]).tobytes())

    def commit(self) -> None:
        """Finish the file and rename it into place (for ENVI, the data then the header)."""
        try:
            if self.kind == "mat5":
                import scipy.io

                extra = {} if self.wavelengths is None else {"wavelengths": self.wavelengths.reshape(-1, 1)}
                scipy.io.savemat(self.tmp, {self.key: self.array, **extra}, do_compression=False)
            elif self.h5 is not None:
                self.h5.close()
                with open(self.tmp, "r+b") as fh:  # MATLAB's 128-byte header in HDF5's user block
                    fh.write(MAT_HEADER.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM")
            else:
                self.file.close()
            os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        if self.kind == "envi":
            self._write_envi_header()

    def _write_envi_header(self) -> None:
        h, w, c = self.shape
        header = ["ENVI", f"samples = {w}", f"lines = {h}", f"bands = {c}", "header offset = 0",
                  "file type = ENVI Standard", f"data type = {ENVI_CODES[self.dtype.str[1:]]}", "interleave = bsq",
                  "byte order = 0"]
        if self.wavelengths is not None:
            header.append("wavelength = {" + ", ".join(f"{x:g}" for x in self.wavelengths) + "}")
        atomic_write(self.path.with_suffix(".hdr"), lambda tmp: pathlib.Path(tmp).write_text("\n".join(header) + "\n"))

    def abort(self) -> None:
        for handle in (getattr(self, "file", None), getattr(self, "h5", None)):
            if handle is not None:
                try:
                    handle.close()
                except Exception:  # already closed or broken: the file is removed anyway
                    pass
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if kind is None:
            self.commit()
        else:
            self.abort()


def write_cube(path, data: np.ndarray, wavelengths=None, key: str = "data", mat_v73: bool | None = None) -> None:
    """Write (H, W, C) ``data`` in the format the suffix names, atomically (see :class:`CubeWriter`).

    ``.mat`` files are v5 unless the data reach 2 GB (or ``mat_v73=True``), then v7.3 (HDF5)."""
    data = np.asarray(data)
    if data.ndim != 3:
        raise DataError(path, f"can only write (H, W, C) cubes, got shape {data.shape}")
    with CubeWriter(path, data.shape, data.dtype, wavelengths, key, mat_v73) as writer:
        writer.write_rows(0, data)
