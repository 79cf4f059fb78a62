"""Boundary IoU / Boundary PQ (panoptool.evaluation.metrics.boundary) against plain references written
here: per-pixel loops for a mask's boundary, and the authors' Boundary-PQ rules
(boundary_iou/cityscapes_panoptic_api) as a loop over segment pairs."""

import math

import cv2
import numpy as np
import pytest

from panoptool.labels import IGNORE, LABEL_TO_TRAIN, NUM_CLASSES
from panoptool.evaluation.metrics import boundary, gt as gtm, panoptic


def plain_boundary(mask: np.ndarray, d: int) -> np.ndarray:
    """The pixels of ``mask`` within chessboard distance d of a pixel outside it, the image
    padded by one pixel outside the mask (so pixels within d - 1 of the border count)."""
    h, w = mask.shape
    out = np.zeros_like(mask, dtype=bool)
    for y in range(h):
        for x in range(w):
            if not mask[y, x]:
                continue
            if min(y, x, h - 1 - y, w - 1 - x) <= d - 1:
                out[y, x] = True
            elif not mask[y - d: y + d + 1, x - d: x + d + 1].all():
                out[y, x] = True
    return out


def paper_boundary(mask: np.ndarray, d: int) -> np.ndarray:
    """The reference's rule: mask - erode(pad(mask, 1), 3x3, d iterations)."""
    h, w = mask.shape
    m = mask.astype(np.uint8)
    pad = cv2.copyMakeBorder(m, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(pad, np.ones((3, 3), np.uint8), iterations=d)[1:h + 1, 1:w + 1]
    return (m - eroded) > 0


def plain_iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / (a | b).sum()


def blocky_labels(rng, h, w, k, cell, dtype=np.uint8):
    small = rng.integers(0, k, (h // cell + 1, w // cell + 1))
    return np.kron(small, np.ones((cell, cell), int))[:h, :w].astype(dtype)


# --- the boundary of a mask ----------------------------------------------------------------

def test_width_is_rounded_like_the_reference():
    assert boundary.boundary_width((1024, 2048)) == round(0.02 * math.hypot(1024, 2048)) == 46
    assert boundary.boundary_width((10, 10), 0.01) == 1  # at least 1
    assert boundary.boundary_width((3, 4), 0.5) == 2  # 2.5 rounds half to even
    assert boundary.boundary_width((3, 4), 0.7) == 4  # 3.5 -> 4
    with pytest.raises(ValueError):
        boundary.boundary_width((3, 4), 0.0)


def test_band_of_a_square_by_hand():
    mask = np.zeros((7, 8), np.uint8)
    mask[1:6, 1:7] = 1  # 5x6 block on background 0
    band = boundary.boundary_band(mask, 2)
    square = band & (mask == 1)
    # d = 2: only pixels at chessboard distance >= 2 from the background survive erosion:
    # rows 3, columns 3..4
    expect = mask.astype(bool).copy()
    expect[3, 3:5] = False
    assert np.array_equal(square, expect)
    # the background's own boundary: every background pixel touches the block or the border
    assert band[mask == 0].all()


@pytest.mark.parametrize("seed", range(6))
def test_band_equals_plain_loops_and_the_papers_erosion(seed):
    rng = np.random.default_rng(seed)
    for _ in range(15):
        h, w = (int(v) for v in rng.integers(1, 24, 2))
        k = int(rng.integers(1, 5))
        cell = int(rng.integers(1, 5))
        dtype = np.uint16 if seed % 2 else np.uint8
        labels = blocky_labels(rng, h, w, k, cell, dtype) * (300 if dtype == np.uint16 else 1)
        d = int(rng.integers(1, 7))
        band = boundary.boundary_band(labels, d)
        for v in np.unique(labels):
            mask = labels == v
            ref = plain_boundary(mask, d)
            assert np.array_equal(ref, paper_boundary(mask, d))
            assert np.array_equal(band & mask, ref), (h, w, d, v)


def test_mask_with_itself_has_boundary_iou_one():
    rng = np.random.default_rng(3)
    labels = blocky_labels(rng, 40, 60, 4, 5)
    train = np.array([0, 13, 11, IGNORE], np.uint8)[labels]
    res = boundary.semantic_compute(boundary.semantic_update(train, train, 3))
    present = [0, 11, 13]
    assert np.allclose(res["iou"][present], 1.0)
    assert np.isnan(np.delete(res["iou"], present)).all()
    assert res["mean"] == 1.0


# --- semantic Boundary IoU ---------------------------------------------------------------------

def plain_semantic(gt_t, pred_t, d):
    """Per class: boundary of the class mask in each map, counted where gt is not ignored."""
    valid = gt_t != IGNORE
    inter = np.zeros(NUM_CLASSES, np.int64)
    union = np.zeros(NUM_CLASSES, np.int64)
    for c in range(NUM_CLASSES):
        bg = plain_boundary(gt_t == c, d) & valid
        bp = plain_boundary(pred_t == c, d) & valid
        inter[c] = (bg & bp).sum()
        union[c] = (bg | bp).sum()
    return inter, union


@pytest.mark.parametrize("seed", range(4))
def test_semantic_boundary_iou_equals_plain_reference(seed):
    rng = np.random.default_rng(10 + seed)
    h, w = 24, 36
    classes = np.array([0, 1, 13, 11, IGNORE], np.uint8)
    gt_t = classes[blocky_labels(rng, h, w, 5, 4)]
    pred_t = gt_t.copy()
    flip = rng.random((h, w)) < 0.15
    pred_t[flip] = classes[rng.integers(0, 5, flip.sum())]
    total = boundary.BoundarySemanticStats()
    ref_i = np.zeros(NUM_CLASSES, np.int64)
    ref_u = np.zeros(NUM_CLASSES, np.int64)
    for d in (1, 2, 3):
        stats = boundary.semantic_update(gt_t, pred_t, d)
        i, u = plain_semantic(gt_t, pred_t, d)
        assert np.array_equal(stats.intersection, i) and np.array_equal(stats.union, u)
        total = total + stats
        ref_i += i
        ref_u += u
    res = boundary.semantic_compute(total)
    with np.errstate(invalid="ignore"):
        ref = np.where(ref_u > 0, ref_i / np.maximum(ref_u, 1), np.nan)
    assert np.allclose(res["iou"], ref, equal_nan=True)
    assert res["mean"] == pytest.approx(np.nanmean(ref), abs=1e-12)
    assert total.n_images == 3


def test_semantic_boundary_iou_by_hand():
    # 6x8: class 0 left half, class 1 right half; the prediction moves the split one column
    gt_t = np.zeros((6, 8), np.uint8)
    gt_t[:, 4:] = 1
    pred_t = np.zeros((6, 8), np.uint8)
    pred_t[:, 5:] = 1
    stats = boundary.semantic_update(gt_t, pred_t, 1)
    # d = 1: a class's boundary = its pixels on the image border or next to the other class.
    # gt class 0 (cols 0-3): border ring + column 3 -> 24 - 8 (inner 4x2 at rows 1-4,
    # cols 1-2) = 16; pred class 0 (cols 0-4): 30 - 4*3 (rows 1-4, cols 1-3) = 18;
    # both: gt class-0 boundary pixels that are pred class-0 boundary: all but column 3's
    # rows 1-4 (pred has them inside) -> 16 - 4 = 12.
    assert stats.intersection[0] == 12 and stats.union[0] == 16 + 18 - 12
    assert stats.intersection[0] / stats.union[0] == pytest.approx(12 / 22)


def test_ignored_ground_truth_is_not_counted():
    gt_t = np.full((5, 5), IGNORE, np.uint8)
    gt_t[1:4, 1:4] = 2
    pred_t = np.full((5, 5), 2, np.uint8)  # class 2 everywhere: its boundary is the frame
    stats = boundary.semantic_update(gt_t, pred_t, 1)
    # gt class 2 boundary: the 8 ring pixels of the 3x3; the prediction's frame lies on
    # ignored pixels only, so it does not count
    assert stats.union[2] == 8 and stats.intersection[2] == 0


# --- Boundary PQ ---------------------------------------------------------------------------------

STUFF = (7, 8, 11, 21)
THING = (24, 26)


def random_scene(rng, h, w):
    """Label and instance ids: stuff blocks, a few thing instances, a crowd and void."""
    label = np.array(STUFF, np.uint8)[blocky_labels(rng, h, w, len(STUFF), 6)]
    inst = label.astype(np.int32).copy()
    n = 0
    for _ in range(int(rng.integers(2, 6))):
        cls = int(rng.choice(THING))
        y, x = int(rng.integers(0, h - 4)), int(rng.integers(0, w - 4))
        hh, ww = int(rng.integers(3, 10)), int(rng.integers(3, 12))
        label[y:y + hh, x:x + ww] = cls
        inst[y:y + hh, x:x + ww] = cls * 1000 + n
        n += 1
    y, x = int(rng.integers(0, h - 3)), int(rng.integers(0, w - 3))
    label[y:y + 3, x:x + 4] = 26  # a car crowd region
    inst[y:y + 3, x:x + 4] = 26
    label[:2, :3] = 0  # void (unlabeled)
    inst[:2, :3] = 0
    return label, inst


def random_prediction(rng, label, inst):
    """A panoptic prediction: the ground truth's segments, shifted and partly relabelled."""
    pan = inst.copy()
    pan[label == 0] = 0
    dy, dx = (int(v) for v in rng.integers(-1, 2, 2))
    pan = np.roll(pan, (dy, dx), axis=(0, 1))
    noise = rng.random(pan.shape) < 0.05
    pan[noise] = 7
    ids = np.unique(pan)
    ids = ids[ids > 0]
    index = np.zeros(pan.shape, np.uint16)
    for k, i in enumerate(ids, start=1):
        index[pan == i] = k
    cats = np.where(ids >= 1000, ids // 1000, ids).astype(np.int64)
    return index, cats


def plain_boundary_pq(label, inst, pred_index, pred_cats, d, use_boundary=True):
    """The authors' Boundary-PQ loop on one image: per segment masks and boundaries."""
    cat_of = np.where(inst >= 1000, inst // 1000, inst)
    evaluated = np.isin(cat_of, panoptic.CATEGORY_IDS)
    pan_gt = np.where(evaluated, inst, 0)
    gt_ids = [int(i) for i in np.unique(pan_gt) if i != 0]
    gt_cat = {i: (i // 1000 if i >= 1000 else i) for i in gt_ids}
    has_inst = {24, 25, 26, 27, 28, 31, 32, 33}
    crowd = {i: (i < 1000 and gt_cat[i] in has_inst) for i in gt_ids}
    pred_ids = list(range(1, len(pred_cats) + 1))
    p_cat = {p: int(pred_cats[p - 1]) for p in pred_ids}
    void = pan_gt == 0
    gb = {g: plain_boundary(pan_gt == g, d) for g in gt_ids}
    pb = {p: plain_boundary(pred_index == p, d) for p in pred_ids}
    iou_sum = np.zeros(256)
    tp, fp, fn = (np.zeros(256, np.int64) for _ in range(3))
    g_matched, p_matched = set(), set()
    for g in gt_ids:
        gm = pan_gt == g
        for p in pred_ids:
            pm = pred_index == p
            inter = (gm & pm).sum()
            if inter == 0 or crowd[g] or gt_cat[g] != p_cat[p]:
                continue
            iou = inter / (pm.sum() + gm.sum() - inter - (pm & void).sum())
            if use_boundary:
                b_inter = (gb[g] & pb[p]).sum()
                b_union = pb[p].sum() + gb[g].sum() - b_inter - (pb[p] & void).sum()
                iou = min(iou, b_inter / b_union)
            if iou > 0.5:
                tp[gt_cat[g]] += 1
                iou_sum[gt_cat[g]] += iou
                g_matched.add(g)
                p_matched.add(p)
    crowd_of = {}
    for g in gt_ids:
        if g in g_matched:
            continue
        if crowd[g]:
            crowd_of[gt_cat[g]] = g
            continue
        fn[gt_cat[g]] += 1
    for p in pred_ids:
        if p in p_matched:
            continue
        pm = pred_index == p
        ignored = (pm & void).sum()
        if p_cat[p] in crowd_of:
            ignored += (pm & (pan_gt == crowd_of[p_cat[p]])).sum()
        if ignored / pm.sum() > 0.5:
            continue
        fp[p_cat[p]] += 1
    return iou_sum, tp, fp, fn


def ours(label, inst, pred_index, pred_cats, d):
    gt = gtm.segment_ground_truth(label, inst)
    pan_gt = panoptic.panoptic_ground_truth(gt)
    counts = panoptic.segment_prediction_counts(gt, pred_index, len(pred_cats) + 1)
    b = boundary.panoptic_update(gt, pan_gt, pred_index, pred_cats, counts, d)
    m = panoptic.update(gt, pan_gt, None, pred_cats, counts)
    return b, m


@pytest.mark.parametrize("seed", range(8))
def test_boundary_pq_equals_plain_reference(seed):
    rng = np.random.default_rng(100 + seed)
    label, inst = random_scene(rng, 22, 30)
    pred_index, pred_cats = random_prediction(rng, label, inst)
    for d in (1, 2, 4):
        b, m = ours(label, inst, pred_index, pred_cats, d)
        iou, tp, fp, fn = plain_boundary_pq(label, inst, pred_index, pred_cats, d)
        assert np.allclose(b.iou, iou[:panoptic.N_LABELS], atol=1e-12)
        assert np.array_equal(b.tp, tp[:panoptic.N_LABELS])
        assert np.array_equal(b.fp, fp[:panoptic.N_LABELS])
        assert np.array_equal(b.fn, fn[:panoptic.N_LABELS])
        # the same loop without the boundary term gives the mask PQ statistics
        iou, tp, fp, fn = plain_boundary_pq(label, inst, pred_index, pred_cats, d, False)
        assert np.allclose(m.iou, iou[:panoptic.N_LABELS], atol=1e-12)
        assert np.array_equal(m.tp, tp[:panoptic.N_LABELS])
        # property: boundary PQ and RQ never exceed PQ and RQ, per category and overall
        rb, rm = panoptic.compute(b), panoptic.compute(m)
        ok = ~np.isnan(rm["pq"])
        assert (rb["pq"][ok] <= rm["pq"][ok] + 1e-12).all()
        assert (rb["rq"][ok] <= rm["rq"][ok] + 1e-12).all()
        assert rb["PQ"] <= rm["PQ"] + 1e-12


def test_many_segments_path_gives_the_same_counts(monkeypatch):
    rng = np.random.default_rng(7)
    label, inst = random_scene(rng, 22, 30)
    pred_index, pred_cats = random_prediction(rng, label, inst)
    fast, _ = ours(label, inst, pred_index, pred_cats, 2)
    monkeypatch.setattr(boundary, "_MAX_HIST_BINS", 4)
    slow, _ = ours(label, inst, pred_index, pred_cats, 2)
    for name in ("iou", "tp", "fp", "fn"):
        assert np.array_equal(getattr(fast, name), getattr(slow, name))
    assert fast.tp.sum() > 0


def test_boundary_pq_by_hand():
    # 8x10 road with one car (rows 2-5, cols 2-7 = 4x6); the prediction's car drops the
    # car's last column: mask IoU 20/24 = 0.833.
    label = np.full((8, 10), 7, np.uint8)
    inst = label.astype(np.int32)
    label[2:6, 2:8] = 26
    inst[2:6, 2:8] = 26000
    pred = np.ones((8, 10), np.uint16)  # segment 1 = road
    pred[2:6, 2:7] = 2  # segment 2 = car, 4x5
    cats = np.array([7, 26], np.int64)
    b, m = ours(label, inst, pred, cats, 1)
    assert m.iou[26] == pytest.approx(20 / 24)
    # d = 1: the car's boundary is its ring: 4x6 -> 24 - 2*4 = 16 px; predicted 4x5 -> 20 - 2*3
    # = 14 px; common: the ring pixels of both = top/bottom rows cols 2-6 (2*5) + left column
    # rows 3-4 (2) = 12 -> boundary IoU 12 / (16 + 14 - 12) = 2/3
    assert b.iou[26] == pytest.approx(min(20 / 24, 12 / 18))
    assert b.tp[26] == 1 and b.fp[26] == 0 and b.fn[26] == 0
    # with d = 2 the 4-row car is all boundary: boundary IoU = mask IoU
    b2, _ = ours(label, inst, pred, cats, 2)
    assert b2.iou[26] == pytest.approx(20 / 24)


def test_boundary_match_can_fail_where_the_mask_matches():
    # a large car whose prediction is a cross-shaped cut: mask IoU > 0.5, boundary IoU < 0.5
    label = np.full((30, 30), 7, np.uint8)
    inst = label.astype(np.int32)
    label[3:27, 3:27] = 26
    inst[3:27, 3:27] = 26000
    pred = np.ones((30, 30), np.uint16)
    pred[3:27, 3:27] = 2
    pred[14:16, 3:27] = 1  # thin road stripes across the car
    pred[3:27, 14:16] = 1
    cats = np.array([7, 26], np.int64)
    b, m = ours(label, inst, pred, cats, 1)
    assert m.tp[26] == 1
    assert b.tp[26] == 0 and b.fn[26] == 1 and b.fp[26] == 1


# --- in report ---------------------------------------------------------------------------------

def _direct(root, results, ratio):
    """The boundary metrics from the library functions on the decoded files, image by image."""
    from panoptool.io import formats
    from panoptool.io.cityscapes import list_samples, read_ground_truth
    from panoptool.io.files import read_json, read_png

    anns = {a["image_id"]: a for a in read_json(formats.panoptic_json_path(results))[
        "annotations"]}
    total = boundary.BoundaryStats()
    for s in list_samples(root, "val"):
        label, inst = read_ground_truth(s)
        gt = gtm.segment_ground_truth(label, inst)
        d = boundary.boundary_width(label.shape, ratio)
        sem = read_png(formats.semantic_result_path(results, s.stem), channels=1)
        part = boundary.BoundaryStats(semantic=boundary.semantic_update(
            LABEL_TO_TRAIN[label], LABEL_TO_TRAIN[sem], d))
        pan = formats.rgb_to_panoptic_id(read_png(formats.panoptic_png_path(results, s.stem)))
        segs = anns[s.stem]["segments_info"]
        index = np.zeros(pan.shape, np.uint16)
        for k, seg in enumerate(segs, start=1):
            index[pan == seg["id"]] = k
        cats = np.array([seg["category_id"] for seg in segs], np.int64)
        pan_gt = panoptic.panoptic_ground_truth(gt)
        counts = panoptic.segment_prediction_counts(gt, index, len(cats) + 1)
        part.panoptic = boundary.panoptic_update(gt, pan_gt, index, cats, counts, d)
        total = total + part
    return total


def test_report_boundary_keys_match_the_library(make_synth, tmp_path):
    from official import make_results
    from panoptool.evaluation.runner import BOUNDARY_KEYS, evaluate

    root = make_synth(n=3)
    results = make_results(root, "val", tmp_path / "res", "noisy", seed=5)
    for ratio in (0.02, 0.005):
        res = evaluate(root, "val", results, workers=2, cache=False, boundary=True,
                       boundary_ratio=ratio,
                       show_progress=False)
        direct = _direct(root, results, ratio)
        sem = boundary.semantic_compute(direct.semantic)
        pq = panoptic.compute(direct.panoptic)
        assert res.metrics["boundary_IoU"] == pytest.approx(100 * sem["mean"], abs=1e-9)
        for key in ("PQ", "SQ", "RQ", "PQ_th", "PQ_st", "RQ_th", "SQ_st"):
            assert res.metrics[f"boundary_{key}"] == pytest.approx(100 * pq[key], abs=1e-9)
        assert np.allclose(res.per_class["boundary_IoU"], 100 * sem["iou"], equal_nan=True)
        assert res.metrics["boundary_PQ"] <= res.metrics["PQ"]
        assert res.metrics["boundary_IoU"] < res.metrics["mIoU"]  # noise hurts boundaries more
    serial = evaluate(root, "val", results, workers=1, cache=False, boundary=True,
                      show_progress=False)
    parallel = evaluate(root, "val", results, workers=2, cache=False, boundary=True,
                        show_progress=False)
    for key in BOUNDARY_KEYS:
        assert serial.metrics[key] == pytest.approx(parallel.metrics[key], abs=1e-9)
    off = evaluate(root, "val", results, workers=1, cache=False, boundary=False,
                   show_progress=False)
    assert not any(k.startswith("boundary_") for k in off.metrics)
    assert not any(c.startswith("boundary_") for c in off.per_class.columns)


def test_report_perfect_results_give_boundary_100(make_synth, tmp_path):
    from click.testing import CliRunner
    from official import make_results
    from panoptool_cli import main

    root = make_synth(n=3)
    results = make_results(root, "val", tmp_path / "res", "perfect")
    out = tmp_path / "rep"
    r = CliRunner().invoke(main.cli, ["report", "--root", str(root), "--results", str(results),
                                      "--out", str(out), "--workers", "1", "--no-cache",
                                      "--boundary",
                                      "--boundary-ratio", "0.01"])
    assert r.exit_code == 0, r.output
    import json
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("boundary_IoU", "boundary_PQ", "boundary_SQ", "boundary_RQ", "boundary_PQ_th",
                "boundary_PQ_st"):
        assert metrics[key] == pytest.approx(100.0), key
    assert "per class, boundary" in r.output
    r = CliRunner().invoke(main.cli, ["report", "--root", str(root), "--results", str(results),
                                      "--boundary-ratio", "0"])
    assert r.exit_code != 0 and "boundary-ratio" in r.output


def test_bench_section(tmp_path):
    from panoptool.bench.core import BenchConfig, merge_report, run_stage_here

    section = run_stage_here("boundary", BenchConfig(quick=True, workdir=str(tmp_path)))
    steps = [row["step"] for row in section.rows]
    assert "added by --boundary" in steps and any("contour score" in s for s in steps)
    assert all(row["ms/image"] > 0 for row in section.rows if row["step"] != steps[2])
    assert "<!-- stage:boundary -->" in merge_report(tmp_path / "b.md", {"boundary": section})


def test_compare_accepts_boundary_and_contour_columns():
    from panoptool.evaluation.compare import compare_table
    from panoptool.errors import ConfigError

    runs = [("a", {"PQ": 50.0, "boundary_PQ": 40.0, "contour_ODS": 70.0}, {}),
            ("b", {"PQ": 60.0}, {})]
    table = compare_table(runs, ["PQ", "boundary_PQ", "contour_ODS"])
    assert list(table.columns) == ["run", "PQ", "boundary_PQ", "contour_ODS"]
    assert table["boundary_PQ"].iloc[0] == 40.0 and np.isnan(table["contour_ODS"].iloc[1])
    with pytest.raises(ConfigError, match="unknown column"):
        compare_table(runs, ["boundary_AP"])
