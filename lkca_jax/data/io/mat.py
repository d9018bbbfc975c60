"""MATLAB ``.mat`` files: v5 through SciPy, v7.3 (HDF5) through h5py, transposed to MATLAB's order.

Reading finds the cube by ``key``, or as the single largest 3-D numeric variable, or as a
bands-by-pixels matrix with ``nRow``/``nCol`` (as samson.mat's ``V``); a ``wavelengths`` (or
``wavelength``, ``wl``) vector is kept. MAT files hold no georeference.

Writing: v7.3 is streamed through HDF5 hyperslabs; v5, which SciPy writes whole, is used only below
2 GB (MATLAB v5's limit on a variable), larger cubes are v7.3.
"""

from __future__ import annotations

import numpy as np

from lkca_jax.data.io.base import Cube, DataError, RowWriter, as_cube, largest_cube, reason

V73_THRESHOLD = 2 ** 31 - 1  # MATLAB v5 cannot hold variables of 2 GB or more
HEADER = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created by: lkca-jax HDF5 schema 1.00 ."
CLASSES = {"float32": "single", "float64": "double"}


def _variables(path, key: str | None = None) -> dict:
    """{name: array} of a .mat file; v7.3 (HDF5) arrays are transposed to MATLAB's order. With a
    ``key``, other large v7.3 arrays are not read (a Chikusei file is GBs)."""
    import scipy.io

    try:
        return {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    except NotImplementedError:  # v7.3: HDF5
        pass
    except Exception as err:  # scipy raises many types for damaged files
        raise DataError(path, f"not a readable MATLAB file ({reason(err)})") from None
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
        raise DataError(path, f"not a readable MATLAB v7.3 file ({reason(err)})") from None


def _pixels_matrix(path, array: np.ndarray, variables: dict) -> np.ndarray:
    """A 2-D bands-by-pixels matrix (as samson.mat's V) reshaped with nRow/nCol, column-major."""
    if array.ndim != 2 or "nRow" not in variables or "nCol" not in variables:
        return array
    rows, cols = int(np.ravel(variables["nRow"])[0]), int(np.ravel(variables["nCol"])[0])
    if array.shape[1] == rows * cols:
        return array.T.reshape(rows, cols, array.shape[0], order="F")
    if array.shape[0] == rows * cols:
        return array.reshape(rows, cols, array.shape[1], order="F")
    raise DataError(path, f"matrix {array.shape} does not have nRow*nCol = {rows}*{cols} pixels")


def read(path, key: str | None = None) -> Cube:
    variables = _variables(path, key)
    numeric = {k: np.asarray(v) for k, v in variables.items()
               if isinstance(v, np.ndarray) and v.dtype.kind in "iuf" and v.size > 1}
    wavelengths = next((numeric[k] for k in ("wavelengths", "wavelength", "wl") if k in numeric), None)
    if key is not None:
        if key not in variables:
            raise DataError(path, f"no variable {key!r}; variables: {', '.join(sorted(variables)) or 'none'}")
        if key not in numeric:
            raise DataError(path, f"variable {key!r} is not a numeric array")
        return as_cube(path, _pixels_matrix(path, numeric[key], variables), wavelengths)
    cube = largest_cube(path, numeric)
    if cube is not None:
        return as_cube(path, cube, wavelengths)
    for v in sorted(numeric.values(), key=lambda a: -a.size):
        cube = _pixels_matrix(path, v, variables)
        if cube.ndim == 3:
            return as_cube(path, cube, wavelengths)
    listing = ", ".join(f"{k} {tuple(np.shape(v))}" for k, v in sorted(variables.items())) or "none"
    raise DataError(path, f"no 3-D numeric image, nor a bands-by-pixels matrix with nRow/nCol; variables: {listing}")


class Writer(RowWriter):
    """Variable ``key`` (plus ``wavelengths``); v7.3 stored transposed, as MATLAB does."""

    def __init__(self, path, shape, dtype=np.float32, wavelengths=None, georef=None, key: str = "data",
                 mat_v73: bool | None = None):
        self.key, self.mat_v73 = key, mat_v73
        super().__init__(path, shape, dtype, wavelengths, georef)

    def _open(self) -> None:
        h, w, c = self.shape
        self.v73 = bool(self.mat_v73 or (self.mat_v73 is None and self.nbytes >= V73_THRESHOLD))
        self.array = self.h5 = None
        if not self.v73:
            self.array = np.zeros(self.shape, self.dtype)
            return
        import h5py

        self.h5 = h5py.File(self.tmp, "w", userblock_size=512)
        self.dataset = self._dataset(self.key, (c, w, h), self.dtype)
        if self.wavelengths is not None:
            self._dataset("wavelengths", (1, c), np.float64)[...] = self.wavelengths[None]

    def _dataset(self, name: str, shape, dtype):
        ds = self.h5.create_dataset(name, shape=shape, dtype=dtype)
        ds.attrs["MATLAB_class"] = np.bytes_(CLASSES.get(np.dtype(dtype).name, np.dtype(dtype).name))
        return ds

    def _write(self, row: int, block: np.ndarray) -> None:
        if self.array is not None:
            self.array[row:row + len(block)] = block
        else:
            self.dataset[:, :, row:row + len(block)] = block.T

    def _finish(self) -> None:
        if not self.v73:
            import scipy.io

            extra = {} if self.wavelengths is None else {"wavelengths": self.wavelengths.reshape(-1, 1)}
            scipy.io.savemat(self.tmp, {self.key: self.array, **extra}, do_compression=False)
            return
        self.h5.close()
        with open(self.tmp, "r+b") as fh:  # MATLAB's 128-byte header in HDF5's user block
            fh.write(HEADER.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM")

    def _close(self) -> None:
        if self.h5 is not None:
            self.h5.close()
