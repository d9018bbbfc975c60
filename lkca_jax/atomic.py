"""Atomic file writes: everything is written to a temporary file beside its target, flushed to disk,
then renamed.

A reader never sees a half-written file, and a failed write leaves an existing target as it was.
A temporary file is named ``.<stem>.<host>-<pid>.<random><suffix>``: a process killed before it
could remove its own (SIGKILL, a power cut) leaves one behind, and the next write beside the same
target removes every such file of this host whose process no longer runs. A written file gets the
mode that the umask gives a new file, or the mode of the file it replaces.

An interrupt (Ctrl-C, SIGTERM) raises wherever the main thread is, also between a temporary file's
creation and the ``try`` that would remove it; so every temporary is recorded by name before it
exists, until it is renamed or removed, and :func:`remove_unfinished` (which the command line calls
whenever it returns) removes what is left.
"""

from __future__ import annotations

import os
import pathlib
import re
import secrets
import socket
import threading

_HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname()) or "host"
_umask_lock = threading.Lock()
_unfinished: set[str] = set()  # this process's temporary files not yet renamed into place or removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_dead_temporaries(path) -> list[str]:
    """Remove the temporary files beside ``path`` (its own and its sidecars', any suffix) that a
    process of this host which no longer runs left behind; returns their names."""
    path = pathlib.Path(path)
    pattern = re.compile(rf"\.{re.escape(path.stem)}\.{_HOST}-(\d+)\.[A-Za-z0-9_]+(\..*)?")
    removed = []
    if not path.parent.is_dir():
        return removed
    for f in path.parent.iterdir():
        m = pattern.fullmatch(f.name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            try:
                f.unlink()
                removed.append(f.name)
            except OSError:  # removed meanwhile, or a folder: not ours to clear
                pass
    return removed


def _new_file_mode(path: pathlib.Path) -> int:
    """The target's own mode when it exists, else what the umask gives a new file."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        with _umask_lock:
            umask = os.umask(0o022)
            os.umask(umask)
        return 0o666 & ~umask


def temp_beside(path) -> str:
    """A new empty temporary file in ``path``'s folder (created if needed), hidden, same suffix,
    readable and writable by its owner only until :func:`finish` gives it its mode; dead
    temporaries of earlier runs beside it are removed."""
    path = pathlib.Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a file where a folder should be, or no right to make it: name the target
        raise write_error(path, err, "cannot make its folder") from None
    remove_dead_temporaries(path)
    flags = os.O_CREAT | os.O_EXCL | os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    while True:
        tmp = track(path.parent / f".{path.stem}.{_HOST}-{os.getpid()}.{secrets.token_hex(4)}{path.suffix}")
        try:
            os.close(os.open(tmp, flags, 0o600))
            return tmp
        except OSError as err:  # nothing was created: a name taken (try another), or a folder not writable
            _unfinished.discard(tmp)
            if not isinstance(err, FileExistsError):  # the target's name, not the temporary's
                raise write_error(path, err, "cannot write in its folder") from None


def track(path) -> str:
    """Record ``path`` (absolute) as a temporary file of this process, before it is created, so
    that :func:`remove_unfinished` removes it if it is neither renamed nor removed."""
    path = os.path.abspath(path)
    _unfinished.add(path)
    return path


def replace(tmp, path) -> None:
    """Rename the finished temporary file ``tmp`` to ``path``."""
    os.replace(tmp, path)
    _unfinished.discard(os.path.abspath(tmp))


def remove_unfinished() -> None:
    """Remove every temporary file of this process that was neither renamed nor removed (after an
    interrupt)."""
    for tmp in list(_unfinished):
        try:
            os.unlink(tmp)
        except OSError:  # gone already; or still open on a system that refuses to unlink it
            pass
        _unfinished.discard(tmp)


def finish(tmp, path) -> None:
    """Before ``tmp`` is renamed to ``path``: the mode ``path`` has (or the umask gives a new file),
    set after the writing (a read-only mode would have refused it), then its data flushed to disk
    (a full disk or a failing device reports here, not after the rename)."""
    os.chmod(tmp, _new_file_mode(pathlib.Path(path)))
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove(*paths) -> None:
    """Delete whichever of ``paths`` exist, and forget them as temporaries."""
    for p in paths:
        if p is not None:
            if os.path.exists(p):
                os.unlink(p)
            _unfinished.discard(os.path.abspath(p))


def write_error(path, err: OSError, what: str = "cannot write it") -> OSError:
    """``err`` as one line that names ``path`` and ``what`` failed (the errno kept)."""
    out = OSError(f"{path}: {what} ({err.strerror or err})")
    out.errno = err.errno
    return out


def atomic_write(path, write) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, flush it to disk, then rename it to
    ``path``. An error names ``path`` (``OSError.filename``) and leaves ``path`` as it was."""
    tmp = temp_beside(path)
    try:
        write(tmp)
        finish(tmp, path)
        replace(tmp, path)
    except OSError as err:
        remove(tmp)
        raise write_error(path, err) from None
    except BaseException:
        remove(tmp)
        raise
