"""Distillation: the decay schedule, the zero loss on equal features, a frozen teacher."""

import json

import jax
import numpy as np
import pytest
from test_training import tiny

from lkca_jax import checkpoint, training
from lkca_jax.distillation import kd_schedule


@pytest.mark.parametrize("epoch", [0, 9, 10, 19, 20, 30])
def test_lambda_follows_the_formula(epoch):
    assert float(kd_schedule(0.01, 0.66, 10)(epoch)) == pytest.approx(0.01 * 0.66 ** (epoch // 10), rel=1e-6)


@pytest.mark.parametrize("epoch, steps", [(0.0, 0), (0.24, 0), (0.25, 1), (0.6, 2), (1.1, 4), (3.99, 15)])
def test_fractional_period_decays_within_an_epoch(epoch, steps):
    # a short run scales the period below an epoch; batches carry fractional epochs (training.as_batch)
    assert float(kd_schedule(0.01, 0.5, 0.25)(epoch)) == pytest.approx(0.01 * 0.5 ** steps, rel=1e-6)


def test_batches_carry_their_fraction_of_the_epoch():
    from lkca_jax.data.pipeline import Batch

    b = Batch(lr=np.zeros((1, 2, 4, 4, 3)), hr=np.zeros((1, 2, 16, 16, 3)), mask=np.ones((1, 2)), epoch=3)
    np.testing.assert_array_equal(training.as_batch(b, 0.25)["epoch"], np.full((1, 2), 3.25, np.float32))


def test_a_kd_run_learns_from_its_teacher_and_saves_only_the_student(tmp_path):
    """The same student, seed and batches with lambda0 1 and 0: the teacher's term changes what it
    learns; the checkpoint holds the student alone and names its teacher."""
    teacher = tiny(steps=4)
    training.train_and_evaluate(teacher, tmp_path / "teacher", echo=lambda *a: None)
    trained = {}
    for lambda0 in (1.0, 0.0):
        student = tiny("sample.py:x4,kd", steps=6)
        student.teacher.workdir = str(tmp_path / "teacher")
        student.teacher.lambda0 = lambda0
        workdir = tmp_path / f"student{lambda0}"
        training.train_and_evaluate(student, workdir, echo=lambda *a: None)
        _, trained[lambda0], meta = checkpoint.restore_variables(workdir, "last")
        assert meta["teacher_workdir"] == str(tmp_path / "teacher")
        assert set(trained[lambda0]) == {"params", "batch_stats"}  # no teacher inside
        first = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[0])
        assert first["kd_weight"] == lambda0 and first["kd"] > 0
    moved = [not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(trained[1.0]["params"]),
                                                       jax.tree.leaves(trained[0.0]["params"]), strict=True)]
    assert any(moved)


def test_kd_step_updates_only_the_student(tmp_path):
    from lkca_jax.data.datasets import load_splits
    from lkca_jax.data.pipeline import SplitSource, train_batches
    from lkca_jax.data.spec import DataSpec
    from lkca_jax.models import build_model

    teacher = tiny(steps=2)
    training.train_and_evaluate(teacher, tmp_path / "teacher", echo=lambda *a: None)
    c = tiny("sample.py:x4,kd")
    c.teacher.workdir = str(tmp_path / "teacher")
    built = training.assemble(c, training.optax.constant_schedule(1e-3), "pmap", jax.local_devices()[:1])
    state, runner, kd = built.state, built.runner, built.kd
    start = jax.tree.map(np.asarray, state)
    state = runner.put_state(state)
    source = SplitSource(load_splits(DataSpec.of(c), ("train",))["train"])
    for batch in list(train_batches(source, 4, 1, epoch=0))[:3]:
        state, metrics = runner.step(state, training.as_batch(batch))
    end = runner.get_state(state)
    for x, y in zip(jax.tree.leaves(start.teacher), jax.tree.leaves(end.teacher), strict=True):
        np.testing.assert_array_equal(x, y)
    changed = [not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(start.params), jax.tree.leaves(end.params))]
    assert all(changed)

    # The KD term's gradient with respect to the teacher is exactly zero.
    def kd_of(teacher_variables, params):
        lr = batch.lr[0]
        _, feats = build_model(c).apply({"params": params, "batch_stats": end.batch_stats}, lr, train=False)
        return kd.terms(teacher_variables, lr, feats, None, np.zeros(4, np.int32))["kd"]

    g_teacher, g_student = jax.grad(kd_of, argnums=(0, 1))(end.teacher, end.params)
    assert all(not np.any(x) for x in jax.tree.leaves(g_teacher))
    assert any(np.any(x) for x in jax.tree.leaves(g_student))


