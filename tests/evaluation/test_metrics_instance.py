"""Instance metrics (AP, AP50): unit checks and the official oracle."""

import numpy as np
import pytest

from panoptool.evaluation.metrics import gt as gtm
from panoptool.evaluation.metrics import instance

from official import (SCENARIOS, checks_against_official, compare_instance, make_results,
                      official_instance, result_cases, summed_stats)


def _pred(gt, masks, labels, scores):
    overlaps = np.stack([instance.mask_segment_overlap(gt, m) for m in masks])
    return instance.PredictedInstances(np.array(labels), np.array(scores, float),
                                       overlaps.sum(axis=1), overlaps)


def _scene():
    inst = np.full((40, 40), 7, np.int32)
    inst[0:20, 0:20] = 26001   # 400 px car
    inst[20:40, 20:40] = 26002  # 400 px car
    inst[0:5, 30:35] = 26003    # 25 px car: too small, ignored
    inst[30:40, 0:10] = 26      # car group (crowd)
    inst[20:30, 0:10] = 0       # void
    label = np.where(inst >= 1000, inst // 1000, inst).astype(np.uint8)
    return gtm.segment_ground_truth(label, inst), inst


def test_perfect_is_one():
    gt, inst = _scene()
    pred = _pred(gt, [inst == 26001, inst == 26002], [26, 26], [0.9, 0.8])
    res = instance.compute(instance.update(gt, pred))
    car = instance.INSTANCE_LABEL_IDS.index(26)
    assert np.allclose(res["ap_matrix"][car], 1.0)
    assert np.isnan(res["ap"][0])  # no person in the ground truth
    assert res["AP"] == 1.0


def test_ignored_predictions_and_duplicates():
    gt, inst = _scene()
    masks = [inst == 26001, inst == 26001, inst == 26, inst == 0, inst == 26003,
             (inst == 7) & (np.arange(40)[None, :] >= 36)]
    pred = _pred(gt, masks, [26] * 6, [0.5, 0.9, 0.7, 0.7, 0.7, 0.95])
    stats = instance.update(gt, pred)
    car = instance.INSTANCE_LABEL_IDS.index(26)
    sel = (stats.cls == car) & (stats.thr == 0)
    # tp 0.9 for car 1; fp: the duplicate 0.5 and the road strip 0.95; group, void and
    # small-instance predictions are ignored
    assert sorted(zip(stats.score[sel].tolist(), stats.true[sel].tolist())) == [
        (0.5, False), (0.9, True), (0.95, False)]
    assert stats.hard_fn[car, 0] == 1  # car 2 missed


def test_issue_89_all_predictions_ignored_gives_zero():
    gt, inst = _scene()
    pred = _pred(gt, [inst == 26, inst == 0], [26, 26], [0.5, 0.6])
    res = instance.compute(instance.update(gt, pred))
    car = instance.INSTANCE_LABEL_IDS.index(26)
    assert np.all(res["ap_matrix"][car] == 0.0)  # official: IndexError


def test_average_precision_ties_order_free():
    y = np.array([1, 0, 1, 0, 1], bool)
    s = np.array([0.5, 0.5, 0.9, 0.5, 0.1])
    a = instance.average_precision(y, s, 2)
    perm = np.array([4, 2, 0, 3, 1])
    assert instance.average_precision(y[perm], s[perm], 2) == a
    assert 0 < a < 1


@pytest.fixture(scope="module")
def oracle_cases(make_synth, tmp_path_factory):
    return result_cases(make_synth, tmp_path_factory, "ins", SCENARIOS, 3, extra_noisy=(11, 12))


def test_equals_official(oracle_cases):
    assert checks_against_official(oracle_cases, "instance", official_instance, compare_instance) > 500


def test_order_invariant(make_synth, tmp_path):
    root = make_synth(n=3)
    res = make_results(root, "val", tmp_path / "res", "noisy", seed=5)
    a = instance.compute(summed_stats(root, "val", res).instance)
    b = instance.compute(summed_stats(root, "val", res, order=[2, 0, 1]).instance)
    np.testing.assert_allclose(a["ap_matrix"], b["ap_matrix"], rtol=0, atol=1e-12)


def test_issue_89_official_crashes_where_panoptool_gives_zero(make_synth, tmp_path):
    """Only predictions on person crowd regions: all ignored, none matched."""
    from panoptool.io import formats
    from panoptool.io.cityscapes import list_samples, read_ground_truth
    from panoptool.io.files import write_png

    root = make_synth(n=3)
    res = tmp_path / "res"
    for s in list_samples(root, "val"):
        _, inst = read_ground_truth(s)
        lines = []
        if (inst == 24).any():
            rel = formats.instance_mask_relpath(s.stem, 0)
            write_png(res / "instance" / rel, (inst == 24).astype(np.uint8) * 255)
            lines.append(f"{rel} 24 0.5\n")
        txt = formats.instance_txt_path(res, s.stem)
        txt.parent.mkdir(parents=True, exist_ok=True)
        txt.write_text("".join(lines))
    assert lines, "the synthetic data should have a person crowd region"
    with pytest.raises(IndexError):
        official_instance(root, "val", res, tmp_path / "work")
    out = instance.compute(summed_stats(root, "val", res).instance)
    person = instance.INSTANCE_LABEL_IDS.index(24)
    assert np.all(out["ap_matrix"][person] == 0.0)
    assert np.isnan(out["ap"][instance.INSTANCE_LABEL_IDS.index(31)])  # no train at all
