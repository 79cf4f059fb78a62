"""Panoptic quality (PQ, SQ, RQ), as cityscapesscripts computes it.

The panoptic ground truth is derived in memory from ``*_gtFine_instanceIds.png`` exactly as
``preparation/createPanopticImgs.py`` does: every distinct instance id whose label is not
ignoreInEval is a segment (id = the instance id, category = its label id); ids below 1000 of
labels with instances are crowd regions (``iscrowd``); everything else is VOID (0).

``evalPanopticSemanticLabeling.pq_compute_single_core`` is then reproduced: a ground-truth
segment and a predicted segment of the same category match when their IoU, with the
predicted pixels on VOID removed from the union, is above 0.5; unmatched non-crowd
ground-truth segments are false negatives; an unmatched predicted segment is a false positive
unless more than half of it lies on VOID or on the crowd region of its category.
PQ/SQ/RQ per category; All/Things/Stuff average over the categories with tp + fp + fn > 0.
A category with no true positive has SQ 0 (and PQ = RQ = 0), as in the official code.
Where no category of a group is present the official script divides by zero; here the
average is NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from panoptool.labels import CITYSCAPES, LabelSpace
from panoptool.evaluation.metrics.gt import (GroundTruth, instance_label,  # noqa: F401
                                             segment_prediction_counts, segment_runs)
from panoptool.io.rle import neighbour_change

#: Category ids (label ids) of the panoptic evaluation, in label-id order (19;
#: ``labels.evaluated_label_ids``).
CATEGORY_IDS = CITYSCAPES.evaluated_label_ids
IS_CATEGORY = CITYSCAPES.is_evaluated_label
IS_THING_CATEGORY = CITYSCAPES.is_thing_label

#: Length of the per-category statistics of Cityscapes: label ids 0..33 (``labels.n_labels``).
N_LABELS = CITYSCAPES.n_labels
OFFSET = 256 * 256 * 256


@dataclass
class PanopticStats:
    """Additive PQ statistics per category, indexed by label id (N = ``labels.n_labels``,
    34 for Cityscapes).

    iou : float64 summed IoU of true positives; tp, fp, fn : int64 counts.
    """

    iou: np.ndarray = field(default_factory=lambda: np.zeros(N_LABELS))
    tp: np.ndarray = field(default_factory=lambda: np.zeros(N_LABELS, dtype=np.int64))
    fp: np.ndarray = field(default_factory=lambda: np.zeros(N_LABELS, dtype=np.int64))
    fn: np.ndarray = field(default_factory=lambda: np.zeros(N_LABELS, dtype=np.int64))
    n_images: int = 0

    def __add__(self, other: "PanopticStats") -> "PanopticStats":
        return PanopticStats(self.iou + other.iou, self.tp + other.tp, self.fp + other.fp,
                             self.fn + other.fn, self.n_images + other.n_images)

    @classmethod
    def empty(cls, n_labels: int = N_LABELS, n_images: int = 0) -> "PanopticStats":
        """Zero counts for label ids 0..n_labels-1."""
        return cls(np.zeros(n_labels), np.zeros(n_labels, dtype=np.int64),
                   np.zeros(n_labels, dtype=np.int64), np.zeros(n_labels, dtype=np.int64),
                   n_images)


@dataclass(frozen=True)
class PanopticGroundTruth:
    """Panoptic ground-truth segments of one image (createPanopticImgs' rules).

    segment_to_gt : int64 (S,), for each ground-truth segment (see :class:`GroundTruth`) the
        panoptic segment it belongs to, 1..G, or 0 for VOID.
    ids : int64 (G,), segment ids (= instance ids); categories : int64 (G,) label ids;
    iscrowd : bool (G,); areas : int64 (G,).
    """

    segment_to_gt: np.ndarray
    ids: np.ndarray
    categories: np.ndarray
    iscrowd: np.ndarray
    areas: np.ndarray


def panoptic_ground_truth(gt: GroundTruth, labels: LabelSpace = CITYSCAPES
                          ) -> PanopticGroundTruth:
    """Convert segmented ground truth to panoptic segments, like createPanopticImgs."""
    inst = gt.instance_ids.astype(np.int64)
    label = instance_label(inst)
    keep = ~labels.is_void_label[label.clip(0, 255)]
    ids, which = np.unique(inst[keep], return_inverse=True)
    segment_to_gt = np.zeros(gt.n_segments, dtype=np.int64)
    segment_to_gt[keep] = which + 1
    areas = np.bincount(which, weights=gt.areas[keep], minlength=len(ids)).astype(np.int64)
    categories = instance_label(ids)
    iscrowd = (ids < 1000) & labels.has_instances_label[categories.clip(0, 255)]
    return PanopticGroundTruth(segment_to_gt, ids, categories, iscrowd, areas)


def segment_panoptic_ground_truth(gt: GroundTruth, labels: LabelSpace = CITYSCAPES
                                  ) -> PanopticGroundTruth:
    """Panoptic segments of ground truth whose segments *are* the panoptic segments (a COCO
    panoptic PNG's listed segments, :func:`panoptool.evaluation.coco_panoptic.sample_ground_truth`):
    every segment whose label is not void is one, in segment order (which decides the crowd
    region of a category that has several, as in panopticapi: the last); category = its label
    id, id = its instance id; crowd = instance id < 1000 of a label with instances.

    Unlike :func:`panoptic_ground_truth`, two segments of one instance id stay apart (two
    stuff segments of one category, as panopticapi keeps them).

    >>> from panoptool.evaluation.metrics.gt import GroundTruth
    >>> gt = GroundTruth(np.array([[0, 1, 2, 3]], np.uint16), np.array([0, 7, 7, 26], np.uint8),
    ...                  np.array([0, 7, 7, 26], np.int32), np.array([1, 1, 1, 1]))
    >>> pan = segment_panoptic_ground_truth(gt)
    >>> pan.segment_to_gt.tolist(), pan.categories.tolist(), pan.iscrowd.tolist()
    ([0, 1, 2, 3], [7, 7, 26], [False, False, True])
    """
    label = gt.label_ids.astype(np.int64)
    keep = ~labels.is_void_label[label]
    segment_to_gt = np.zeros(gt.n_segments, dtype=np.int64)
    segment_to_gt[keep] = np.arange(1, int(keep.sum()) + 1)
    ids = gt.instance_ids.astype(np.int64)[keep]
    categories = label[keep]
    iscrowd = (ids < 1000) & labels.has_instances_label[categories]
    return PanopticGroundTruth(segment_to_gt, ids, categories, iscrowd,
                               gt.areas[keep].astype(np.int64))


def rgb_segment_counts(gt: GroundTruth, rgb: np.ndarray, ids: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`segment_prediction_counts` straight from a panoptic PNG's pixels.

    Both images are constant along long runs of the raster order, so the joint histogram is
    taken over the runs of the (ground-truth segment, colour) pair instead of per pixel: one
    comparison of neighbours in the PNG and the ground truth's cached runs find them
    (:func:`~panoptool.evaluation.metrics.gt.segment_runs`), and only the runs' colours are
    looked up among the listed ids (no per-pixel prediction index, no id table over 2^24 colours).

    Parameters
    ----------
    gt : ground truth (segments S), shape (H, W).
    rgb : uint8 (H, W, 3) or (H, W, 4), id = R + 256 G + 256^2 B (a 4th channel is ignored).
    ids : int64 (P,), the listed segment ids; id 0, unless listed, is VOID.

    Returns
    -------
    counts : int64 (S, P + 1), as ``segment_prediction_counts(gt, index, P + 1)`` of the
        prediction index whose k-th listed id is predicted segment k (1-based; column 0 counts
        the VOID pixels).
    unlisted : int64, the distinct colours in the image that are not listed (sorted).

    Examples
    --------
    >>> from panoptool.evaluation.metrics.gt import segment_ground_truth
    >>> gt = segment_ground_truth(np.array([[7, 7, 26]], np.uint8),
    ...                           np.array([[7, 7, 26001]], np.int32))
    >>> rgb = np.array([[[0, 0, 0], [5, 1, 0], [5, 1, 0]]], np.uint8)  # VOID, 261, 261
    >>> counts, unlisted = rgb_segment_counts(gt, rgb, np.array([261]))
    >>> counts.tolist(), unlisted.tolist()
    ([[1, 1], [0, 1]], [])
    """
    h, w = gt.shape
    n = h * w
    # 4 bytes per pixel read as one little-endian uint32: id + 2^24 * (4th byte); runs of
    # equal values have one id (a varying 4th byte only splits runs, which add up the same)
    packed = cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA) if rgb.shape[2] == 3 else rgb
    colour = np.ascontiguousarray(packed).view("<u4").reshape(n)
    starts, lengths, run_seg = segment_runs(gt, neighbour_change(colour))
    run_seg = run_seg.astype(np.int64)
    run_ids = (colour[starts] & 0xFFFFFF).astype(np.int64)
    ids = np.asarray(ids, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    pos = np.searchsorted(sorted_ids, run_ids).clip(max=max(len(ids) - 1, 0))
    found = (sorted_ids[pos] == run_ids) if len(ids) else np.zeros(len(run_ids), dtype=bool)
    slot = np.where(found, order[pos] + 1, 0) if len(ids) else np.zeros(len(run_ids), np.int64)
    unlisted = run_ids[~found & (run_ids != 0)]
    if unlisted.size:  # (np.unique's first call imports numpy.ma: ~13 ms per worker)
        unlisted = np.unique(unlisted)
    n_cols = len(ids) + 1
    counts = np.bincount(run_seg * n_cols + slot, weights=lengths,
                         minlength=gt.n_segments * n_cols)
    return counts.astype(np.int64).reshape(gt.n_segments, n_cols), unlisted


def update(gt: GroundTruth, pan_gt: PanopticGroundTruth, pred_index: np.ndarray | None,
           pred_categories: np.ndarray, seg_counts: np.ndarray | None = None,
           labels: LabelSpace = CITYSCAPES) -> PanopticStats:
    """Statistics of one image.

    Parameters
    ----------
    gt : ground truth (segments).
    pan_gt : :func:`panoptic_ground_truth` of ``gt``.
    pred_index : int (H, W), 0 on unlabelled (VOID) pixels, k on the pixels of the k-th
        predicted segment (1-based); unused if ``seg_counts`` is given.
    pred_categories : int64 (P,), category id of each predicted segment; every segment has
        pixels (the caller checks).
    seg_counts : optional precomputed ``segment_prediction_counts(gt, pred_index, P + 1)``
        (S, P + 1); column 0 counts the prediction's VOID pixels.
    labels : the label space.
    """
    n_pred = len(pred_categories)
    if seg_counts is None:
        seg_counts = segment_prediction_counts(gt, pred_index, n_pred + 1)
    overlap = overlaps(pan_gt, seg_counts, n_pred)
    gi, pi, iou = candidate_matches(pan_gt, pred_categories, overlap)
    hit = iou > 0.5
    return count_matches(pan_gt, pred_categories, overlap, gi[hit], pi[hit], iou[hit], labels)


def overlaps(pan_gt: PanopticGroundTruth, seg_counts: np.ndarray, n_pred: int
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel overlaps of one image's ground-truth and predicted segments.

    Returns
    -------
    g_inter : int64 (G, P), pixels of ground-truth segment g predicted as segment p.
    void_inter : int64 (P,), pixels of each predicted segment on VOID.
    pred_area : int64 (P,), pixels of each predicted segment.
    """
    n_gt = len(pan_gt.ids)
    inter = np.zeros((n_gt + 1, n_pred + 1), dtype=np.int64)  # row 0 = VOID ground truth
    np.add.at(inter, pan_gt.segment_to_gt, seg_counts)
    return inter[1:, 1:], inter[0, 1:], inter.sum(axis=0)[1:]


def candidate_matches(pan_gt: PanopticGroundTruth, pred_categories: np.ndarray,
                      overlap: tuple[np.ndarray, np.ndarray, np.ndarray]
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(gi, pi, iou): every overlapping same-category pair of a non-crowd ground-truth segment
    and a predicted segment, with its mask IoU (VOID pixels left out of the union)."""
    g_inter, void_inter, pred_area = overlap
    same_cat = pan_gt.categories[:, None] == pred_categories[None, :]
    cand = (g_inter > 0) & same_cat & ~pan_gt.iscrowd[:, None]
    gi, pi = np.nonzero(cand)
    union = pred_area[pi] + pan_gt.areas[gi] - g_inter[gi, pi] - void_inter[pi]
    return gi, pi, g_inter[gi, pi] / union


def count_matches(pan_gt: PanopticGroundTruth, pred_categories: np.ndarray,
                  overlap: tuple[np.ndarray, np.ndarray, np.ndarray], gi: np.ndarray,
                  pi: np.ndarray, iou: np.ndarray,
                  labels: LabelSpace = CITYSCAPES) -> PanopticStats:
    """Statistics of one image from its matches ``(gi[k], pi[k])`` with IoU ``iou[k]``:
    true positives, false negatives (crowd excluded) and false positives (those mostly on
    VOID or on their category's crowd region excused)."""
    g_inter, void_inter, pred_area = overlap
    n_gt, n_pred = g_inter.shape
    stats = PanopticStats.empty(labels.n_labels, n_images=1)
    cats = pan_gt.categories[gi]
    # summed in the order of the official loop would differ only in the last bits
    np.add.at(stats.iou, cats, iou)
    np.add.at(stats.tp, cats, 1)
    gt_matched = np.zeros(n_gt, dtype=bool)
    gt_matched[gi] = True
    pred_matched = np.zeros(n_pred, dtype=bool)
    pred_matched[pi] = True

    fn_sel = ~gt_matched & ~pan_gt.iscrowd
    np.add.at(stats.fn, pan_gt.categories[fn_sel], 1)

    # crowd region per category: the last crowd segment of that category, as in the dict
    crowd_row = np.full(256, -1, dtype=np.int64)
    for g in np.flatnonzero(~gt_matched & pan_gt.iscrowd):
        crowd_row[pan_gt.categories[g]] = g
    for p in np.flatnonzero(~pred_matched):
        ignored = int(void_inter[p])
        row = crowd_row[pred_categories[p]]
        if row >= 0:
            ignored += int(g_inter[row, p])
        if ignored / pred_area[p] > 0.5:
            continue
        stats.fp[pred_categories[p]] += 1
    return stats


def compute(stats: PanopticStats, labels: LabelSpace = CITYSCAPES) -> dict:
    """PQ/SQ/RQ per category and for All/Things/Stuff, as fractions.

    Returns
    -------
    dict with ``pq``, ``sq``, ``rq``: float64 (K,) in the order of
    ``labels.evaluated_label_ids`` (:data:`CATEGORY_IDS`, 19, for Cityscapes)
    (NaN for a category with tp + fp + fn = 0, which the official code reports as 0 and
    leaves out of the averages), ``n`` per group and ``PQ``, ``SQ``, ``RQ``, ``PQ_th``,
    ``SQ_th``, ``RQ_th``, ``PQ_st``, ``SQ_st``, ``RQ_st`` (NaN where no category counts).
    """
    cats = np.array(labels.evaluated_label_ids)
    iou, tp = stats.iou[cats], stats.tp[cats].astype(np.float64)
    fp, fn = stats.fp[cats].astype(np.float64), stats.fn[cats].astype(np.float64)
    present = (tp + fp + fn) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        denom = tp + 0.5 * fp + 0.5 * fn
        pq = np.where(present, iou / denom, np.nan)
        sq = np.where(present, np.where(tp > 0, iou / np.where(tp > 0, tp, 1), 0.0), np.nan)
        rq = np.where(present, tp / denom, np.nan)
    out = {"pq": pq, "sq": sq, "rq": rq}
    thing = labels.is_thing_label[cats]
    for suffix, sel in (("", np.ones_like(thing)), ("_th", thing), ("_st", ~thing)):
        use = sel & present
        out[f"n{suffix}"] = int(use.sum())
        for name, values in (("PQ", pq), ("SQ", sq), ("RQ", rq)):
            out[f"{name}{suffix}"] = float(values[use].mean()) if use.any() else float("nan")
    return out
