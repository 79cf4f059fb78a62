"""Panoptic metrics (PQ, SQ, RQ): unit checks and the official oracle."""

import numpy as np
import pytest

from panoptool.evaluation.metrics import gt as gtm
from panoptool.evaluation.metrics import panoptic

from official import (SCENARIOS, checks_against_official, compare_panoptic, make_results,
                      official_panoptic, result_cases, summed_stats)


def _gt(inst):
    inst = np.asarray(inst, np.int32)
    label = np.where(inst >= 1000, inst // 1000, inst).astype(np.uint8)
    return gtm.segment_ground_truth(label, inst)


def test_conversion_rules():
    gt = _gt([[7, 7, 26001, 26002], [24, 0, 29, 26]])
    pan = panoptic.panoptic_ground_truth(gt)
    # void (0) and caravan (29, ignoreInEval) are dropped; crowd = thing label without id
    assert pan.ids.tolist() == [7, 24, 26, 26001, 26002]
    assert pan.iscrowd.tolist() == [False, True, True, False, False]
    assert pan.categories.tolist() == [7, 24, 26, 26, 26]


def test_pq_by_hand():
    inst = np.full((10, 10), 7, np.int32)
    inst[:, 5:] = 26001
    gt = _gt(inst)
    pan = panoptic.panoptic_ground_truth(gt)
    pred = np.ones((10, 10), np.int64)
    pred[:, 4:] = 2  # car grown by one column: IoU 50/60
    stats = panoptic.update(gt, pan, pred, np.array([7, 26]))
    res = panoptic.compute(stats)
    road, car = panoptic.CATEGORY_IDS.index(7), panoptic.CATEGORY_IDS.index(26)
    assert res["pq"][car] == pytest.approx(50 / 60)
    assert res["pq"][road] == pytest.approx(40 / 50)
    assert res["n"] == 2 and res["n_th"] == 1
    assert np.isnan(res["pq"][1])


def test_fp_on_crowd_is_ignored_and_pq_is_sq_times_rq(make_synth, tmp_path):
    inst = np.full((10, 10), 7, np.int32)
    inst[:, 5:] = 26
    gt = _gt(inst)
    pan = panoptic.panoptic_ground_truth(gt)
    pred = np.ones((10, 10), np.int64)
    pred[:, 5:] = 2
    res = panoptic.compute(panoptic.update(gt, pan, pred, np.array([7, 26])))
    assert res["n_th"] == 0 and np.isnan(res["PQ_th"])  # official: ZeroDivisionError
    root = make_synth(n=3)
    out = make_results(root, "val", tmp_path / "res", "noisy", seed=2)
    res = panoptic.compute(summed_stats(root, "val", out).panoptic)
    ok = ~np.isnan(res["pq"])
    np.testing.assert_allclose(res["pq"][ok], (res["sq"] * res["rq"])[ok], atol=1e-12)


@pytest.fixture(scope="module")
def oracle_cases(make_synth, tmp_path_factory):
    return result_cases(make_synth, tmp_path_factory, "pan", SCENARIOS + ("noisy",), 0)


def test_equals_official(oracle_cases):
    assert checks_against_official(oracle_cases, "panoptic", official_panoptic, compare_panoptic) > 400
