"""Atomic file writes: everything is written to a temporary file beside its target, then renamed.

A reader never sees a half-written file, and a failed write leaves an existing target as it was.
"""

from __future__ import annotations

import os
import pathlib
import tempfile


def temp_beside(path) -> str:
    """A new empty temporary file in ``path``'s folder (created if needed), hidden, same suffix."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    return tmp


def remove(*paths) -> None:
    """Delete whichever of ``paths`` exist."""
    for p in paths:
        if p is not None and os.path.exists(p):
            os.unlink(p)


def atomic_write(path, write) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``."""
    tmp = temp_beside(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        remove(tmp)
        raise
