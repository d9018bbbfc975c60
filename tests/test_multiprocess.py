"""Two processes on 127.0.0.1 (one CPU device each, gloo collectives) train a tiny model through
``train_and_evaluate`` and end with identical parameters, equal to one process with two devices fed
the same global batches, in both parallel modes."""

import os
import pathlib
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import ROOT, XLA_TEST_FLAGS
from lkca_jax import checkpoint

SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import numpy as np
from lkca_jax import parallel
parallel.initialize_distributed({coordinator!r}, {num_processes}, {process_id})
import jax
from lkca_jax import evaluation, training
from test_training import tiny

assert jax.device_count() == 2, jax.devices()
real = evaluation.evaluate

def capture(config, variables, split, workdir, **kw):  # the final host variables of this process
    flat = {{jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(variables)}}
    np.savez({out!r}, **flat)
    return real(config, variables, split, workdir, **kw)

training.evaluation.evaluate = capture
c = tiny(steps=6, augment="random", learning_rate=1e-3, parallel={mode!r})
if {tfds_dir!r}:  # the prepared dataset: log which training records this process decodes
    from lkca_jax.data import tfds as prepared
    read, real_get = [], prepared.Records.__getitem__
    def logged(self, i):
        read.append((len(self), int(i)))
        return real_get(self, i)
    prepared.Records.__getitem__ = logged
    c.data.update(source="tfds", tfds_dir={tfds_dir!r})
c.train.update(log_every_steps=3, eval_every_steps=3, checkpoint_every_steps=3)
training.train_and_evaluate(c, {workdir!r}, echo=lambda *a: None)
if {tfds_dir!r}:
    np.save({out!r} + ".reads.npy", np.array(read, np.int64).reshape(-1, 2))
print("done", jax.process_index())
"""

FLAGS = "--xla_cpu_collective_call_terminate_timeout_seconds=120"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(workdir, out, devices, coordinator="", num_processes=0, process_id=-1, mode="pmap", tfds_dir=""):
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"{XLA_TEST_FLAGS} --xla_force_host_platform_device_count={devices} {FLAGS}")
    code = SCRIPT.format(tests=str(ROOT / "tests"), coordinator=coordinator, num_processes=num_processes,
                         process_id=process_id, out=str(out), workdir=str(workdir), mode=mode, tfds_dir=tfds_dir)
    return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(procs):
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (stdout, stderr) in zip(procs, outs):
        assert p.returncode == 0 and "done" in stdout, stderr[-3000:]


def _load(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("mode, source", [("jit", "files"), ("pmap", "tfds")])  # each mode, each source
def test_two_processes_match_one_process_with_two_devices(tmp_path: pathlib.Path, mode, source):
    tfds_dir = ""
    if source == "tfds":  # the embedded sample prepared once; each process reads its own shard of it
        from lkca_jax.data.tfds import LkcaSample

        tfds_dir = str(tmp_path / "tfds")
        LkcaSample(config="x4", data_dir=tfds_dir, file_format="array_record").download_and_prepare()
    coordinator = f"127.0.0.1:{_free_port()}"
    multi = [_spawn(tmp_path / "multi", tmp_path / f"multi{i}.npz", 1, coordinator, 2, i, mode, tfds_dir)
             for i in range(2)]
    _finish(multi)
    _finish([_spawn(tmp_path / "single", tmp_path / "single.npz", 2, mode=mode, tfds_dir=tfds_dir)])
    if source == "tfds":
        train = 24  # the sample's training patches
        seen = [{i for n, i in np.load(tmp_path / f"multi{p}.npz.reads.npy") if n == train} for p in range(2)]
        single = {i for n, i in np.load(tmp_path / "single.npz.reads.npy") if n == train}
        assert seen[0] and seen[1] and not seen[0] & seen[1]  # disjoint shards ...
        assert seen[0] | seen[1] == single  # ... that together are the global batches

    p0, p1, single = (_load(tmp_path / f) for f in ("multi0.npz", "multi1.npz", "single.npz"))
    assert p0.keys() == p1.keys() == single.keys()
    for k in p0:  # the processes hold bitwise the same parameters
        np.testing.assert_array_equal(p0[k], p1[k], err_msg=k)
        np.testing.assert_allclose(p0[k], single[k], rtol=1e-6, atol=1e-6, err_msg=k)
    # training moved the parameters, and process 0's checkpoint holds the final ones
    _, saved, meta = checkpoint.restore_variables(tmp_path / "multi", "last")
    assert meta["step"] == 6
    flat = {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(saved)}
    for k in p0:
        np.testing.assert_array_equal(flat[k], p0[k], err_msg=k)
    assert (tmp_path / "multi" / "eval" / "test.json").is_file()
