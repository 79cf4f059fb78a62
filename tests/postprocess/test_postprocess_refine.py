"""Refinement by predicted centres: split, merge, min-area; fast vs per-pixel DBSCAN."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from panoptool.postprocess import PostprocessConfig, derive_panoptic
from panoptool.postprocess.refine import dbscan_clusters, grid_clusters
from test_postprocess_instances import CAR, PERSON, ROAD, centred_offsets

def run(tid, prob, truth, **kw):
    conf = np.ones(tid.shape, np.float32)
    return derive_panoptic(tid, conf, prob, centred_offsets(truth), PostprocessConfig(**kw))


def same_partition(instance_ids, truth):
    """Every truth instance is exactly one predicted instance and vice versa."""
    pairs = set(zip(instance_ids[truth > 0].tolist(), truth[truth > 0].tolist()))
    return len(pairs) == len({p for p, _ in pairs}) == len({t for _, t in pairs}) and \
        all(p > 0 for p, _ in pairs)


def wide_cars():
    """Two touching cars of 40x60 px on road, and an empty contour map to draw on."""
    h, w = 60, 140
    tid = np.full((h, w), ROAD, np.uint8)
    tid[10:50, 10:130] = CAR
    truth = np.zeros((h, w), np.int32)
    truth[10:50, 10:70] = 1
    truth[10:50, 70:130] = 2
    return tid, truth, np.zeros((h, w), np.float32)


def test_pole_cutting_a_car_is_merged_back_by_the_offsets():
    h, w = 60, 120
    tid = np.full((h, w), ROAD, np.uint8)
    tid[10:50, 10:110] = CAR
    tid[:, 58:62] = 5  # a pole (stuff) in front of the car
    truth = np.zeros((h, w), np.int32)
    truth[10:50, 10:110] = 1
    truth[tid != CAR] = 0
    # offsets of both halves point to the centre of the whole car
    prob = np.zeros((h, w), np.float32)
    unmerged = run(tid, prob, truth, merge=False, min_area=0)
    assert len(unmerged.instances) == 2
    merged = run(tid, prob, truth, min_area=0)
    assert len(merged.instances) == 1
    assert merged.instances[0].area == int((truth == 1).sum())


def test_car_joined_to_its_neighbour_by_a_broken_contour_is_split():
    tid, truth, prob = wide_cars()
    prob[10:35, 69:71] = 1.0  # the contour is broken over its lower part
    unsplit = run(tid, prob, truth, split=False, min_area=0)
    assert len(unsplit.instances) == 1
    res = run(tid, prob, truth, min_area=0)
    assert len(res.instances) == 2
    assert same_partition(res.instance_ids, truth)


def test_tiny_fragment_is_absorbed_by_the_right_neighbour():
    tid, truth, prob = wide_cars()
    prob[10:50, 69:71] = 1.0  # contour between the cars ...
    prob[10:50, 74] = 1.0  # ... and a spurious one that cuts a sliver off the right car
    frag = run(tid, prob, truth, merge=False, min_area=0, fill_contours=False)
    assert len(frag.instances) == 3
    res = run(tid, prob, truth, merge=False, min_area=200)  # the sliver has 120 px
    assert len(res.instances) == 2
    # the sliver (columns 71..73) belongs to the right car, whose centre it points to
    right = res.instance_ids[30, 100]
    assert (res.instance_ids[10:50, 71:74] == right).all()
    assert same_partition(res.instance_ids, truth)


def test_small_instance_without_a_same_class_neighbour_is_dropped():
    tid = np.full((40, 80), ROAD, np.uint8)
    tid[5:35, 5:45] = CAR
    tid[10:14, 60:64] = PERSON
    truth = np.zeros(tid.shape, np.int32)
    truth[5:35, 5:45] = 1
    truth[10:14, 60:64] = 2
    res = run(tid, np.zeros(tid.shape, np.float32), truth, min_area=50)
    assert [s.train_id for s in res.instances] == [CAR]
    assert (res.panoptic_ids[10:14, 60:64] == 0).all()


def blobs(rng, centres, n_per, spread, strays=0, box=200):
    pts = [rng.normal(c, spread, (n_per, 2)) for c in centres]
    if strays:
        pts.append(rng.uniform(0, box, (strays, 2)))
    p = np.concatenate(pts)
    return p[:, 0], p[:, 1]


@pytest.mark.parametrize("seed", range(6))
def test_grid_clusters_agree_with_per_pixel_dbscan(seed):
    rng = np.random.default_rng(seed)
    k = 1 + seed % 3
    centres = [rng.uniform(40, 160, 2) for _ in range(k)]
    # well separated centres (as the method needs); tight clouds plus stray votes
    while any(np.hypot(*(a - b)) < 60 for i, a in enumerate(centres) for b in centres[:i]):
        centres = [rng.uniform(40, 160, 2) for _ in range(k)]
    cy, cx = blobs(rng, centres, 600, 3.0, strays=40)
    fast, kf = grid_clusters(cy, cx, (0, 0, 200, 200), eps=20, min_samples=100, cell=4)
    slow, ks = dbscan_clusters(cy, cx, eps=20, min_samples=100)
    assert kf == ks == k
    assert adjusted_rand_score(slow, fast) > 0.99


def test_grid_clusters_no_core_means_no_split():
    rng = np.random.default_rng(0)
    cy, cx = rng.uniform(0, 400, 300), rng.uniform(0, 400, 300)
    clusters, k = grid_clusters(cy, cx, (0, 0, 400, 400), eps=20, min_samples=100, cell=4)
    assert k == 1 and (clusters == 0).all()


def test_small_genuine_instance_is_not_given_to_a_far_instance_of_its_class():
    """A small car far from the big one points to its own centre: removing it must not
    hand its pixels to the big car (they become void), which keeps the big car exact."""
    tid = np.full((60, 160), ROAD, np.uint8)
    tid[5:55, 5:85] = CAR
    tid[20:30, 130:140] = CAR
    truth = np.zeros(tid.shape, np.int32)
    truth[5:55, 5:85] = 1
    truth[20:30, 130:140] = 2
    res = run(tid, np.zeros(tid.shape, np.float32), truth, min_area=200)
    assert len(res.instances) == 1
    assert res.instances[0].area == 50 * 80
    assert (res.panoptic_ids[20:30, 130:140] == 0).all()


def test_pair_components_large_graphs_match_the_small_graph_path(monkeypatch):
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from panoptool.postprocess import refine

    rng = np.random.default_rng(0)
    n = 3000
    pairs = rng.integers(0, n, (2500, 2))
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    ref_k, ref = connected_components(graph, directed=False)
    for threshold in (10 ** 9, 100):  # label propagation, then scipy, on the same graph
        monkeypatch.setattr(refine, "_SPARSE_PAIRS", threshold)
        k, comp = refine.pair_components(n, pairs)
        assert k == ref_k and np.array_equal(comp, ref)
