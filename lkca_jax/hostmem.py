"""Host memory for XLA:CPU: keep freed buffers in the process instead of returning them to the OS.

XLA:CPU allocates every call's outputs and intermediates with the C library's ``malloc`` and frees
them after. glibc serves blocks over 32 MB with fresh ``mmap``s (or per-thread arenas that it trims
on free), so each call of a large-image forward touches hundreds of MB of new pages, one page
fault per 4 KB: LKCA-KD's forward at 128 x 128 x 128 LR faulted 160,000 times per call, and an
element-wise pass over 256 MB ran at 9.5 GB/s against 42 GB/s into reused memory
(docs/benchmarks.md, "Host memory"). :func:`keep_freed_memory` tells glibc to serve every block
from one heap and keep what is freed, as ``GLIBC_TUNABLES=glibc.malloc.mmap_max=0:
glibc.malloc.trim_threshold=...:glibc.malloc.arena_max=1`` would at start-up; the process then
holds its peak memory until it exits. The entry points (``train.py``, ``evaluate.py``,
``python -m lkca_jax``, the benchmarks) call it before JAX starts its threads; a program using
the library calls it first thing. ``LKCA_JAX_MALLOC=system`` leaves the C library's defaults.

Reuse is not immediate in every order of events: an aligned block (XLA's) allocated while the
previous one of the same size is still live does not fit the other's hole once freed (glibc before
2.38 asks ``memalign`` for size + alignment + a minimum chunk), so the heap grows for a few calls
more, faulting in new pages, until freed blocks merge (tests/test_hostmem.py shows both orders).
"""

from __future__ import annotations

import ctypes
import os

_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8  # glibc's mallopt parameters (malloc.h)


def keep_freed_memory() -> bool:
    """Serve all allocations from glibc's main heap, never through ``mmap``, and do not trim it.
    Call before the first JAX computation (the arena limit reaches only threads started later).
    True when applied; False without glibc or with ``LKCA_JAX_MALLOC=system``."""
    if os.environ.get("LKCA_JAX_MALLOC", "").lower() == "system":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl without mallopt)
        return False
    return all(mallopt(param, value) == 1 for param, value in
               ((_M_TRIM_THRESHOLD, 2 ** 31 - 1), (_M_MMAP_MAX, 0), (_M_ARENA_MAX, 1)))
