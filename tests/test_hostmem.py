"""lkca_jax.hostmem: freed XLA:CPU buffers are reused instead of page-faulted in afresh every call."""

import os
import platform
import subprocess
import sys

import pytest

from lkca_jax import hostmem

# A jitted element-wise pass that writes a new 64 MB array per call; prints the minor page faults
# per call after a warm-up (one per 4 KB page written into memory the process has not touched)
SCRIPT = """
import resource, sys
from lkca_jax import hostmem
print(hostmem.keep_freed_memory())
import jax, jax.numpy as jnp
x = jnp.ones((16 * 2 ** 20,), jnp.float32)
f = jax.jit(lambda v: v * 2.0 + 1.0)
for _ in range(3):
    y = f(x).block_until_ready(); del y
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    y = f(x).block_until_ready(); del y
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
"""
PAGES = 64 * 2 ** 20 // 4096


def faults_per_call(malloc: str) -> tuple[str, float]:
    env = {**os.environ, "LKCA_JAX_MALLOC": malloc, "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    applied, faults = out.stdout.split()
    return applied, float(faults)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_freed_buffers_are_reused_not_faulted_in_again():
    applied, kept = faults_per_call("keep")
    assert applied == "True"
    # most calls reuse freed memory (a call whose previous output is not yet freed takes new pages:
    # 2 of 5 calls here, 0.4 x PAGES on average)
    assert kept < 0.6 * PAGES, f"{kept:.0f} page faults per call of {PAGES} pages written"
    applied, system = faults_per_call("system")  # the C library's defaults: a fresh mmap per call
    assert applied == "False"
    assert system > 0.9 * PAGES


def test_opt_out(monkeypatch):
    monkeypatch.setenv("LKCA_JAX_MALLOC", "system")
    assert hostmem.keep_freed_memory() is False
