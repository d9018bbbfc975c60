"""NumPy ``.npy`` (one (H, W, C) array) and ``.npz`` (the array named ``key``, or the single largest
3-D one, with an optional ``wavelengths`` array). Written as ``.npy``, row blocks at their offsets."""

from __future__ import annotations

import numpy as np

from lkca_jax.data.io.base import Cube, DataError, RowWriter, as_cube, largest_cube, reason


def read(path, key: str | None = None) -> Cube:
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as err:
        raise DataError(path, f"not a readable NumPy file ({reason(err)})") from None
    if isinstance(loaded, np.ndarray):
        return as_cube(path, loaded)
    with loaded:
        arrays = {}
        for k in loaded.files:
            try:
                arrays[k] = loaded[k]
            except Exception as err:  # an object array (pickled), a damaged member
                raise DataError(path, f"array {k!r} is not readable ({reason(err)})") from None
    if key is not None:
        if key not in arrays:
            raise DataError(path, f"no array {key!r}; arrays: {', '.join(sorted(arrays))}")
        return as_cube(path, arrays[key])
    cube = largest_cube(path, arrays)
    if cube is None:
        raise DataError(path, f"no 3-D array; arrays: {', '.join(sorted(arrays)) or 'none'}")
    return as_cube(path, cube, arrays.get("wavelengths"))


class Writer(RowWriter):
    """An (H, W, C) little-endian ``.npy``; wavelengths and georeference have no place in it."""

    def _open(self) -> None:
        with open(self.tmp, "wb") as f:
            np.lib.format.write_array_header_2_0(
                f, {"descr": np.lib.format.dtype_to_descr(self.dtype.newbyteorder("<")), "fortran_order": False,
                    "shape": self.shape})
            self.offset = f.tell()
        self.file = open(self.tmp, "r+b")
        self.file.truncate(self.offset + self.nbytes)

    def _write(self, row: int, block: np.ndarray) -> None:
        _, w, c = self.shape
        self.file.seek(self.offset + row * w * c * self.dtype.itemsize)
        self.file.write(np.ascontiguousarray(block).tobytes())

    def _close(self) -> None:
        self.file.close()
