"""Another label space plugs in: the metrics, the targets and the derivation read their tables
from the ``labels`` argument, never from the Cityscapes globals.

The toy space has other ids than Cityscapes on purpose: its stuff label ids 1, 4 and 40 are
void or unknown in Cityscapes, its thing label ids 50 and 60 unknown, and its thing train ids
1 and 3 (not contiguous) are Cityscapes' sidewalk and wall (stuff). A module that still read a
Cityscapes table would find no thing, no category or other train ids.
"""

from __future__ import annotations

import numpy as np
import pytest

from panoptool.labels import CITYSCAPES, Category, LabelSpace

VOID, WATER, GRASS, SKY, COW, DOG = 0, 1, 4, 40, 50, 60
TOY = LabelSpace("toy", (
    Category(VOID, "void", 255, "void", 0, False, True, (0, 0, 0)),
    Category(WATER, "water", 0, "nature", 1, False, False, (0, 0, 200)),
    Category(GRASS, "grass", 2, "nature", 1, False, False, (0, 200, 0)),
    Category(SKY, "sky", 4, "sky", 2, False, False, (100, 150, 250)),
    Category(COW, "cow", 1, "animal", 3, True, False, (120, 60, 0)),
    Category(DOG, "dog", 3, "animal", 3, True, False, (200, 100, 50)),
))


def toy_scene() -> tuple[np.ndarray, np.ndarray]:
    """label_ids uint8 (30, 40) and instance_ids int32: sky on top, water and grass below,
    two touching cows (COW*1000 + 0, + 1) and one dog, a void strip."""
    label = np.full((30, 40), SKY, np.uint8)
    label[10:, :20] = WATER
    label[10:, 20:] = GRASS
    label[:, 39] = VOID
    inst = label.astype(np.int32)
    for k, (y, x) in enumerate([(12, 2), (12, 14)]):  # 12 x 12 = 144 px each, touching
        label[y:y + 12, x:x + 12] = COW
        inst[y:y + 12, x:x + 12] = COW * 1000 + k
    label[14:26, 26:37] = DOG
    inst[14:26, 26:37] = DOG * 1000
    return label, inst


def test_toy_space_tables():
    assert TOY.num_classes == 5 and TOY.n_labels == 61
    assert TOY.thing_train_ids == (1, 3) and TOY.stuff_train_ids == (0, 2, 4)
    assert TOY.thing_label_ids == (COW, DOG)
    assert TOY.class_names == ("water", "cow", "grass", "dog", "sky")
    assert TOY.label_to_train[[VOID, WATER, COW, SKY, 7]].tolist() == [255, 0, 1, 4, 255]
    assert TOY.train_to_label[[0, 1, 2, 3, 4, 255]].tolist() == [WATER, COW, GRASS, DOG, SKY, 0]
    assert TOY.stuff_train_to_label[[0, 1, 2, 3, 4]].tolist() == [WATER, 0, GRASS, 0, SKY]
    assert TOY.is_thing_instance_id[[COW * 1000, DOG * 1000 + 5, COW, 26001]].tolist() == [
        True, True, False, False]


def test_targets_use_the_label_space():
    from panoptool.targets.core import compute_targets

    label, inst = toy_scene()
    t = compute_targets(label, inst, labels=TOY)
    assert np.array_equal(t["train_ids"], TOY.label_to_train[label])
    assert len(t["centers_yx"]) == 3  # two cows and a dog
    assert t["contour"][12:24, 13:15].all()  # the boundary between the touching cows
    cs = compute_targets(label, inst)  # the same ids read as Cityscapes: no thing at all
    assert len(cs["centers_yx"]) == 0 and not cs["contour"].any()


def _toy_maps(label: np.ndarray, inst: np.ndarray) -> dict:
    from panoptool.io.formats import decode_offsets
    from panoptool.targets.core import compute_targets

    t = compute_targets(label, inst, labels=TOY)
    offset_yx, _ = decode_offsets(t["instance_index"], t["centers_yx"])
    return {"train_ids": t["train_ids"], "confidence": np.ones(label.shape, np.float32),
            "contour_prob": t["contour"].astype(np.float32), "offset_yx": offset_yx}


