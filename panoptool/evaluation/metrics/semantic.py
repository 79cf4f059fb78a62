"""Pixel-level semantic labeling: IoU and iIoU per class, as cityscapesscripts computes them.

Rules of ``evalPixelLevelSemanticLabeling.py`` reproduced here:

* A 34x34 confusion matrix over label ids (rows ground truth, columns prediction), every
  pixel counted, ignored labels included.
* IoU of an evaluated class l: ``tp / (tp + fp + fn)`` with ``tp = C[l, l]``,
  ``fn = row sum - tp`` (predictions of *any* other id, evaluated or not, are misses) and
  ``fp = column sum over the rows of evaluated labels other than l`` (predictions on pixels
  whose ground truth is ignored do not count). NaN when the denominator is 0.
* iIoU of a thing class: over the instances of the ground truth with id > 1000 of that class,
  ``tp`` and ``fn`` pixels weighted by ``avgClassSize[class] / instance size``; ``fp`` as for
  IoU (unweighted).
* mIoU / iIoU: the mean over the classes whose score is not NaN.

Prediction ids that are not Cityscapes label ids (> 33) make the official script crash; here
they are an :class:`~panoptool.errors.InputError` raised by the caller (see
:func:`unknown_prediction_ids`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling import args as _cs_args
from cityscapesscripts.helpers.labels import labels as _CS_LABELS

from panoptool.labels import KNOWN_LABEL_ID, LABEL_TO_TRAIN, NUM_CLASSES
from panoptool.evaluation.metrics.gt import GroundTruth, pair_counts

#: Size of the confusion matrix: label ids 0..33.
N_LABELS = 34

#: Label ids evaluated (not ignoreInEval), in train-id order (length 19).
EVAL_LABEL_IDS = np.array([int(np.flatnonzero(LABEL_TO_TRAIN[:N_LABELS] == t)[0])
                           for t in range(NUM_CLASSES)], dtype=np.int64)

#: Average instance size per label id (cityscapesscripts' ``avgClassSize``); NaN elsewhere.
AVG_CLASS_SIZE = np.full(256, np.nan)
for _lab in _CS_LABELS:
    if _lab.id >= 0 and _lab.name in _cs_args.avgClassSize:
        AVG_CLASS_SIZE[_lab.id] = _cs_args.avgClassSize[_lab.name]

#: Label ids whose instances enter iIoU: hasInstances and not ignoreInEval.
IIOU_LABEL = np.zeros(256, dtype=bool)
IIOU_LABEL[[lab.id for lab in _CS_LABELS if lab.hasInstances and not lab.ignoreInEval]] = True

_EVALUATED = np.zeros(N_LABELS, dtype=bool)
_EVALUATED[EVAL_LABEL_IDS] = True


@dataclass
class SemanticStats:
    """Additive statistics of semantic labeling.

    confusion : int64 (34, 34), pixels with ground-truth label i predicted as label j.
    tp_weighted, fn_weighted : float64 (34,), iIoU's weighted instance pixels per label id.
    n_images : images counted.
    """

    confusion: np.ndarray = field(default_factory=lambda: np.zeros((N_LABELS, N_LABELS),
                                                                   dtype=np.int64))
    tp_weighted: np.ndarray = field(default_factory=lambda: np.zeros(N_LABELS))
    fn_weighted: np.ndarray = field(default_factory=lambda: np.zeros(N_LABELS))
    n_images: int = 0

    def __add__(self, other: "SemanticStats") -> "SemanticStats":
        return SemanticStats(self.confusion + other.confusion,
                             self.tp_weighted + other.tp_weighted,
                             self.fn_weighted + other.fn_weighted,
                             self.n_images + other.n_images)


def segment_prediction_counts(gt: GroundTruth, pred_label_ids: np.ndarray) -> np.ndarray:
    """Pixels of each ground-truth segment per predicted value.

    Parameters
    ----------
    gt : ground truth of the image, segments S.
    pred_label_ids : uint8 (H, W), predicted label ids.

    Returns
    -------
    int64 (S, 256): ``counts[s, v]`` = pixels of segment s predicted as v.
    """
    return pair_counts(gt.segment_index, gt.n_segments, pred_label_ids, 256)


def unknown_prediction_ids(counts: np.ndarray) -> list[int]:
    """Predicted values that are not Cityscapes label ids (from
    :func:`segment_prediction_counts`)."""
    used = counts.sum(axis=0) > 0
    return np.flatnonzero(used & ~KNOWN_LABEL_ID).tolist()


def update(gt: GroundTruth, pred_label_ids: np.ndarray,
           counts: np.ndarray | None = None) -> SemanticStats:
    """Statistics of one image.

    Parameters
    ----------
    gt : ground truth (segments).
    pred_label_ids : uint8 (H, W), predicted Cityscapes label ids (all known: <= 33).
    counts : optional precomputed :func:`segment_prediction_counts`.

    Returns
    -------
    SemanticStats of this image.
    """
    if counts is None:
        counts = segment_prediction_counts(gt, pred_label_ids)
    seg_counts = counts[:, :N_LABELS]
    onehot = np.zeros((N_LABELS, gt.n_segments), dtype=np.int64)
    onehot[gt.label_ids, np.arange(gt.n_segments)] = 1
    confusion = onehot @ seg_counts

    # iIoU: instances with id > 1000 of an evaluated thing class, from the instance map
    inst = gt.instance_ids.astype(np.int64)
    inst_label = inst // 1000
    use = (inst > 1000) & IIOU_LABEL[np.minimum(inst_label, 255)]
    tp_w = np.zeros(N_LABELS)
    fn_w = np.zeros(N_LABELS)
    if use.any():
        ids, which = np.unique(inst[use], return_inverse=True)
        sel = np.flatnonzero(use)
        size = np.bincount(which, weights=seg_counts[sel].sum(axis=1).astype(np.float64),
                           minlength=len(ids))
        labels = ids // 1000
        tp_seg = seg_counts[sel, inst_label[sel]].astype(np.float64)
        tp = np.bincount(which, weights=tp_seg, minlength=len(ids))
        weight = AVG_CLASS_SIZE[labels] / size
        np.add.at(tp_w, labels, tp * weight)
        np.add.at(fn_w, labels, (size - tp) * weight)
    return SemanticStats(confusion, tp_w, fn_w, 1)


def compute(stats: SemanticStats) -> dict:
    """IoU and iIoU per class and their means, as fractions (NaN where undefined).

    Returns
    -------
    dict with ``iou`` and ``iiou``: float64 (19,) indexed by train id (iiou NaN for stuff
    classes), ``mIoU`` and ``iIoU``: floats (NaN if no class is defined).
    """
    conf = stats.confusion
    iou = np.full(NUM_CLASSES, np.nan)
    iiou = np.full(NUM_CLASSES, np.nan)
    for train_id, label in enumerate(EVAL_LABEL_IDS):
        tp = int(conf[label, label])
        fn = int(conf[label, :].sum()) - tp
        rows = _EVALUATED.copy()
        rows[label] = False
        fp = int(conf[rows, label].sum())
        if tp + fp + fn > 0:
            iou[train_id] = tp / (tp + fp + fn)
        if IIOU_LABEL[label]:
            denom = stats.tp_weighted[label] + fp + stats.fn_weighted[label]
            if denom != 0:
                iiou[train_id] = float(stats.tp_weighted[label]) / denom
    return {"iou": iou, "iiou": iiou, "mIoU": _nanmean(iou), "iIoU": _nanmean(iiou)}


def _nanmean(values: np.ndarray) -> float:
    valid = values[~np.isnan(values)]
    return float(valid.mean()) if valid.size else float("nan")
