"""Boundary IoU and Boundary PQ (Cheng et al., "Boundary IoU: Improving Object-Centric Image
Segmentation Evaluation", CVPR 2021).

The boundary region of a mask is the set of its pixels within distance ``d`` of its contour,
``d = max(1, round(ratio * image diagonal))`` (Python's ``round``, half to even, as the
authors' ``boundary_iou.utils.mask_to_boundary``). As in that reference, the distance is
the chessboard distance (erosion ``d`` times with a 3x3 square, i.e. once with a
``(2d+1) x (2d+1)`` square) and the image is padded by one pixel outside the mask, so a
mask cut by the image border has a boundary along the border too::

    boundary(M) = M - erode(pad(M, 1, value 0), 3x3 square, d times)

Boundary IoU of two masks is ``|boundary(G) & boundary(P)| / |boundary(G) | boundary(P)|``.

Every mask of one label map at once
-----------------------------------
Where the masks are the regions of one label map (the classes of a semantic map, the
segments of a panoptic map) all boundaries come from two OpenCV passes, whatever the number
of masks: a pixel ``p`` is in the boundary of its own region iff some pixel of another label
lies within chessboard distance ``d`` (or ``p`` lies within ``d - 1`` of the image border).
Walking from ``p`` straight towards such a pixel, the last pixel still of ``p``'s label has a
differing 8-neighbour and lies within ``d - 1`` of ``p``; conversely a pixel within ``d - 1``
with a differing 8-neighbour puts a differing pixel within ``d``. So the boundary band is
the set of pixels within chessboard distance ``d - 1`` of an *edge pixel* (a pixel with an
8-neighbour of another label, or on the image border): one 3x3 min/max pass for the edge
pixels and one ``(2d-1)`` square dilation of them (:func:`boundary_band`).

Metrics
-------
* Semantic Boundary IoU, per class (the K train ids, 19 for Cityscapes) over the dataset
  like mIoU: the boundary of the class mask in the ground truth and in the prediction,
  intersection and union summed over images, counting only pixels whose ground truth is
  not ignored (as the Cityscapes IoU does); the mean over classes with a non-empty union.
* Boundary PQ: PQ (see :mod:`.panoptic`) whose segment IoU is ``min(mask IoU, boundary
  IoU)``, for matching (> 0.5) and for SQ, as the authors' Cityscapes panoptic evaluator
  (``boundary_iou/cityscapes_panoptic_api``) computes it: each segment's boundary from its
  own mask, predicted boundary pixels on ground-truth VOID removed from the boundary union;
  false positives as in PQ (from the masks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from panoptool.errors import ArrayError, ConfigError
from panoptool.labels import CITYSCAPES, NUM_CLASSES, LabelSpace
from panoptool.evaluation.metrics.gt import GroundTruth
from panoptool.evaluation.metrics import panoptic
from panoptool.evaluation.metrics.panoptic import PanopticGroundTruth, PanopticStats

#: Default ratio of the boundary width to the image diagonal (the paper's 2 %).
DEFAULT_RATIO = 0.02

_K3 = np.ones((3, 3), dtype=np.uint8)
#: Largest joint histogram done with OpenCV (uint16 codes); more bins use np.bincount.
_MAX_HIST_BINS = 1 << 16


def boundary_width(shape: tuple[int, int], ratio: float = DEFAULT_RATIO) -> int:
    """Boundary width ``d`` in pixels for an image of ``shape`` (H, W).

    ``max(1, round(ratio * sqrt(H^2 + W^2)))``, rounding half to even like the reference.

    >>> boundary_width((1024, 2048)), boundary_width((256, 512)), boundary_width((8, 8))
    (46, 11, 1)
    """
    if not ratio > 0:
        raise ConfigError(f"boundary ratio must be > 0, got {ratio}")
    h, w = shape
    return max(1, int(round(ratio * math.sqrt(h * h + w * w))))


def edge_pixels(labels: np.ndarray) -> np.ndarray:
    """Pixels with an 8-neighbour of another label, or on the image border.

    Parameters
    ----------
    labels : uint8 or uint16 (H, W) label map.

    Returns
    -------
    uint8 (H, W), 1 on edge pixels.

    >>> edge_pixels(np.array([[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 2],
    ...                       [1, 1, 1, 1]], np.uint8))
    array([[1, 1, 1, 1],
           [1, 0, 1, 1],
           [1, 0, 1, 1],
           [1, 1, 1, 1]], dtype=uint8)
    """
    labels = np.ascontiguousarray(labels)
    hi = cv2.dilate(labels, _K3, borderType=cv2.BORDER_REPLICATE)
    lo = cv2.erode(labels, _K3, borderType=cv2.BORDER_REPLICATE)
    edge = cv2.compare(hi, lo, cv2.CMP_NE)  # 255 where the 3x3 window is not uniform
    edge[0, :] = 255
    edge[-1, :] = 255
    edge[:, 0] = 255
    edge[:, -1] = 255
    return cv2.threshold(edge, 0, 1, cv2.THRESH_BINARY)[1]


def boundary_band(labels: np.ndarray, width: int) -> np.ndarray:
    """Union of the boundaries of all regions of a label map.

    Parameters
    ----------
    labels : uint8 or uint16 (H, W); each value is one region (mask).
    width : boundary width d >= 1 (see :func:`boundary_width`).

    Returns
    -------
    bool (H, W): pixel p is True iff p is in ``boundary(labels == labels[p])``.

    >>> boundary_band(np.ones((5, 5), np.uint8), 2).astype(int)
    array([[1, 1, 1, 1, 1],
           [1, 1, 1, 1, 1],
           [1, 1, 0, 1, 1],
           [1, 1, 1, 1, 1],
           [1, 1, 1, 1, 1]])
    """
    if width < 1:
        raise ConfigError(f"boundary width must be >= 1, got {width}")
    edge = edge_pixels(labels)
    if width > 1:
        size = 2 * width - 1
        edge = cv2.dilate(edge, cv2.getStructuringElement(cv2.MORPH_RECT, (size, size)),
                          borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return edge.view(bool)


# --- semantic Boundary IoU ---------------------------------------------------------------------

@dataclass
class BoundarySemanticStats:
    """Additive per-class boundary statistics (train-id order, K = 19 for Cityscapes).

    intersection, union : int64 (K,), boundary pixels summed over images.
    """

    intersection: np.ndarray = field(default_factory=lambda: np.zeros(NUM_CLASSES,
                                                                      dtype=np.int64))
    union: np.ndarray = field(default_factory=lambda: np.zeros(NUM_CLASSES, dtype=np.int64))
    n_images: int = 0

    def __add__(self, other: "BoundarySemanticStats") -> "BoundarySemanticStats":
        return BoundarySemanticStats(self.intersection + other.intersection,
                                     self.union + other.union,
                                     self.n_images + other.n_images)


def semantic_update(gt_train_ids: np.ndarray, pred_train_ids: np.ndarray,
                    width: int, labels: LabelSpace = CITYSCAPES) -> BoundarySemanticStats:
    """Boundary statistics of one image's semantic labeling.

    Parameters
    ----------
    gt_train_ids, pred_train_ids : uint8 (H, W), train ids 0..K-1, any other value (255) =
        ignore / no class.
    width : boundary width d (:func:`boundary_width`).
    labels : the label space (K = ``labels.num_classes``).

    Returns
    -------
    BoundarySemanticStats; pixels whose ground truth is no class are not counted.
    """
    if gt_train_ids.shape != pred_train_ids.shape:
        raise ArrayError(None, f"shapes differ: {gt_train_ids.shape} vs "
                               f"{pred_train_ids.shape}")
    band_g = boundary_band(gt_train_ids, width).view(np.uint8)
    band_p = boundary_band(pred_train_ids, width).view(np.uint8)
    k = labels.num_classes
    n = k + 1  # train ids 0..K-1 and K for the rest (ignored / no class)
    # one joint histogram over (gt class, predicted class, in gt band, in predicted band)
    code = np.minimum(gt_train_ids, k).astype(np.uint16 if n * n * 4 <= 1 << 16 else np.int64)
    code *= n
    code += np.minimum(pred_train_ids, k)
    code *= 4
    code += band_g << 1
    code += band_p
    hist = _histogram(code, n * n * 4).reshape(n, n, 2, 2)
    area_g = hist[:k, :, 1, :].sum(axis=(1, 2))
    area_p = hist[:k, :k, :, 1].sum(axis=(0, 2))  # gt not ignored
    inter = np.diagonal(hist[:k, :k, 1, 1]).copy()
    return BoundarySemanticStats(inter, area_g + area_p - inter, n_images=1)


def _histogram(values: np.ndarray, n_bins: int, mask: np.ndarray | None = None) -> np.ndarray:
    """int64 (n_bins,) counts of a uint16 (H, W) array's values (where ``mask`` is 1).

    OpenCV's histogram (exact in float32 below 2^24 pixels) is ten times faster without
    its mask argument, so masked-out pixels go to an extra bin instead.
    """
    if mask is not None:
        if n_bins + 1 > 1 << 16:
            return np.bincount(values[mask.view(bool)], minlength=n_bins).astype(np.int64)
        values = values + np.uint16(1)
        values *= mask
        return _histogram(values, n_bins + 1)[1:]
    if values.size < 1 << 24 and n_bins <= 1 << 16:
        hist = cv2.calcHist([np.ascontiguousarray(values)], [0], None, [n_bins], [0, n_bins])
        return hist.ravel().astype(np.int64)
    return np.bincount(values.ravel(), minlength=n_bins).astype(np.int64)


def label_ids_to_train_ids(label_ids: np.ndarray, labels: LabelSpace = CITYSCAPES
                           ) -> np.ndarray:
    """uint8 (H, W) label ids -> train ids (ignore for labels not evaluated)."""
    return cv2.LUT(np.ascontiguousarray(label_ids, dtype=np.uint8), labels.label_to_train)


def ground_truth_train_ids(gt: GroundTruth, labels: LabelSpace = CITYSCAPES) -> np.ndarray:
    """Train-id map (uint8 (H, W)) of segmented ground truth."""
    return segment_map(gt, labels.label_to_train[gt.label_ids]).astype(np.uint8)


def semantic_compute(stats: BoundarySemanticStats) -> dict:
    """``iou``: float64 (K,) per class (NaN where the union is empty) and ``mean`` over
    the classes that have one (NaN if none), as fractions."""
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(stats.union > 0, stats.intersection / np.maximum(stats.union, 1),
                       np.nan)
    present = ~np.isnan(iou)
    return {"iou": iou, "mean": float(iou[present].mean()) if present.any() else float("nan")}


# --- Boundary PQ -------------------------------------------------------------------------------

def panoptic_update(gt: GroundTruth, pan_gt: PanopticGroundTruth, pred_index: np.ndarray,
                    pred_categories: np.ndarray, seg_counts: np.ndarray,
                    width: int, labels: LabelSpace = CITYSCAPES) -> PanopticStats:
    """Boundary-PQ statistics of one image.

    Parameters
    ----------
    gt : ground truth (segments S).
    pan_gt : :func:`panoptic.panoptic_ground_truth` of ``gt``.
    pred_index : uint16 (H, W), 0 on unlabelled pixels, k on the k-th predicted segment.
    pred_categories : int64 (P,), category (label id) of each predicted segment.
    seg_counts : int64 (S, P + 1), ``segment_prediction_counts(gt, pred_index, P + 1)``.
    width : boundary width d (:func:`boundary_width`).
    labels : the label space.

    Returns
    -------
    PanopticStats whose ``iou`` sums ``min(mask IoU, boundary IoU)`` of the matches.
    """
    n_pred = len(pred_categories)
    overlap = panoptic.overlaps(pan_gt, seg_counts, n_pred)
    gi, pi, iou = panoptic.candidate_matches(pan_gt, pred_categories, overlap)
    keep = iou > 0.5  # min(mask, boundary) > 0.5 needs mask IoU > 0.5
    gi, pi, iou = gi[keep], pi[keep], iou[keep]
    if len(gi):
        b_inter, b_gt, b_pred = _boundary_counts(gt, pan_gt, pred_index, n_pred, width)
        bi = b_inter[gi + 1, pi + 1]
        b_union = b_pred[pi + 1] + b_gt[gi + 1] - bi - b_inter[0, pi + 1]
        iou = np.minimum(iou, bi / b_union)
        hit = iou > 0.5
        gi, pi, iou = gi[hit], pi[hit], iou[hit]
    return panoptic.count_matches(pan_gt, pred_categories, overlap, gi, pi, iou, labels)


def _boundary_counts(gt: GroundTruth, pan_gt: PanopticGroundTruth, pred_index: np.ndarray,
                     n_pred: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boundary pixel counts of the panoptic segments.

    Returns
    -------
    inter : int64 (G + 1, P + 1); ``[g, p]`` = pixels in the boundary of ground-truth
        segment g and of predicted segment p; row 0 = predicted boundary pixels on VOID.
    gt_area : int64 (G + 1,), boundary pixels per ground-truth segment (0 = VOID, unused).
    pred_area : int64 (P + 1,), boundary pixels per predicted segment.
    """
    n_gt = len(pan_gt.ids)
    gt_index = segment_map(gt, pan_gt.segment_to_gt)
    pred_index = np.ascontiguousarray(pred_index, dtype=np.uint16)
    band_g = boundary_band(gt_index, width).view(np.uint8)
    band_p = boundary_band(pred_index, width).view(np.uint8)
    n_pairs = (n_gt + 1) * (n_pred + 1)
    if n_pairs * 4 <= _MAX_HIST_BINS:
        # one joint histogram over (gt segment, predicted segment, in gt band, in pred band)
        code = gt_index * np.uint16(n_pred + 1)
        code += pred_index
        code <<= 2
        code += band_g << 1
        code += band_p
        hist = _histogram(code, n_pairs * 4).reshape(n_gt + 1, n_pred + 1, 2, 2)
    else:  # many segments: the same counts from the pixels of either band
        on = (band_g | band_p).view(bool)
        code = (gt_index[on].astype(np.int64) * (n_pred + 1) + pred_index[on]) * 4
        code += band_g[on].astype(np.int64) * 2 + band_p[on]
        hist = np.bincount(code, minlength=n_pairs * 4).reshape(n_gt + 1, n_pred + 1, 2, 2)
    gt_area = hist[:, :, 1, :].sum(axis=(1, 2))
    pred_area = hist[:, :, :, 1].sum(axis=(0, 2))
    inter = hist[:, :, 1, 1].copy()
    inter[0] = hist[0, :, :, 1].sum(axis=1)  # VOID: every predicted boundary pixel on it
    return inter, gt_area, pred_area


def segment_map(gt: GroundTruth, values: np.ndarray) -> np.ndarray:
    """``values[gt.segment_index]`` as uint16 (H, W), by an OpenCV look-up table when the
    image has at most 256 segments and the values fit in 8 bits."""
    values = np.asarray(values)
    if gt.n_segments <= 256 and values.max(initial=0) < 256:
        lut = np.zeros(256, np.uint8)
        lut[: gt.n_segments] = values
        return cv2.LUT(gt.segment_index.astype(np.uint8), lut).astype(np.uint16)
    return np.take(values.astype(np.uint16), gt.segment_index)


# --- everything of one image --------------------------------------------------------------------

@dataclass
class BoundaryStats:
    """Boundary statistics of one image or a sum: semantic and/or panoptic part."""

    semantic: BoundarySemanticStats | None = None
    panoptic: PanopticStats | None = None

    def __add__(self, other: "BoundaryStats") -> "BoundaryStats":
        def add(a, b):
            return b if a is None else a if b is None else a + b
        return BoundaryStats(add(self.semantic, other.semantic),
                             add(self.panoptic, other.panoptic))
