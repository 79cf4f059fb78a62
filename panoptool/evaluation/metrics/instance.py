"""Instance-level semantic labeling: AP and AP50, as cityscapesscripts computes them.

Rules of ``evalInstanceLevelSemanticLabeling.py`` (no distance information) reproduced here:

* Ground-truth instances of a class are the distinct values of ``*_gtFine_instanceIds.png``
  with that label, including the group (crowd) region whose id is the bare label id.
  An instance is *valid* if its id is >= 1000 and it has at least 100 pixels.
* Predictions of labels without instances in evaluation are dropped; empty masks are dropped
  (any non-zero mask pixel belongs to the instance).
* For each overlap threshold t in 0.50:0.05:0.95 and each class, per image:
  a valid ground-truth instance whose predictions (of its class) have IoU > t is a true
  positive scored by the best of their confidences, every other such prediction a false
  positive with its own confidence; a valid instance without one is a hard false negative.
  A prediction with IoU > t to no instance of its class (valid, group or small) is a false
  positive unless its pixels on void labels, on groups and on small instances (a small group
  counted twice, as in the official loop) make up more than t of it.
* AP of a class at t: the official precision/recall curve over unique confidences (ties share
  one point), closed by (recall 0, precision 1), integrated stepwise. 0 if the class has
  ground truth but no prediction anywhere; NaN without ground truth. AP averages over
  thresholds; the overall AP and AP50 are NaN-means over classes.

Where the official script crashes (cityscapesScripts issue 89: a class has ground truth and
predictions, but every prediction is ignored and nothing matched, so the curve is empty),
the AP is 0: no ground-truth instance was found at any confidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from panoptool.labels import CITYSCAPES, LabelSpace
from panoptool.evaluation.metrics.gt import GroundTruth, instance_label, nanmean

#: Overlap thresholds, computed exactly as the official script does.
OVERLAPS = np.arange(0.5, 1.0, 0.05)
MIN_REGION_SIZE = 100

#: Label ids evaluated for instances (person ... bicycle), in label-id order = official order
#: (``labels.thing_label_ids``).
INSTANCE_LABEL_IDS = CITYSCAPES.thing_label_ids
INSTANCE_CLASS_NAMES = tuple(CITYSCAPES.label_names[i] for i in INSTANCE_LABEL_IDS)

#: Label ids that are void for instance evaluation (ignoreInEval), as a lookup table.
VOID_LABEL = CITYSCAPES.is_void_label

N_CLASSES = len(INSTANCE_LABEL_IDS)
N_OVERLAPS = len(OVERLAPS)


@dataclass
class InstanceStats:
    """Additive statistics of instance segmentation (C thing classes, 8 for Cityscapes).

    Scored detections, flat over images: ``cls`` int8 (N,) class index (0..C-1, order of
    ``labels.thing_label_ids``), ``thr`` int8 (N,) overlap index, ``score`` float64 (N,),
    ``true`` bool (N,) true positive or false positive. ``hard_fn`` int64 (C, 10) missed
    valid instances; ``have_gt`` / ``have_pred`` bool (C,): some valid instance / some
    non-empty prediction of the class exists.
    """

    cls: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int8))
    thr: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int8))
    score: np.ndarray = field(default_factory=lambda: np.zeros(0))
    true: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    hard_fn: np.ndarray = field(default_factory=lambda: np.zeros((N_CLASSES, N_OVERLAPS),
                                                                 dtype=np.int64))
    have_gt: np.ndarray = field(default_factory=lambda: np.zeros(N_CLASSES, dtype=bool))
    have_pred: np.ndarray = field(default_factory=lambda: np.zeros(N_CLASSES, dtype=bool))
    n_images: int = 0

    def __add__(self, other: "InstanceStats") -> "InstanceStats":
        return InstanceStats(np.concatenate([self.cls, other.cls]),
                             np.concatenate([self.thr, other.thr]),
                             np.concatenate([self.score, other.score]),
                             np.concatenate([self.true, other.true]),
                             self.hard_fn + other.hard_fn,
                             self.have_gt | other.have_gt,
                             self.have_pred | other.have_pred,
                             self.n_images + other.n_images)

    @classmethod
    def empty(cls, n_classes: int = N_CLASSES, n_images: int = 0) -> "InstanceStats":
        """No detection, for ``n_classes`` classes."""
        return cls(hard_fn=np.zeros((n_classes, N_OVERLAPS), dtype=np.int64),
                   have_gt=np.zeros(n_classes, dtype=bool),
                   have_pred=np.zeros(n_classes, dtype=bool), n_images=n_images)


@dataclass(frozen=True)
class PredictedInstances:
    """The predictions of one image, reduced to overlap counts with ground-truth segments.

    label_ids : int64 (P,), predicted label id of each instance.
    scores : float64 (P,), confidences.
    areas : int64 (P,), mask pixels (> 0).
    segment_overlap : int64 (P, S), mask pixels on each ground-truth segment.
    """

    label_ids: np.ndarray
    scores: np.ndarray
    areas: np.ndarray
    segment_overlap: np.ndarray


def is_evaluated_label(label_id: int, labels: LabelSpace = CITYSCAPES) -> bool:
    """True for the label ids whose predictions the evaluation reads (the thing classes;
    Cityscapes: person ... bicycle)."""
    return 0 <= label_id < 256 and labels.thing_index_of_label[label_id] >= 0


def mask_segment_overlap(gt: GroundTruth, mask: np.ndarray) -> np.ndarray:
    """Pixels of a binary mask on each ground-truth segment: int64 (S,).

    ``mask`` is (H, W), any dtype; non-zero pixels belong to the instance. Only the mask's
    bounding box is visited.
    """
    if mask.dtype != np.uint8:
        mask = (mask != 0).view(np.uint8)
    x, y, w, h = cv2.boundingRect(mask)
    if w == 0 or h == 0:
        return np.zeros(gt.n_segments, dtype=np.int64)
    crop = mask[y:y + h, x:x + w] != 0
    return np.bincount(gt.segment_index[y:y + h, x:x + w][crop], minlength=gt.n_segments)


def update(gt: GroundTruth, pred: PredictedInstances,
           labels: LabelSpace = CITYSCAPES) -> InstanceStats:
    """Statistics of one image.

    Parameters
    ----------
    gt : ground truth (segments).
    pred : this image's predictions of evaluated classes with non-empty masks, in the order
        of the ``_pred.txt`` file.
    labels : the label space.
    """
    n_classes = len(labels.thing_label_ids)
    inst_ids, seg_to_inst, inst_area, inst_cls = _gt_instances(gt, labels)
    inter, void_inter = _intersections(gt, pred, seg_to_inst, len(inst_ids), labels)
    n_pred = len(pred.scores)
    out = InstanceStats.empty(n_classes, n_images=1)
    lengths, score_l, true_l = [], [], []
    pred_cls = (labels.thing_index_of_label[pred.label_ids] if n_pred
                else np.zeros(0, dtype=np.int64))
    for c in range(n_classes):
        g_sel = np.flatnonzero(inst_cls == c)
        p_sel = np.flatnonzero(pred_cls == c)
        g_area = inst_area[g_sel]
        g_group = inst_ids[g_sel] < 1000
        g_small = g_area < MIN_REGION_SIZE
        g_valid = ~g_group & ~g_small
        out.have_gt[c] = bool(g_valid.any())
        out.have_pred[c] = bool(p_sel.size)
        if not p_sel.size:
            out.hard_fn[c, :] = int(g_valid.sum())
            lengths += [0] * N_OVERLAPS
            continue
        iou, ignore_frac = _class_overlaps(inter[np.ix_(p_sel, g_sel)], pred.areas[p_sel],
                                           g_area, void_inter[p_sel], g_group, g_small)
        out.hard_fn[c], scores, trues = _class_detections(iou, pred.scores[p_sel],
                                                          ignore_frac, g_valid)
        lengths += [len(x) for x in scores]
        score_l += scores
        true_l += trues
    if score_l:
        counts = np.array(lengths)
        out.cls = np.repeat(np.repeat(np.arange(n_classes, dtype=np.int8), N_OVERLAPS), counts)
        out.thr = np.repeat(np.tile(np.arange(N_OVERLAPS, dtype=np.int8), n_classes), counts)
        out.score = np.concatenate(score_l).astype(np.float64)
        out.true = np.concatenate(true_l)
    return out


def _gt_instances(gt: GroundTruth, labels: LabelSpace
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The ground-truth instances: distinct instance ids (segments of one id are merged).

    Returns
    -------
    inst_ids : int (G,), sorted. seg_to_inst : int (S,), the instance of each segment.
    inst_area : int64 (G,), pixels. inst_cls : int64 (G,), class index (order of
    ``labels.thing_label_ids``), -1 for labels not evaluated.
    """
    inst_ids, seg_to_inst = np.unique(gt.instance_ids, return_inverse=True)
    inst_area = np.bincount(seg_to_inst, weights=gt.areas, minlength=len(inst_ids)).astype(
        np.int64)
    inst_lab = instance_label(inst_ids)
    inst_cls = np.where(inst_lab < 256, labels.thing_index_of_label[inst_lab.clip(0, 255)], -1)
    return inst_ids, seg_to_inst, inst_area, inst_cls