def test_student_can_start_from_the_teachers_backbone(tmp_path):
    from lkca_jax.models import build_model

    teacher = tiny(steps=2)
    training.train_and_evaluate(teacher, tmp_path / "teacher", echo=lambda *a: None)
    _, tv, _ = checkpoint.restore_variables(tmp_path / "teacher", "best")
    c = tiny("sample.py:x4,kd")
    c.train.update(init_from=str(tmp_path / "teacher"), init_parts="backbone")
    schedule = training.optax.constant_schedule(1e-3)
    state = training.init_from_run(training.create_state(c, build_model(c), schedule), c.train)
    for name in ("head", "block0"):
        for x, y in zip(jax.tree.leaves(state.params[name]), jax.tree.leaves(tv["params"][name]), strict=True):
            np.testing.assert_array_equal(x, y)
    for x, y in zip(jax.tree.leaves(state.batch_stats), jax.tree.leaves(tv["batch_stats"]), strict=True):
        np.testing.assert_array_equal(x, y)
    assert state.params["up"]["conv"]["kernel"].shape != tv["params"]["up"]["conv"]["kernel"].shape
    c.model.depth = 2  # a deeper student does not fit a depth-1 teacher: said, not guessed
    with pytest.raises(ValueError, match="does not fit"):
        training.init_from_run(training.create_state(c, build_model(c), schedule), c.train)


@pytest.mark.parametrize("which", ["best", "last"])
def test_init_from_reads_the_checkpoint_it_is_told(tmp_path, which):
    """train.init_which picks the run's best or last checkpoint (here different weights), and every
    array comes over, the EMA restarting from them and Adam's moments at zero."""
    from lkca_jax.models import build_model

    c = tiny()
    c.train.ema_decay = 0.9
    schedule = training.optax.constant_schedule(1e-3)
    fresh = training.create_state(c, build_model(c), schedule)
    best = {"params": fresh.params, "batch_stats": fresh.batch_stats}
    last = jax.tree.map(lambda x: np.asarray(x) + 1.0, best)
    saver = checkpoint.Checkpoints(tmp_path / "run")
    try:
        saver.save(1, best, best=True)
        saver.save(2, last)
        saver.wait()
    finally:
        saver.close()
    checkpoint.save_config(tmp_path / "run", c)
    c.train.update(init_from=str(tmp_path / "run"), init_which=which)
    state = training.init_from_run(training.create_state(c, build_model(c), schedule), c.train)
    want = best if which == "best" else last
    for x, y in zip(jax.tree.leaves(state.params), jax.tree.leaves(want["params"]), strict=True):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(jax.tree.leaves(state.ema["params"]), jax.tree.leaves(want["params"]), strict=True):
        np.testing.assert_array_equal(x, y)
    assert all(not np.any(x) for x in jax.tree.leaves(state.opt_state) if np.ndim(x) > 0)


def test_a_resume_does_not_read_init_from_again(tmp_path):
    """init_from starts a fresh run only: once the run has a checkpoint, its source may go (here it is
    deleted) and the run resumes from its own checkpoint instead of failing on the missing source."""
    import shutil

    source = tiny(steps=2)
    training.train_and_evaluate(source, tmp_path / "source", echo=lambda *a: None)
    c = tiny(steps=2)
    c.train.init_from = str(tmp_path / "source")
    training.train_and_evaluate(c, tmp_path / "run", echo=lambda *a: None)
    shutil.rmtree(tmp_path / "source")
    said = []
    training.train_and_evaluate(c, tmp_path / "run", echo=lambda *a: said.append(" ".join(map(str, a))))
    assert any(line.startswith("resumed from step 2") for line in said)


