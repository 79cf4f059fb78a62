"""The ground truth as runs: counts from runs equal counts from pixels, and the cache keeps
both run orders exactly (panoptool.evaluation.metrics.gt)."""

from __future__ import annotations

import numpy as np
import pytest

from panoptool.evaluation.metrics import gt as gtm
from panoptool.evaluation.metrics.panoptic import rgb_segment_counts
from panoptool.io import rle
from panoptool.io.files import load_arrays, save_arrays


def _blocks(rng, h, w, n, block):
    """A piecewise-constant map: n values in blocks of about ``block`` pixels."""
    small = rng.integers(0, n, size=(max(1, h // block), max(1, w // block)))
    rows = np.minimum(np.arange(h) * small.shape[0] // h, small.shape[0] - 1)
    cols = np.minimum(np.arange(w) * small.shape[1] // w, small.shape[1] - 1)
    return small[rows][:, cols]


def _ground_truth(rng, h, w, block=3):
    labels = np.where(_blocks(rng, h, w, 2, block + 2) == 0, 7, 26).astype(np.uint8)
    inst = np.where(labels == 26, 26000 + _blocks(rng, h, w, 4, block), 7).astype(np.uint16)
    return gtm.segment_ground_truth(labels, inst)


@pytest.mark.parametrize("h,w", [(1, 1), (1, 9), (9, 1), (37, 53), (64, 128)])
def test_counts_from_runs_equal_counts_of_pixels(h, w):
    rng = np.random.default_rng(h * 1000 + w)
    gt = _ground_truth(rng, h, w)
    for pred in (_blocks(rng, h, w, 5, 4), rng.integers(0, 5, size=(h, w)),  # noise
                 np.zeros((h, w))):
        pred = pred.astype(np.uint8)
        want = gtm.pair_counts(gt.segment_index, gt.n_segments, pred, 256)
        assert np.array_equal(gtm.segment_prediction_counts(gt, pred), want)
        # from a ground truth that has only its runs (as read from the cache)
        lazy = gtm.GroundTruth(label_ids=gt.label_ids, instance_ids=gt.instance_ids,
                               areas=gt.areas, row_runs=gt.row_runs, shape=gt.shape)
        assert np.array_equal(gtm.segment_prediction_counts(lazy, pred), want)
        assert np.array_equal(lazy.segment_index, gt.segment_index)


def test_piecewise_prediction_is_counted_without_the_full_index_map():
    rng = np.random.default_rng(0)
    gt = _ground_truth(rng, 64, 128, block=32)
    lazy = gtm.GroundTruth(label_ids=gt.label_ids, instance_ids=gt.instance_ids,
                           areas=gt.areas, row_runs=gt.row_runs, shape=gt.shape)
    gtm.segment_prediction_counts(lazy, _blocks(rng, 64, 128, 5, 8).astype(np.uint8))
    colours = np.zeros((64, 128, 3), np.uint8)
    colours[:, 40:, 0] = 5
    counts, _ = rgb_segment_counts(lazy, colours, np.array([5]))
    assert "segment_index" not in vars(lazy)  # never built
    assert counts[:, 1].sum() == 64 * 88


def test_cache_round_trip_keeps_both_run_orders(tmp_path):
    rng = np.random.default_rng(1)
    gt = _ground_truth(rng, 40, 70)
    path = tmp_path / "e.arrays"
    assert gtm.save_cached(path, gt, "k")
    back = gtm.load_cached(path, "k")
    assert back is not None and back.shape == gt.shape
    # both run orders come from the file; the full map is not built until asked for
    assert "column_runs" in vars(back) and "segment_index" not in vars(back)
    assert np.array_equal(back.segment_index, gt.segment_index)
    for got, want in zip(back.column_runs, rle.column_runs(gt.segment_index)):
        assert np.array_equal(got, want)
    for name in ("label_ids", "instance_ids", "areas"):
        assert np.array_equal(getattr(back, name), getattr(gt, name))
    assert gtm.load_cached(path, "other key") is None


@pytest.mark.parametrize("damage", ["short", "unsorted", "value", "negative", "areas"])
def test_a_damaged_cache_entry_is_recomputed_not_used(tmp_path, damage):
    gt = _ground_truth(np.random.default_rng(2), 20, 30)
    path = tmp_path / "e.arrays"
    gtm.save_cached(path, gt, "k")
    data = load_arrays(path)
    if damage == "short":
        data["col_starts"] = data["col_starts"][:-1]
    elif damage == "unsorted":
        data["row_starts"] = data["row_starts"][::-1].copy()
    elif damage == "value":
        data["row_values"] = data["row_values"] + np.uint16(gt.n_segments)
    elif damage == "negative":
        data["col_values"] = data["col_values"].astype(np.int16) - 1
    else:
        data["areas"] = data["areas"][:-1]
    save_arrays(path, **data)
    assert gtm.load_cached(path, "k") is None


def test_a_version_1_entry_beside_is_removed_when_the_entry_is_written(tmp_path):
    gt = _ground_truth(np.random.default_rng(3), 10, 10)
    old = tmp_path / "gt" / "val" / "a.npz"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"version 1")
    path = gtm.cache_path(tmp_path, "val", "a")
    assert path.suffix == ".arrays" and gtm.save_cached(path, gt, "k")
    assert not old.exists()
