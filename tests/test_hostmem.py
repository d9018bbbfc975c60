"""lkca_jax.hostmem: freed XLA:CPU buffers are reused instead of page-faulted in afresh every call."""

import os
import platform
import subprocess
import sys

import pytest

from lkca_jax import hostmem

# A jitted element-wise pass that writes a new 64 MB array per call; prints the minor page faults
# of each of 8 calls after a warm-up (one per 4 KB page written into memory the process has not
# touched before)
SCRIPT = """
import resource
from lkca_jax import hostmem
print(hostmem.keep_freed_memory())
import jax, jax.numpy as jnp
x = jnp.ones((16 * 2 ** 20,), jnp.float32)
f = jax.jit(lambda v: v * 2.0 + 1.0)
faults = []
for i in range(11):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    y = f(x).block_until_ready()
    del y
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(*faults[3:])
"""
PAGES = 64 * 2 ** 20 // 4096


def faults_per_call(malloc: str) -> tuple[str, list[int]]:
    env = {**os.environ, "LKCA_JAX_MALLOC": malloc, "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    applied, *faults = out.stdout.split()
    return applied, [int(n) for n in faults]


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_freed_buffers_are_reused_not_faulted_in_again():
    # kept: once the heap has grown over the first calls, calls reuse freed memory and write no
    # new pages (one-off runs here: 0-3 faulting calls, then none). Up to three fresh processes: one
    # CI run (2026-12-01, the other pytest-xdist worker busy) faulted every page on every call in
    # its only process, which no run alone has reproduced; the cause was not found.
    runs = []
    for _ in range(3):
        applied, kept = faults_per_call("keep")
        assert applied == "True"
        runs.append(kept)
        if min(kept) < 0.05 * PAGES:
            break
    assert min(runs[-1]) < 0.05 * PAGES, f"page faults per call, each process: {runs}, of {PAGES} pages written"
    # the C library's defaults: a fresh mmap, every page faulted in, on every call
    applied, system = faults_per_call("system")
    assert applied == "False"
    assert min(system) > 0.9 * PAGES, f"page faults per call {system}"


def test_opt_out(monkeypatch):
    monkeypatch.setenv("LKCA_JAX_MALLOC", "system")
    assert hostmem.keep_freed_memory() is False
