"""Instances from contours: components, classes, scores, contour fill-back."""

from __future__ import annotations

import numpy as np
import pytest

from panoptool.errors import ArrayError, ConfigError
from panoptool.postprocess import PostprocessConfig, derive_panoptic
from panoptool.postprocess.instances import InstanceSums, _pixels_of_classes, fill_contours

CAR, PERSON, ROAD = 13, 11, 0
OFF = PostprocessConfig(split=False, merge=False, min_area=0)


def centred_offsets(instance_map: np.ndarray) -> np.ndarray:
    """(2, H, W) offsets pointing from each pixel to its instance's centroid."""
    h, w = instance_map.shape
    off = np.zeros((2, h, w), np.float32)
    yy, xx = np.mgrid[:h, :w]
    for k in np.unique(instance_map):
        if k == 0:
            continue
        m = instance_map == k
        off[0][m] = yy[m].mean() - yy[m]
        off[1][m] = xx[m].mean() - xx[m]
    return off


def two_cars(contour_cols=(19, 20)):
    """Two touching cars (20 px wide each) on road, a predicted contour between them."""
    h, w = 30, 50
    tid = np.full((h, w), ROAD, np.uint8)
    tid[5:25, 0:40] = CAR
    truth = np.zeros((h, w), np.int32)
    truth[5:25, 0:20] = 1
    truth[5:25, 20:40] = 2
    prob = np.zeros((h, w), np.float32)
    prob[5:25, list(contour_cols)] = 0.9
    return tid, prob, truth


def test_touching_cars_separated_by_contour_become_two_instances():
    tid, prob, truth = two_cars()
    conf = np.full(tid.shape, 0.8, np.float32)
    res = derive_panoptic(tid, conf, prob, centred_offsets(truth), OFF)
    assert len(res.instances) == 2
    # the contour pixels are given back: each car gets exactly its own pixels
    for k in (1, 2):
        got = res.instance_ids == k
        best = max(np.logical_and(got, truth == t).sum() for t in (1, 2))
        assert best == got.sum() == 400
    assert [s.label_id for s in res.instances] == [26, 26]
    assert [s.id for s in res.instances] == [26000, 26001]
    assert res.instances[0].score == pytest.approx(0.8)


def test_without_contour_they_stay_one_and_fill_can_be_switched_off():
    tid, prob, truth = two_cars()
    res = derive_panoptic(tid, np.ones(tid.shape, np.float32), np.zeros_like(prob),
                          centred_offsets(truth), OFF)
    assert len(res.instances) == 1
    res = derive_panoptic(tid, np.ones(tid.shape, np.float32), prob, centred_offsets(truth),
                          PostprocessConfig(split=False, merge=False, min_area=0,
                                            fill_contours=False))
    assert (res.instance_ids[5:25, 19:21] == 0).all()
    assert (res.panoptic_ids[5:25, 19:21] == 0).all()  # void, not stuff
    assert sum(s.area for s in res.instances) == 800 - 40


def test_class_majority_score_and_panoptic_ids():
    tid = np.full((10, 10), ROAD, np.uint8)
    tid[2:8, 2:8] = CAR
    tid[2, 2:5] = 14  # truck pixels inside the car component
    tid[9, :] = 255  # ignore
    conf = np.full(tid.shape, 0.5, np.float32)
    conf[tid == CAR] = 0.9
    res = derive_panoptic(tid, conf, np.zeros(tid.shape, np.float32),
                          np.zeros((2, 10, 10), np.float32), OFF)
    (car,) = res.instances
    assert car.train_id == CAR and car.label_id == 26 and car.area == 36
    assert car.score == pytest.approx(0.9)  # mean over the car-class pixels only
    assert (res.panoptic_ids[tid == CAR] == 26000).all()
    assert (res.panoptic_ids[9] == 0).all()
    road = [s for s in res.segments if not s.isthing]
    assert [(s.id, s.area) for s in road] == [(7, 100 - 36 - 10)]


def test_fill_contours_is_class_aware_and_geodesic():
    m = np.array([[1, 0, 0, 0, 0, 2]], np.int32)
    tid = np.array([[13, 13, 13, 11, 11, 11]], np.uint8)
    got = fill_contours(m, np.array([1, 2, 3, 4]), tid, np.array([255, 13, 11], np.uint8))
    assert m.tolist() == [[1, 1, 1, 2, 2, 2]]
    assert got == 4
    # a pixel of another class than every neighbour instance stays unlabelled
    m = np.array([[1, 0, 1]], np.int32)
    fill_contours(m, np.array([1]), np.array([[13, 11, 13]], np.uint8),
                  np.array([255, 13], np.uint8))
    assert m.tolist() == [[1, 0, 1]]


def test_majority_and_compact():
    pixels = _pixels_of_classes([11, 11, 14])
    assert InstanceSums.measure(np.array([2, 2, 0]), pixels, 2).classes().tolist() == \
        [255, 255, 11]
    labels = np.array([0, 5, 9, 5])
    stats = InstanceSums.measure(labels, _pixels_of_classes([11, 13, 13, 13]), 9)
    assert stats.compacted(labels)[0].tolist() == [0, 1, 2, 1]


@pytest.mark.parametrize("kwargs", [dict(connectivity=6), dict(contour_threshold=1.0),
                                    dict(eps=0), dict(cell=30), dict(min_area=-1),
                                    dict(min_samples=0), dict(split="yes")])
def test_config_validation(kwargs):
    with pytest.raises(ConfigError):
        PostprocessConfig(**kwargs)


def test_array_validation_names_the_argument():
    tid = np.zeros((4, 4), np.uint8)
    ok = np.zeros((4, 4), np.float32)
    with pytest.raises(ArrayError, match="offset_yx"):
        derive_panoptic(tid, ok, ok, np.zeros((4, 4), np.float32))
    with pytest.raises(ArrayError, match="train_ids"):
        derive_panoptic(tid.astype(np.int32), ok, ok, np.zeros((2, 4, 4), np.float32))


def test_empty_image_has_no_instances():
    tid = np.full((8, 8), ROAD, np.uint8)
    res = derive_panoptic(tid, np.ones((8, 8), np.float32), np.zeros((8, 8), np.float32),
                          np.zeros((2, 8, 8), np.float32))
    assert res.instances == () and (res.instance_ids == 0).all()
    assert [s.id for s in res.segments] == [7]
