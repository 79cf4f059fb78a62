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
from functools import lru_cache

import numpy as np

from panoptool.labels import CITYSCAPES, LabelSpace
from panoptool.evaluation.metrics.gt import (GroundTruth, nanmean,  # noqa: F401 (re-export)
                                             segment_prediction_counts)

#: Size of the confusion matrix of Cityscapes: label ids 0..33 (``labels.n_labels``).
N_LABELS = CITYSCAPES.n_labels

#: Label ids evaluated (not ignoreInEval), in train-id order (length 19).
EVAL_LABEL_IDS = CITYSCAPES.eval_label_ids


@lru_cache(maxsize=16)
def average_class_size(labels: LabelSpace = CITYSCAPES) -> np.ndarray:
    """iIoU's weights: float64 (256,), the average instance size of each label id's class,
    cityscapesscripts' ``avgClassSize`` (matched by class name); NaN for the classes it does
    not list (their iIoU is NaN)."""
    # imported here: cityscapesscripts (and PIL through it) cost ~20 ms of every start-up
    from cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling import args as _cs_args

    sizes = np.full(256, np.nan)
    for c in labels.categories:
        if c.name in _cs_args.avgClassSize:
            sizes[c.id] = _cs_args.avgClassSize[c.name]
    sizes.flags.writeable = False
    return sizes


#: Label ids whose instances enter iIoU: hasInstances and not ignoreInEval.
IIOU_LABEL = CITYSCAPES.is_thing_label


@dataclass
class SemanticStats:
    """Additive statistics of semantic labeling (N = ``labels.n_labels``, 34 for Cityscapes).

    confusion : int64 (N, N), pixels with ground-truth label i predicted as label j.
    tp_weighted, fn_weighted : float64 (N,), iIoU's weighted instance pixels per label id.
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


def unknown_prediction_ids(counts: np.ndarray, labels: LabelSpace = CITYSCAPES) -> list[int]:
    """Predicted values that are not label ids of ``labels`` (from
    :func:`segment_prediction_counts`)."""
    used = counts.sum(axis=0) > 0
    return np.flatnonzero(used & ~labels.known_label).tolist()


def update(gt: GroundTruth, pred_label_ids: np.ndarray, counts: np.ndarray | None = None,
           labels: LabelSpace = CITYSCAPES) -> SemanticStats:
    """Statistics of one image.

    Parameters
    ----------
    gt : ground truth (segments; label ids known to ``labels``).
    pred_label_ids : uint8 (H, W), predicted label ids (all known: Cityscapes <= 33).
    counts : optional precomputed :func:`segment_prediction_counts`.
    labels : the label space.

    Returns
    -------
    SemanticStats of this image.
    """
    if counts is None:
        counts = segment_prediction_counts(gt, pred_label_ids)
    n_labels = labels.n_labels
    seg_counts = counts[:, :n_labels]
    onehot = np.zeros((n_labels, gt.n_segments), dtype=np.int64)
    onehot[gt.label_ids, np.arange(gt.n_segments)] = 1
    confusion = onehot @ seg_counts

    # iIoU: instances with id > 1000 of an evaluated thing class, from the instance map
    inst = gt.instance_ids.astype(np.int64)
    inst_label = inst // 1000
    use = (inst > 1000) & labels.is_thing_label[np.minimum(inst_label, 255)]
    tp_w = np.zeros(n_labels)
    fn_w = np.zeros(n_labels)
    if use.any():
        ids, which = np.unique(inst[use], return_inverse=True)
        sel = np.flatnonzero(use)
        size = np.bincount(which, weights=seg_counts[sel].sum(axis=1).astype(np.float64),
                           minlength=len(ids))
        inst_labels = ids // 1000
        tp_seg = seg_counts[sel, inst_label[sel]].astype(np.float64)
        tp = np.bincount(which, weights=tp_seg, minlength=len(ids))
        weight = average_class_size(labels)[inst_labels] / size
        np.add.at(tp_w, inst_labels, tp * weight)
        np.add.at(fn_w, inst_labels, (size - tp) * weight)
    return SemanticStats(confusion, tp_w, fn_w, 1)


def compute(stats: SemanticStats, labels: LabelSpace = CITYSCAPES) -> dict:
    """IoU and iIoU per class and their means, as fractions (NaN where undefined).

    Returns
    -------
    dict with ``iou`` and ``iiou``: float64 (K,) indexed by train id (19 for Cityscapes;
    iiou NaN for stuff classes), ``mIoU`` and ``iIoU``: floats (NaN if no class is defined).
    """
    conf = stats.confusion
    evaluated = labels.is_evaluated_label[:labels.n_labels]
    iou = np.full(labels.num_classes, np.nan)
    iiou = np.full(labels.num_classes, np.nan)
    for train_id, label in enumerate(labels.eval_label_ids):
        tp = int(conf[label, label])
        fn = int(conf[label, :].sum()) - tp
        rows = evaluated.copy()
        rows[label] = False
        fp = int(conf[rows, label].sum())
        if tp + fp + fn > 0:
            iou[train_id] = tp / (tp + fp + fn)
        if labels.is_thing_label[label]:
            denom = stats.tp_weighted[label] + fp + stats.fn_weighted[label]
            if denom != 0:
                iiou[train_id] = float(stats.tp_weighted[label]) / denom
    return {"iou": iou, "iiou": iiou, "mIoU": nanmean(iou), "iIoU": nanmean(iiou)}
