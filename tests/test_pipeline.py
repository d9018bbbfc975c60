"""Input pipeline: determinism, sharding, dihedral augmentation, padding, prefetch."""

import numpy as np
import pytest

from lkca_jax.data.pipeline import dihedral, epoch_order, eval_batches, prefetch, train_batches
from lkca_jax.data.protocols import degrade


def make_source(n=10, size=16, scale=2, bands=3, seed=0):
    rng = np.random.default_rng(seed)
    hr = [rng.random((size, size, bands)).astype(np.float32) for _ in range(n)]
    return [{"hr": h, "lr": degrade(h, scale), "id": str(i)} for i, h in enumerate(hr)]


def test_same_seed_same_batches_different_epochs_differ():
    src = make_source()
    a = [b.hr for b in train_batches(src, 2, 2, epoch=3, seed=7)]
    b = [b.hr for b in train_batches(src, 2, 2, epoch=3, seed=7)]
    c = [b.hr for b in train_batches(src, 2, 2, epoch=4, seed=7)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_all8_enumerates_every_transform_once():
    pairs = epoch_order(5, epoch=0, seed=1, augment="all8")
    assert sorted(pairs) == [(i, t) for i in range(5) for t in range(8)]


def test_process_shards_split_each_global_batch():
    src = make_source(11)
    one = list(train_batches(src, per_device=2, devices=2, epoch=2, seed=0))  # one process, 2 devices
    p0 = list(train_batches(src, per_device=2, devices=1, epoch=2, seed=0, process_index=0, process_count=2))
    p1 = list(train_batches(src, per_device=2, devices=1, epoch=2, seed=0, process_index=1, process_count=2))
    assert len(one) == len(p0) == len(p1) == 22  # 88 transformed items in batches of 4
    for a, b, c in zip(one, p0, p1):  # process p's device = global device p
        np.testing.assert_array_equal(a.hr[0], b.hr[0])
        np.testing.assert_array_equal(a.hr[1], c.hr[0])
        assert not np.array_equal(b.hr, c.hr)
    resumed = list(train_batches(src, per_device=2, devices=2, epoch=2, seed=0, skip=5))
    assert len(resumed) == 17 and all(np.array_equal(a.hr, b.hr) for a, b in zip(one[5:], resumed))


def test_dihedral_group():
    x = np.arange(2 * 3 * 1).reshape(2, 3, 1)
    outs = {dihedral(x, t).tobytes() + bytes(dihedral(x, t).shape) for t in range(8)}
    assert len(outs) == 8  # all eight distinct
    np.testing.assert_array_equal(dihedral(x, 1)[:, :, 0], np.array([[2, 5], [1, 4], [0, 3]]))  # rot90 by hand


@pytest.mark.parametrize("t", range(8))
def test_transform_applied_to_both_lr_and_hr(t):
    # MATLAB bicubic commutes with the dihedral group on square images, so a consistent pair stays consistent.
    (item,) = make_source(1, size=24, scale=4)
    np.testing.assert_allclose(dihedral(item["lr"], t), degrade(dihedral(item["hr"], t), 4), atol=1e-5)


def test_batch_shapes_epoch_and_drop_last():
    batches = list(train_batches(make_source(10), per_device=3, devices=2, epoch=5, augment="none"))
    assert len(batches) == 1  # 10 items, batches of 6, the partial one dropped
    b = batches[0]
    assert b.lr.shape == (2, 3, 8, 8, 3) and b.hr.shape == (2, 3, 16, 16, 3) and b.epoch == 5
    assert b.mask.sum() == 6


def test_eval_pads_with_mask_and_groups_shapes():
    src = make_source(5) + make_source(2, size=8)
    batches = list(eval_batches(src, per_device=2, devices=1))
    assert [b.mask.sum() for b in batches] == [2, 2, 1, 2]
    assert batches[2].mask.tolist() == [[1.0, 0.0]] and batches[3].hr.shape[2] == 8
    got = [b.hr[0, j] for b in batches for j in range(2) if b.mask[0, j]]
    assert all(np.array_equal(g, s["hr"]) for g, s in zip(got, src))


def test_prefetch_same_batches_and_errors_propagate():
    src = make_source()
    direct = [b.hr for b in train_batches(src, 2, 1, epoch=0)]
    fetched = [b.hr for b in prefetch(train_batches(src, 2, 1, epoch=0), depth=3)]
    assert len(direct) == len(fetched) and all(np.array_equal(a, b) for a, b in zip(direct, fetched))

    def broken():
        yield from train_batches(src, 2, 1, epoch=0)
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError, match="disk gone"):
        list(prefetch(broken()))