def test_derivation_uses_the_label_space():
    from panoptool.postprocess import PostprocessConfig, derive_panoptic
    from panoptool.postprocess.panoptic import coco_categories

    label, inst = toy_scene()
    maps = _toy_maps(label, inst)
    OFF = PostprocessConfig(split=False, merge=False, min_area=0)  # the cows are close
    res = derive_panoptic(**maps, config=OFF, labels=TOY)
    things = res.instances
    assert sorted((s.label_id, s.train_id) for s in things) == [(COW, 1), (COW, 1), (DOG, 3)]
    assert sorted(s.id for s in things) == [COW * 1000, COW * 1000 + 1, DOG * 1000]
    stuff = {s.label_id for s in res.segments if not s.isthing}
    assert stuff == {WATER, GRASS, SKY}
    # every pixel of a class keeps its class: panoptic ids decode to the toy label ids
    pan = res.panoptic_ids
    decoded = np.where(pan >= 1000, pan // 1000, pan)
    known = label != VOID
    assert np.array_equal(decoded[known], label[known])
    assert [c["id"] for c in coco_categories(TOY)] == [WATER, GRASS, SKY, COW, DOG]
    cs = derive_panoptic(**maps, config=OFF)
    assert not cs.instances  # as Cityscapes train ids 1 and 3 are stuff


def test_metrics_use_the_label_space():
    from panoptool.evaluation.metrics import instance, panoptic, semantic
    from panoptool.evaluation.metrics.gt import segment_ground_truth

    label, inst = toy_scene()
    gt = segment_ground_truth(label, inst)
    pred = label.copy()
    pred[:10, :10] = WATER  # 100 sky pixels predicted as water
    s = semantic.compute(semantic.update(gt, pred, labels=TOY), labels=TOY)
    n_sky, n_water = int((label == SKY).sum()), int((label == WATER).sum())
    assert s["iou"].shape == (5,)
    assert s["iou"][0] == pytest.approx(n_water / (n_water + 100))  # train id 0: water
    assert s["iou"][4] == pytest.approx((n_sky - 100) / n_sky)  # train id 4: sky
    assert s["iou"][[1, 2, 3]].tolist() == [1.0, 1.0, 1.0]

    pan_gt = panoptic.panoptic_ground_truth(gt, TOY)
    pred_index = pan_gt.segment_to_gt[gt.segment_index]  # the ground truth as prediction
    p = panoptic.compute(panoptic.update(gt, pan_gt, pred_index, pan_gt.categories,
                                         labels=TOY), TOY)
    assert (p["PQ"], p["PQ_th"], p["PQ_st"], p["n_th"], p["n_st"]) == (1.0, 1.0, 1.0, 2, 3)
    assert WATER in pan_gt.categories  # Cityscapes' 'ego vehicle' (1) would be VOID
    assert WATER not in panoptic.panoptic_ground_truth(gt).categories

    masks = [inst == i for i in (COW * 1000, COW * 1000 + 1, DOG * 1000)]
    pred_inst = instance.PredictedInstances(
        label_ids=np.array([COW, COW, DOG]), scores=np.array([0.9, 0.8, 0.7]),
        areas=np.array([m.sum() for m in masks]),
        segment_overlap=np.stack([instance.mask_segment_overlap(gt, m) for m in masks]))
    a = instance.compute(instance.update(gt, pred_inst, TOY))
    assert a["ap"].tolist() == [1.0, 1.0] and a["AP"] == 1.0


def test_boundary_and_coco_use_the_label_space():
    from panoptool.convert.panoptic import gt_to_panoptic, panoptic_categories
    from panoptool.evaluation.coco import ground_truth_annotations
    from panoptool.evaluation.metrics import boundary
    from panoptool.evaluation.metrics.gt import segment_ground_truth

    label, inst = toy_scene()
    gt_train = TOY.label_to_train[label]
    b = boundary.semantic_compute(boundary.semantic_update(gt_train, gt_train, 2, TOY))
    assert b["iou"].tolist() == [1.0] * 5
    anns = ground_truth_annotations(segment_ground_truth(label, inst), TOY)
    assert [a["category_id"] for a in anns] == [COW, COW, DOG]
    _, segments = gt_to_panoptic(inst.astype(np.uint16), "train", TOY)
    assert {s["id"]: s["category_id"] for s in segments} == {
        WATER: 0, GRASS: 2, SKY: 4, COW * 1000: 1, COW * 1000 + 1: 1, DOG * 1000: 3}
    assert [c["name"] for c in panoptic_categories("label", TOY)] == [
        "water", "grass", "sky", "cow", "dog"]


def test_workers_get_the_label_space_back():
    import pickle

    assert pickle.loads(pickle.dumps(CITYSCAPES)) is CITYSCAPES  # tables already built
    toy = pickle.loads(pickle.dumps(TOY))
    assert toy == TOY and toy is not TOY
    assert np.array_equal(toy.label_to_train, TOY.label_to_train)
