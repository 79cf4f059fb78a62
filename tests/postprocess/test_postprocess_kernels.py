"""The compiled loops of postprocess against plain numpy / naive formulations."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from panoptool.postprocess.instances import (InstanceSums, fill_contours, gather_instances,
                                             thing_components)
from panoptool.postprocess.refine import _instance_ranges


def random_maps(seed: int, h: int = 40, w: int = 60, dtype=np.float32):
    rng = np.random.default_rng(seed)
    tid = rng.choice(np.array([0, 8, 11, 13, 18, 255], np.uint8), size=(h, w))
    tid[rng.random((h, w)) < 0.5] = 13  # large same-class regions
    conf = rng.random((h, w)).astype(dtype)
    prob = rng.random((h, w)).astype(dtype)
    prob[rng.random((h, w)) < 0.05] = np.nan  # NaN compares False: not a contour
    off = rng.normal(0, 5, (2, h, w)).astype(dtype)
    return tid, conf, prob, off


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_components_and_gathered_values_equal_numpy(dtype, threshold):
    tid, conf, prob, off = random_maps(3, dtype=dtype)
    prob[0, :30] = dtype(threshold)  # exactly at the threshold in the map's type: not contour
    comps, n, areas = thing_components(tid, prob, threshold)
    thing = (tid >= 11) & (tid <= 18)
    contour = prob > threshold  # numpy's comparison (float32 map: float32 threshold)
    n_ref, ref = cv2.connectedComponents((thing & ~contour).astype(np.uint8), connectivity=4,
                                         ltype=cv2.CV_32S)
    assert n == n_ref - 1 and np.array_equal(comps, ref)
    assert np.array_equal(areas, np.bincount(tid.ravel(), minlength=256))
    pixels, labels, stats = gather_instances(comps, n, tid, conf, prob, threshold, off,
                                             int(thing.sum()))
    index = np.flatnonzero(thing)
    y, x = np.divmod(index, tid.shape[1])
    assert np.array_equal(pixels.index, index)
    assert np.array_equal(labels, comps.ravel()[index])
    assert np.array_equal(pixels.contour, contour.ravel()[index])
    assert np.array_equal(pixels.centre_y, off[0].ravel()[index].astype(np.float64) + y)
    assert np.array_equal(pixels.centre_x, off[1].ravel()[index].astype(np.float64) + x)
    # the sums, in the order np.bincount takes them: bit-identical
    cls = tid.ravel()[index].astype(np.intp) - 11
    key = labels * 8 + cls
    size = (n + 1) * 8
    assert np.array_equal(stats.counts.ravel(), np.bincount(key, minlength=size))
    assert np.array_equal(stats.conf.ravel(), np.bincount(
        key, conf.ravel()[index].astype(np.float64), minlength=size))
    assert np.array_equal(stats.sum_y, np.bincount(labels, pixels.centre_y, minlength=n + 1))
    assert np.array_equal(stats.sum_x, np.bincount(labels, pixels.centre_x, minlength=n + 1))
    # measuring a subset with other labels
    pos = np.flatnonzero(labels % 3 == 1)
    other = (labels[pos] + 1) % (n + 1)
    part = InstanceSums.measure(other, pixels, n, pos)
    assert np.array_equal(part.counts.ravel(), np.bincount(other * 8 + cls[pos],
                                                           minlength=size))
    assert np.array_equal(part.sum_x, np.bincount(other, pixels.centre_x[pos], minlength=n + 1))


def naive_fill(instance_map, targets, train_ids, classes):
    """Round by round: every unlabelled target with a neighbour (up, left, right, down)
    labelled, at the start of the round, by an instance of its class takes that label."""
    m = instance_map.copy()
    h, w = m.shape
    todo = [divmod(int(t), w) for t in targets]
    while True:
        snapshot = m.copy()
        changed = False
        for y, x in todo:
            if snapshot[y, x]:
                continue
            for dy, dx in ((-1, 0), (0, -1), (0, 1), (1, 0)):
                yy, xx = y + dy, x + dx
                if 0 <= yy < h and 0 <= xx < w and snapshot[yy, xx] > 0 and \
                        classes[snapshot[yy, xx]] == train_ids[y, x]:
                    m[y, x] = snapshot[yy, xx]
                    changed = True
                    break
        if not changed:
            return m


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 12), st.integers(1, 12))
def test_fill_contours_equals_the_naive_rounds(seed, h, w):
    rng = np.random.default_rng(seed)
    tid = rng.choice(np.array([11, 13], np.uint8), size=(h, w))
    inst = rng.integers(0, 4, (h, w)).astype(np.int32)
    targets = np.flatnonzero(rng.random(h * w) < 0.6)
    inst.ravel()[targets] = 0
    classes = np.array([255, 11, 13, 13], np.uint8)
    expected = naive_fill(inst, targets, tid, classes)
    got = inst.copy()
    n = fill_contours(got, targets, tid, classes)
    assert np.array_equal(got, expected)
    assert n == int(np.count_nonzero(expected.ravel()[targets]))


def test_instance_ranges_group_positions_by_label():
    labels = np.array([3, 0, 1, 3, 2, 1, 3])
    chosen = np.array([False, True, False, True])
    assert [(k, p.tolist()) for k, p in _instance_ranges(labels, chosen)] == \
        [(1, [2, 5]), (3, [0, 3, 6])]


def test_segment_bboxes_equal_the_extent_of_each_segment():
    from panoptool.postprocess.panoptic import segment_bboxes

    rng = np.random.default_rng(1)
    ids = rng.choice(np.array([0, 7, 26000, 26001, 24005]), size=(23, 31)).astype(np.int32)
    ids[ids == 24005] = 0
    ids[3:5, 20:22] = 24005  # a small segment
    got = segment_bboxes(ids, [26001, 24005, 7, 99])
    for sid in (26001, 24005, 7):
        ys, xs = np.nonzero(ids == sid)
        assert got[sid] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
    assert got[99] == [0, 0, 0, 0]
    assert list(got) == [26001, 24005, 7, 99]


def test_kernels_compile_without_a_writable_cache_folder(monkeypatch):
    """Where numba finds no cache folder it raises at decoration; the kernels then compile
    without the cache instead of making the package unimportable."""
    import numba

    real = numba.njit

    def njit(*args, cache=False, **kwargs):
        if cache:
            raise RuntimeError("cannot cache function 'f': no locator available for file 'x'")
        return real(*args, **kwargs)

    monkeypatch.setattr(numba, "njit", njit)

    from panoptool.io.jit import njit as panoptool_njit

    @panoptool_njit
    def twice(x):
        return 2 * x

    @panoptool_njit(inline=True)
    def thrice(x):
        return 3 * x

    from numba.core.caching import NullCache

    assert twice(21) == 42 and isinstance(twice._cache, NullCache)  # compiled, not cached
    assert thrice(5) == 15 and isinstance(thrice._cache, NullCache)