def _intersections(gt: GroundTruth, pred: PredictedInstances, seg_to_inst: np.ndarray,
                   n_inst: int, labels: LabelSpace) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of each prediction on each ground-truth instance, int64 (P, G), and on void
    segments, (P,)."""
    void_seg = labels.is_void_label[gt.instance_ids.clip(0, 255)] & (gt.instance_ids < 256)
    n_pred = len(pred.scores)
    inter = np.zeros((n_pred, n_inst), dtype=np.int64)
    if n_pred:
        np.add.at(inter.T, seg_to_inst, pred.segment_overlap.T)
    void_inter = pred.segment_overlap[:, void_seg].sum(axis=1) if n_pred else np.zeros(0)
    return inter, void_inter


def _class_overlaps(ix: np.ndarray, p_area: np.ndarray, g_area: np.ndarray,
                    p_void: np.ndarray, g_group: np.ndarray, g_small: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """IoU of each prediction of a class with each of its instances, float (P_c, G_c), and
    the share of each prediction that is ignored (on void, groups and small instances; a
    small group counted twice, as in the official loop), float (P_c,).

    ``ix`` int64 (P_c, G_c): intersections; ``p_void`` (P_c,): pixels on void.
    """
    iou = ix / (g_area[None, :] + p_area[:, None] - ix)
    ignore_px = (p_void + (ix * g_group[None, :]).sum(axis=1)
                 + (ix * g_small[None, :]).sum(axis=1))
    return iou, ignore_px / p_area


def _class_detections(iou: np.ndarray, p_score: np.ndarray, ignore_frac: np.ndarray,
                      g_valid: np.ndarray
                      ) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """The scored detections of one class at every overlap threshold.

    Returns
    -------
    hard_fn : int64 (10,), valid instances without a match per threshold.
    scores, true : per threshold, float64 (N_t,) confidences and bool (N_t,) true positive
        of the scored detections (matched ones first, then false positives).
    """
    # every threshold at once: axis 0 of the (T, P_c, G_c) tables is the threshold
    match = iou[None, :, :] > OVERLAPS[:, None, None]  # at most one True per row (t >= 0.5)
    valid_match = match[:, :, g_valid]
    hard_fn = (~valid_match.any(axis=1)).sum(axis=1).astype(np.int64)
    # a matched valid instance: its best-scored prediction is a TP, the others FPs
    m_t, m_row, m_col = np.nonzero(valid_match)
    masked = np.where(valid_match, p_score[None, :, None], -np.inf)
    best_row = np.argmax(masked, axis=1)  # (T, G_valid), the first of equal scores
    is_tp = best_row[m_t, m_col] == m_row
    # predictions matching no instance of their class at all (valid, group or small)
    fp_t, fp_row = np.nonzero(~match.any(axis=2) & (ignore_frac[None, :] <= OVERLAPS[:, None]))
    # per threshold: its matches (in row, column order), then its false positives
    n_match = np.bincount(m_t, minlength=N_OVERLAPS)
    n_fp = np.bincount(fp_t, minlength=N_OVERLAPS)
    order = np.argsort(np.concatenate([2 * m_t, 2 * fp_t + 1]), kind="stable")
    scores = np.concatenate([p_score[m_row], p_score[fp_row]])[order]
    trues = np.concatenate([is_tp, np.zeros(len(fp_t), dtype=bool)])[order]
    cuts = np.cumsum(n_match + n_fp)[:-1]
    return hard_fn, np.split(scores, cuts), np.split(trues, cuts)


def average_precision(y_true: np.ndarray, y_score: np.ndarray, hard_fn: int) -> float:
    """The official AP of one class at one threshold (``haveGt and havePred`` case).

    Parameters
    ----------
    y_true : bool (N,), true positive (1) or false positive (0) per scored detection.
    y_score : float64 (N,), their confidences.
    hard_fn : valid ground-truth instances without a match.

    Returns
    -------
    The area under the official stepwise precision/recall curve; 0.0 for an empty curve
    (where the official script crashes, cityscapesScripts issue 89).

    Examples
    --------
    >>> average_precision(np.array([1, 0, 1], bool), np.array([0.9, 0.8, 0.7]), 1)
    0.5277777777777777
    """
    if y_true.size == 0:
        return 0.0
    order = np.argsort(y_score, kind="stable")
    score_sorted = y_score[order]
    true_cumsum = np.cumsum(y_true[order].astype(np.float64))
    _, unique_index = np.unique(score_sorted, return_index=True)
    n_examples = len(score_sorted)
    n_true = true_cumsum[-1]
    true_cumsum = np.append(true_cumsum, 0)
    cum = true_cumsum[unique_index - 1]
    tp = n_true - cum
    fp = n_examples - unique_index - tp
    fn = cum + hard_fn
    precision = np.append(tp / (tp + fp), 1.0)
    recall = np.append(tp / (tp + fn), 0.0)
    padded = np.concatenate(([recall[0]], recall, [0.0]))
    step = np.convolve(padded, [-0.5, 0, 0.5], "valid")
    return float(np.dot(precision, step))


def compute(stats: InstanceStats) -> dict:
    """AP per class and overlap, AP and AP50, as fractions.

    Returns
    -------
    dict with ``ap_matrix`` float64 (C, 10), ``ap`` and ``ap50`` float64 (C,) per class
    (order of ``labels.thing_label_ids``; NaN without ground truth), ``AP`` and ``AP50``.
    """
    n_classes = len(stats.have_gt)
    ap = np.full((n_classes, N_OVERLAPS), np.nan)
    for c in range(n_classes):
        if not stats.have_gt[c]:
            continue
        for t in range(N_OVERLAPS):
            if not stats.have_pred[c]:
                ap[c, t] = 0.0
                continue
            sel = (stats.cls == c) & (stats.thr == t)
            ap[c, t] = average_precision(stats.true[sel], stats.score[sel],
                                         int(stats.hard_fn[c, t]))
    o50 = int(np.flatnonzero(np.isclose(OVERLAPS, 0.5))[0])
    return {"ap_matrix": ap, "ap": ap.mean(axis=1), "ap50": ap[:, o50].copy(),
            "AP": nanmean(ap), "AP50": nanmean(ap[:, o50])}