def test_a_teachers_fingerprint_is_its_weights():
    """The same values give the same fingerprint, as NumPy or JAX arrays and in any key order; one
    changed element, dtype or shape gives another."""
    from lkca_jax.distillation import fingerprint

    rng = np.random.default_rng(0)
    tree = {"params": {"a": rng.normal(size=(3, 4)).astype(np.float32), "b": np.arange(5, dtype=np.float32)},
            "batch_stats": {"mean": np.ones(4, np.float32)}}
    same = {"batch_stats": {"mean": jax.numpy.ones(4)},
            "params": {"b": jax.numpy.arange(5.0), "a": tree["params"]["a"]}}
    assert fingerprint(tree) == fingerprint(same) and len(fingerprint(tree)) == 16
    changed = jax.tree.map(np.copy, tree)
    changed["params"]["a"][1, 2] += 1e-6
    assert fingerprint(changed) != fingerprint(tree)
    assert fingerprint({**tree, "params": {**tree["params"], "b": tree["params"]["b"].astype(np.float64)}}) \
        != fingerprint(tree)
    assert fingerprint({**tree, "params": {**tree["params"], "a": tree["params"]["a"].reshape(4, 3)}}) \
        != fingerprint(tree)


def test_a_resumed_kd_run_refuses_a_teacher_whose_weights_changed(tmp_path):
    """A KD run resumes with the teacher it started with; where the teacher's folder now holds other
    weights (here retrained with another seed) the resume is refused in one line, before anything is
    written: the run's config and checkpoints stay as they were."""
    import shutil

    quiet = lambda *a: None
    teacher = tiny(steps=2)
    training.train_and_evaluate(teacher, tmp_path / "teacher", echo=quiet)
    student = tiny("sample.py:x4,kd", steps=2)
    student.teacher.workdir = str(tmp_path / "teacher")
    run = tmp_path / "student"
    training.train_and_evaluate(student, run, echo=quiet)
    student.train.num_steps = 3  # the same teacher: resumes
    said = []
    training.train_and_evaluate(student, run, echo=lambda *a: said.append(" ".join(map(str, a))))
    assert any(line.startswith("resumed from step 2") for line in said)
    shutil.rmtree(tmp_path / "teacher")
    teacher.train.seed = 1
    training.train_and_evaluate(teacher, tmp_path / "teacher", echo=quiet)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    student.train.num_steps = 4
    with pytest.raises(ValueError, match=r"teacher\.workdir .* now holds other weights than the teacher this run "
                                         r"was trained with \(fingerprint [0-9a-f]{16}, was [0-9a-f]{16}\)"):
        training.train_and_evaluate(student, run, echo=quiet)
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after.keys() == before.keys()
    assert all(after[p] == before[p] for p in before if p.name != ".lock")  # the lock says who holds it


def test_a_run_and_its_shipped_copy_have_one_fingerprint(tmp_path, monkeypatch):
    """A teacher read from its run folder and from the shipped copy of that run (``pretrained.ship``,
    then ``load_run_or_shipped`` by its name) is one teacher: one fingerprint."""
    from lkca_jax import pretrained
    from lkca_jax.checkpoint import load_run
    from lkca_jax.distillation import fingerprint

    training.train_and_evaluate(tiny(steps=2), tmp_path / "run", echo=lambda *a: None)
    (tmp_path / "shipped").mkdir()
    pretrained.ship(tmp_path / "run", "tiny-net", "best", "# tiny\n", root=tmp_path / "shipped")
    monkeypatch.setattr(pretrained, "HERE", tmp_path / "shipped")
    monkeypatch.chdir(tmp_path)  # no run folder named tiny-net here: the shipped model is read
    _, shipped, _ = pretrained.load_run_or_shipped("tiny-net")
    _, variables, _ = load_run(tmp_path / "run", "best")
    assert fingerprint(shipped) == fingerprint(variables)
