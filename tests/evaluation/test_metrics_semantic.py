"""Semantic metrics (mIoU, iIoU): unit checks on hand-made arrays and the official oracle."""

import numpy as np
import pytest

from panoptool.evaluation.metrics import gt as gtm
from panoptool.evaluation.metrics import semantic

from official import (SCENARIOS, checks_against_official, compare_semantic, make_results,
                      official_semantic, result_cases, summed_stats)


def _gt(label_ids, instance_ids=None):
    label_ids = np.asarray(label_ids, np.uint8)
    if instance_ids is None:
        instance_ids = label_ids.astype(np.int32)
    return gtm.segment_ground_truth(label_ids, np.asarray(instance_ids, np.int32))


def test_iou_by_hand():
    # road (7) 4 px, car (26) 2 px, void (0) 2 px
    gt = _gt([[7, 7, 7, 7], [26, 26, 0, 0]], [[7, 7, 7, 7], [26001, 26001, 0, 0]])
    pred = np.array([[7, 7, 7, 26], [26, 0, 7, 26]], np.uint8)
    res = semantic.compute(semantic.update(gt, pred))
    road, car = 0, 13  # train ids
    # road: tp 3, fn 1 (predicted car), fp 0 (the 7 on void does not count)
    assert res["iou"][road] == pytest.approx(3 / 4)
    # car: tp 1, fn 1 (predicted 0), fp 1 (road pixel; the car on void does not count)
    assert res["iou"][car] == pytest.approx(1 / 3)
    assert np.isnan(res["iou"][1])  # sidewalk absent
    assert res["mIoU"] == pytest.approx((3 / 4 + 1 / 3) / 2)
    # iIoU car: instance of 2 px, weight avg/2, tp 1, fn 1, fp 1 unweighted
    w = 12794.0202738185 / 2
    assert res["iiou"][car] == pytest.approx(w / (w + 1 + w))
    assert np.isnan(res["iiou"][road])


def test_stats_add_and_counts():
    gt = _gt([[7, 8], [26, 26]])
    a = semantic.update(gt, np.array([[7, 8], [26, 7]], np.uint8))
    b = semantic.update(gt, np.array([[8, 8], [26, 26]], np.uint8))
    total = a + b
    assert total.n_images == 2
    assert total.confusion.sum() == 8
    assert total.confusion[7, 7] == 1 and total.confusion[7, 8] == 1


def test_unknown_prediction_ids_detected():
    gt = _gt([[7, 8]])
    counts = semantic.segment_prediction_counts(gt, np.array([[7, 40]], np.uint8))
    assert semantic.unknown_prediction_ids(counts) == [40]


@pytest.fixture(scope="module")
def oracle_cases(make_synth, tmp_path_factory):
    return result_cases(make_synth, tmp_path_factory, "sem", SCENARIOS, 7)


def test_equals_official(oracle_cases):
    assert checks_against_official(oracle_cases, "semantic", official_semantic, compare_semantic) > 100


def test_perfect_is_100(make_synth, tmp_path):
    root = make_synth(n=3)
    res = make_results(root, "val", tmp_path / "res", "perfect")
    out = semantic.compute(summed_stats(root, "val", res).semantic)
    assert out["mIoU"] == 1.0 and out["iIoU"] == 1.0
