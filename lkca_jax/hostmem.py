"""Host memory for XLA:CPU: keep freed buffers in the process instead of returning them to the OS.

XLA:CPU allocates every call's outputs and intermediates with the C library's ``malloc`` and frees
them after. glibc serves blocks over 32 MB with fresh ``mmap``s (or per-thread arenas that it trims
on free), so each call of a large-image forward touches hundreds of MB of new pages, one page
fault per 4 KB: LKCA-KD's forward at 128 x 128 x 128 LR faulted 160,000 times per call, and an
element-wise pass over 256 MB ran at 9.5 GB/s against 42 GB/s into reused memory
(docs/benchmarks.md, "Host memory"). :func:`keep_freed_memory` tells glibc to serve every block
from one heap and keep what is freed, as ``GLIBC_TUNABLES=glibc.malloc.mmap_max=0:
glibc.malloc.trim_threshold=...:glibc.malloc.arena_max=1`` would at start-up; the process then
keeps what it frees for reuse (glibc still returns the top of the heap when more than 2 GB are
free there). The entry points (``train.py``, ``evaluate.py``,
``python -m lkca_jax``, the benchmarks) call it before JAX starts its threads; a program using
the library calls it first thing. ``LKCA_JAX_MALLOC=system`` leaves the C library's defaults.

The cost is memory: the kept heap can grow to about twice a step's peak, depending on the order in
which XLA's threads allocate and free (below): ESSAformer's x4 train step at batch 16, 128 bands,
peaked at 9.8 GiB in one run, and in another, with a training run on the other core, was killed out
of memory on a 23 GiB machine at 20.9 GB (docs/benchmarks.md); LKCA-Net's at 4.2 against 2.85 GiB
with the C library's defaults. :func:`bound_growth`, called by the trainer after its first step,
returns blocks over 32 MB to ``mmap`` when the process (compile and first step included) peaked
above 30 % of the memory the machine, or the cgroup at the root of /sys/fs/cgroup, allows: such a
step then runs at the C library's speed (ESSAformer's about 1.2x slower than with the heap kept,
when kept fits) but cannot double. ``LKCA_JAX_MALLOC=keep`` keeps the heap whatever the peak.

Reuse is not immediate in every order of events: an aligned block (XLA's) allocated while the
previous one of the same size is still live does not fit the other's hole once freed (glibc before
2.38 asks ``memalign`` for size + alignment + a minimum chunk), so the heap grows for a few calls
more, faulting in new pages, until freed blocks merge (tests/test_hostmem.py shows both orders).
"""

from __future__ import annotations

import ctypes
import os

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -3, -4, -8  # glibc's mallopt (malloc.h)
_kept = False  # whether keep_freed_memory applied and bound_growth has not undone it


def _mode() -> str:
    """``LKCA_JAX_MALLOC``: 'system' (the C library's defaults), 'keep' (never bounded), or ''."""
    return os.environ.get("LKCA_JAX_MALLOC", "").lower()


def keep_freed_memory() -> bool:
    """Serve all allocations from glibc's main heap, never through ``mmap``, and do not trim it.
    Call before the first JAX computation (the arena limit reaches only threads started later).
    True when applied; False without glibc or with ``LKCA_JAX_MALLOC=system``."""
    if _mode() == "system":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl without mallopt)
        return False
    global _kept
    _kept = all(mallopt(param, value) == 1 for param, value in
                ((_M_TRIM_THRESHOLD, 2 ** 31 - 1), (_M_MMAP_MAX, 0), (_M_ARENA_MAX, 1)))
    return _kept


def proc_kib(path: str, key: str) -> int | None:
    """The value in KiB of line ``key:`` of a /proc file, None where absent."""
    try:
        with open(path) as f:
            return next((int(line.split()[1]) for line in f if line.startswith(key + ":")), None)
    except OSError:
        return None


def _cgroup_limits(cgroup_file: str, mount: str) -> list[int]:
    """The memory limits on the way from the process's own cgroup (``cgroup_file``, as
    /proc/self/cgroup lists it) up to the root of the hierarchy mounted at ``mount``: v2's
    ``memory.max``, v1's ``memory.limit_in_bytes`` under its ``memory`` controller."""
    try:
        with open(cgroup_file) as f:
            lines = [line.rstrip("\n").split(":", 2) for line in f]
    except OSError:
        lines = []
    own = [(os.path.join(mount, p.lstrip("/")), "memory.max") for h, c, p in lines if h == "0" and c == ""]
    own += [(os.path.join(mount, "memory", p.lstrip("/")), "memory.limit_in_bytes")
            for h, c, p in lines if "memory" in c.split(",")]
    starts = own or [(mount, "memory.max"), (os.path.join(mount, "memory"), "memory.limit_in_bytes")]
    limits = []
    for folder, name in starts:
        top = os.path.normpath(mount if name == "memory.max" else os.path.join(mount, "memory"))
        folder = os.path.normpath(folder)
        while True:
            try:
                with open(os.path.join(folder, name)) as f:
                    limits.append(int(f.read().strip()))
            except (OSError, ValueError):  # absent, or "max"
                pass
            if folder == top or not folder.startswith(top):
                break
            folder = os.path.dirname(folder)
    return limits


def memory_limit(cgroup_file: str = "/proc/self/cgroup", mount: str = "/sys/fs/cgroup") -> int | None:
    """Bytes the process may use: the machine's memory, or the lowest memory limit of the cgroups
    it sits in (its own, a Slurm job's say, and each one above it) where lower."""
    total = proc_kib("/proc/meminfo", "MemTotal")
    limits = ([total * 1024] if total else []) + _cgroup_limits(cgroup_file, mount)
    return min(limits) if limits else None


def bound_growth(fraction: float = 0.3) -> str:
    """Undo :func:`keep_freed_memory` for large blocks when the process's peak resident memory so far
    (call it after a train step's first run; the peak includes the compile) is over ``fraction`` of
    :func:`memory_limit`: blocks over 32 MB go to fresh ``mmap``s again, the heap is trimmed as by
    the C library's defaults (its free top over 128 KB returned), and what it holds free is
    returned now. A one-line note of what it did, or '' (nothing kept, ``LKCA_JAX_MALLOC=keep``,
    or the peak small)."""
    global _kept
    if not _kept or _mode() == "keep":
        return ""
    peak, limit = proc_kib("/proc/self/status", "VmHWM"), memory_limit()
    if peak is None or not limit or peak * 1024 <= fraction * limit:
        return ""
    libc = ctypes.CDLL(None)
    for param, value in ((_M_MMAP_THRESHOLD, 32 * 2 ** 20), (_M_MMAP_MAX, 65536), (_M_TRIM_THRESHOLD, 128 * 1024)):
        libc.mallopt(param, value)
    libc.malloc_trim(0)
    _kept = False
    return (f"host memory: the process peaked at {peak / 2 ** 20:.1f} of {limit / 2 ** 30:.1f} GiB, so freed"
            f" blocks over 32 MB go back to the OS (the heap kept otherwise grows to about twice the peak;"
            f" LKCA_JAX_MALLOC=keep keeps it; lkca_jax/hostmem.py)")
