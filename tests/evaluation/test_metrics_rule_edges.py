"""Every evaluator rule at its edge, panoptool against the official evaluators (1e-6).

The scenes are in :mod:`rule_edges` (three 128x256 images). Besides the comparison, each test
checks that the scene really sits on the edge it claims (the counts that a rule change would
move), so that the scenes cannot drift into cases where every rule agrees.
"""

import numpy as np
import pytest

from panoptool.evaluation.metrics import instance, panoptic, semantic

from official import (compare_instance, compare_panoptic, compare_semantic, official_instance,
                      official_panoptic, official_semantic, summed_stats)
from rule_edges import CAR, PERSON, ROAD, SPLIT, write_edge_dataset


@pytest.fixture(scope="module")
def edge_case(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rule_edges")
    write_edge_dataset(tmp / "root", tmp / "res")
    return tmp / "root", tmp / "res", tmp / "work"


@pytest.fixture(scope="module")
def ours(edge_case):
    root, res, _ = edge_case
    return summed_stats(root, SPLIT, res)


def test_panoptic_edges_equal_official(edge_case, ours):
    root, res, work = edge_case
    assert compare_panoptic(ours.panoptic, official_panoptic(root, SPLIT, res, work / "p")) > 60


def test_instance_edges_equal_official(edge_case, ours):
    root, res, work = edge_case
    assert compare_instance(ours.instance, official_instance(root, SPLIT, res, work / "i")) > 90


def test_semantic_edges_equal_official(edge_case, ours):
    root, res, work = edge_case
    assert compare_semantic(ours.semantic, official_semantic(root, SPLIT, res, work / "s")) > 30


def test_panoptic_scene_counts(ours):
    """The counts each rule decides, by hand from scene A/B/C."""
    st = ours.panoptic
    # car FPs: IoU-0.5 blob, 45 and 50 % on VOID (2), 45 and 50 % on car crowd (2), all five
    # on the person crowd (another category's crowd), none of 55..65 %, mixed, ego 1 / 1000
    assert st.fp[CAR] == 1 + 2 + 2 + 5
    # car TP: 26001 (IoU 0.51), 26002 (IoU 0.55 with VOID out of the union), 9 in B, 1 in C
    assert st.tp[CAR] == 2 + 9 + 1
    # car FN: 26000 (IoU 0.5 exactly) and 26003 (predicted as truck); crowds are never FN
    assert st.fn[CAR] == 2
    assert st.fp[PERSON] == 2  # 45 and 50 % on the person crowd
    assert st.fp[12] == 0 and st.tp[12] == 0  # wall 55 % on VOID: ignored, wall absent
    res = panoptic.compute(st)
    assert res["n"] == 9  # road, sidewalk, person, car, truck, train, motorcycle, bicycle, bus
    # the first car blob's IoU is 0.5 exactly: 50 / (100 + 50 - 50)
    assert st.iou[CAR] == pytest.approx(0.51 + 0.55 + 9 + 1)


def test_instance_scene_counts(ours):
    st = ours.instance
    car = instance.INSTANCE_LABEL_IDS.index(CAR)
    sel0 = (st.cls == car) & (st.thr == 0)
    scores = sorted(zip(st.score[sel0].tolist(), st.true[sel0].tolist()))
    # t = 0.5: TPs 26002 (100 px), 26003 (101), 26004 (105), 26005 (0.9), 26007 (0.75),
    # 26008 (0.9), C's car, A's 26000; the 99-px car's prediction is ignored, not a TP
    assert [s for s, t in scores if t] == [0.5, 0.6, 0.65, 0.66, 0.7, 0.8, 0.9, 0.9]
    # FPs at t = 0.5: duplicate 0.4, IoU-0.5 box 0.55, 50 %-void box 0.5, caravan 0.3, two
    # on id 1000 (0.8 in A, 0.2 in B), the mask listed twice (last line: car 0.25); ignored:
    # 60 / 70 % on void, 60 % on the small group (counted twice), on id 1
    assert sorted(s for s, t in scores if not t) == [0.2, 0.25, 0.3, 0.4, 0.5, 0.55, 0.8]
    # hard FN at t = 0.5: 26006 (IoU 0.5) only (26000 of 95 px is small); A: 26001..26003
    assert st.hard_fn[car, 0] == 1 + 3
    # at t = 0.6 the 60 %-void box and the small-group box become FPs (share <= t)
    sel2 = (st.cls == car) & (st.thr == 2)
    assert sorted(st.score[sel2 & ~st.true].tolist()) == [0.2, 0.25, 0.3, 0.4, 0.45, 0.5, 0.5,
                                                          0.55, 0.8]
    res = instance.compute(st)
    ids = instance.INSTANCE_LABEL_IDS
    assert np.isnan(res["ap"][ids.index(33)])           # bicycle: only a 99-px instance
    assert res["ap_matrix"][ids.index(32)].tolist() == [1.0] * 10  # motorcycle: 100 px
    assert res["ap"][ids.index(28)] == 0.0              # bus: never predicted
    assert res["ap"][ids.index(31)] == 0.0              # train: an FP in another image
    assert np.isnan(res["ap"][ids.index(27)])           # truck: no ground truth
    assert np.isnan(res["ap"][ids.index(25)])           # rider: nothing


def test_semantic_scene_counts(ours):
    conf = ours.semantic.confusion
    assert conf[0, ROAD] == 20 * 96     # VOID predicted as road: counted, not an FP
    res = semantic.compute(ours.semantic)
    train_wall = 3  # wall's train id
    assert res["iou"][train_wall] == 0.0  # predicted, absent from the ground truth
    # iIoU counts car 26000 (id > 1000) of scene B: its tp weight is positive
    assert ours.semantic.tp_weighted[CAR] > 0
