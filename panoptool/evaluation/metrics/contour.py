"""Score of the contour head: precision / recall / F against the ground-truth instance
boundaries, as semantic-edge-detection benchmarks do (ODS, OIS).

Protocol (BSDS500, Arbelaez et al., TPAMI 2011, and SBD, Hariharan et al., ICCV 2011, as used
for Cityscapes by CASENet / SEAL):

* Ground truth: the 1-px inner boundaries of the non-crowd thing instances
  (:func:`panoptool.targets.core.inner_boundary`, the contour target at dilation 1).
* Prediction: ``contour_prob`` thinned by non-maximum suppression across the contour
  (:func:`contour_nms`, as the edge NMS of Dollar & Zitnick's structured edges that the
  BSDS/SBD evaluations of HED, RCF, CASENet apply before scoring), then thresholded at the
  99 thresholds ``0.01, 0.02, ..., 0.99`` (BSDS's ``nthresh = 99``).
* Matching tolerance: ``max_dist x image diagonal`` pixels (BSDS's ``maxDist = 0.0075``).
  A predicted pixel is a true positive if a ground-truth boundary pixel lies within the
  tolerance (Euclidean); a ground-truth pixel is recalled if a predicted pixel at that
  threshold lies within it. This is the distance-transform simplification of BSDS's
  ``correspondPixels``, which instead finds a one-to-one (bipartite) assignment: without
  the one-to-one constraint two predicted pixels may match the same ground-truth pixel, so
  precision is an upper bound of BSDS's; the NMS makes such double responses rare (each
  cross-section of a contour keeps one pixel), but it is not the same number.
* Per threshold and image: ``cnt_r`` recalled ground-truth pixels, ``sum_r`` ground-truth
  pixels, ``cnt_p`` matched predicted pixels, ``sum_p`` predicted pixels (BSDS's names).
  ODS: the threshold with the best F of the dataset's summed counts (on the grid; BSDS also
  interpolates between grid points, here not). OIS: per image the threshold with its best F
  (first maximum), those counts summed over images, then P, R, F.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from panoptool.errors import ArrayError, ConfigError
from panoptool.io.jit import njit

#: BSDS's thresholds: 99 values 0.01 .. 0.99.
N_THRESHOLDS = 99
THRESHOLDS = np.linspace(1.0 / (N_THRESHOLDS + 1), 1.0 - 1.0 / (N_THRESHOLDS + 1),
                         N_THRESHOLDS)
_T32_INF = np.append(THRESHOLDS.astype(np.float32), np.float32(np.inf))
#: Relative slack of the NMS comparison (structured edges' ``edgesNms``: m = 1.01).
NMS_SLACK = 0.01
#: BSDS's default matching tolerance, a fraction of the image diagonal.
DEFAULT_MAX_DIST = 0.0075


def tolerance_px(shape: tuple[int, int], max_dist: float = DEFAULT_MAX_DIST) -> float:
    """Matching tolerance in pixels: ``max_dist * sqrt(H^2 + W^2)``.

    >>> round(tolerance_px((1024, 2048)), 2), round(tolerance_px((256, 512)), 2)
    (17.17, 4.29)
    """
    if not max_dist > 0:
        raise ConfigError(f"max_dist must be > 0, got {max_dist}")
    h, w = shape
    return max_dist * math.sqrt(h * h + w * w)


def contour_nms(prob: np.ndarray, sigma: float = 0.7) -> np.ndarray:
    """Thin a contour probability map to its ridges (non-maximum suppression).

    The map is smoothed with a Gaussian of ``sigma``; the normal of the contour at each pixel
    is the direction of the most negative curvature of the smoothed map (an eigenvector of
    its Hessian). A pixel is kept if its smoothed value, times ``1 + NMS_SLACK``, is at least
    that of both neighbours one pixel along the normal (bilinear), and above one of them
    (the slack, Dollar & Zitnick's ``m = 1.01``, keeps both pixels of a two-pixel ridge whose
    interpolated neighbours differ in the last digits). Comparing smoothed values
    breaks plateaus (a saturated band of equal probabilities keeps its centre line; a band
    of even width its two centre pixels); perfectly flat areas are not kept.

    Parameters
    ----------
    prob : float32 (H, W) in [0, 1].
    sigma : smoothing (pixels); 0.7 keeps a perfect 1-px map whole (the ground truth
        scores F = 1 on synthetic scenes, where sigma = 1 merges close parallel lines)
        and still breaks plateaus.

    Returns
    -------
    float32 (H, W): ``prob`` on the kept pixels, 0 elsewhere.

    >>> band = np.zeros((7, 9), np.float32)
    >>> band[2:5] = 0.9                    # a 3-px thick horizontal band
    >>> np.flatnonzero(contour_nms(band)[:, 4]).tolist()  # its centre row survives
    [3]
    """
    prob = np.ascontiguousarray(prob, dtype=np.float32)
    h, w = prob.shape
    smooth = cv2.GaussianBlur(prob, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    hxx = cv2.Sobel(smooth, cv2.CV_32F, 2, 0, ksize=3, borderType=cv2.BORDER_REPLICATE)
    hyy = cv2.Sobel(smooth, cv2.CV_32F, 0, 2, ksize=3, borderType=cv2.BORDER_REPLICATE)
    hxy = cv2.Sobel(smooth, cv2.CV_32F, 1, 1, ksize=3, borderType=cv2.BORDER_REPLICATE)
    # principal direction of the larger eigenvalue, turned by 90 degrees: the normal
    theta = 0.5 * np.arctan2(2 * hxy, hxx - hyy) + np.float32(np.pi / 2)
    dx, dy = np.cos(theta), np.sin(theta)
    xs = np.arange(w, dtype=np.float32)[None, :]
    ys = np.arange(h, dtype=np.float32)[:, None]
    ahead = cv2.remap(smooth, xs + dx, ys + dy, cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_REPLICATE)
    behind = cv2.remap(smooth, xs - dx, ys - dy, cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    top = smooth * np.float32(1 + NMS_SLACK)
    keep = (top >= ahead) & (top >= behind) & ((smooth > ahead) | (smooth > behind))
    return np.where(keep, prob, np.float32(0))


def threshold_levels(values: np.ndarray) -> np.ndarray:
    """Number of thresholds each value reaches (``#{t in THRESHOLDS : t <= v}``, compared
    in float32, the maps' precision), uint8.

    >>> threshold_levels(np.array([0.0, 0.01, 0.5, 0.995, 1.0], np.float32)).tolist()
    [0, 1, 50, 99, 99]
    """
    v = np.asarray(values, np.float32)
    # a first guess from v * 100, then one step either way where float rounding misled it
    guess = np.clip(np.floor(v * np.float32(100)), 0, N_THRESHOLDS).astype(np.intp)
    guess -= (guess > 0) & (_T32_INF[np.maximum(guess - 1, 0)] > v)
    guess += (guess < N_THRESHOLDS) & (_T32_INF[guess] <= v)
    return guess.astype(np.uint8)


def disk_offsets(radius: float) -> tuple[np.ndarray, np.ndarray]:
    """``(dy, dx)`` int32 of all offsets with ``dy^2 + dx^2 <= radius^2``, nearest first."""
    r = int(math.floor(radius))
    dy, dx = np.mgrid[-r: r + 1, -r: r + 1]
    d2 = dy * dy + dx * dx
    sel = d2 <= radius * radius
    order = np.argsort(d2[sel], kind="stable")
    return (dy[sel][order].astype(np.int32), dx[sel][order].astype(np.int32))


@njit
def _max_level_near(levels, ys, xs, dy, dx, top):
    """For each (ys[i], xs[i]): the largest ``levels`` value at the given offsets inside
    the image (stops early at ``top``); uint8 (N,)."""
    h, w = levels.shape
    n = ys.shape[0]
    out = np.zeros(n, np.uint8)
    for i in range(n):
        y0 = ys[i]
        x0 = xs[i]
        best = 0
        for k in range(dy.shape[0]):
            y = y0 + dy[k]
            x = x0 + dx[k]
            if 0 <= y < h and 0 <= x < w:
                v = levels[y, x]
                if v > best:
                    best = v
                    if best >= top:
                        break
        out[i] = best
    return out


@dataclass
class ContourStats:
    """Additive counts (BSDS's): per threshold (99,) ``cnt_r``, ``cnt_p``, ``sum_p``; the
    number of ground-truth pixels ``sum_r``; and the counts at each image's own best
    threshold summed (``ois``: cnt_r, sum_r, cnt_p, sum_p), for OIS."""

    cnt_r: np.ndarray = field(default_factory=lambda: np.zeros(N_THRESHOLDS, np.int64))
    sum_r: int = 0
    cnt_p: np.ndarray = field(default_factory=lambda: np.zeros(N_THRESHOLDS, np.int64))
    sum_p: np.ndarray = field(default_factory=lambda: np.zeros(N_THRESHOLDS, np.int64))
    ois: np.ndarray = field(default_factory=lambda: np.zeros(4, np.int64))
    n_images: int = 0

    def __add__(self, other: "ContourStats") -> "ContourStats":
        return ContourStats(self.cnt_r + other.cnt_r, self.sum_r + other.sum_r,
                            self.cnt_p + other.cnt_p, self.sum_p + other.sum_p,
                            self.ois + other.ois, self.n_images + other.n_images)


def _prf(cnt_r, sum_r, cnt_p, sum_p):
    """BSDS's P, R, F (0 where a denominator is 0), float64 arrays."""
    cnt_r, sum_r = np.asarray(cnt_r, np.float64), np.asarray(sum_r, np.float64)
    cnt_p, sum_p = np.asarray(cnt_p, np.float64), np.asarray(sum_p, np.float64)
    r = cnt_r / (sum_r + (sum_r == 0))
    p = cnt_p / (sum_p + (sum_p == 0))
    f = 2 * p * r / (p + r + ((p + r) == 0))
    return p, r, f


def update(contour_prob: np.ndarray, gt_boundary: np.ndarray, tolerance: float,
           nms: bool = True) -> ContourStats:
    """Counts of one image.

    Parameters
    ----------
    contour_prob : float (H, W) in [0, 1], the predicted contour probability.
    gt_boundary : bool (H, W), ground-truth boundary pixels.
    tolerance : matching distance in pixels (:func:`tolerance_px`).
    nms : thin the prediction first (:func:`contour_nms`).

    Returns
    -------
    ContourStats of this image (n_images = 1).
    """
    if contour_prob.shape != gt_boundary.shape:
        raise ArrayError(None, f"shapes differ: {contour_prob.shape} vs {gt_boundary.shape}")
    prob = contour_nms(contour_prob) if nms else np.asarray(contour_prob, np.float32)
    gt = np.ascontiguousarray(gt_boundary, dtype=bool)
    levels = np.zeros(prob.shape, np.uint8)
    py, px = np.nonzero(prob >= np.float32(THRESHOLDS[0]))
    lv = threshold_levels(prob[py, px])
    levels[py, px] = lv
    # predicted pixels: matched if a ground-truth pixel lies within the tolerance
    r2 = math.floor(tolerance * tolerance)
    if gt.any():  # exact Euclidean distance to the nearest ground-truth pixel
        dist = cv2.distanceTransform((~gt).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        matched = dist[py, px] <= math.sqrt(r2) + 1e-3  # squared distances are integers
    else:
        matched = np.zeros(len(py), bool)
    dy, dx = disk_offsets(math.sqrt(r2))
    hist_all = np.bincount(lv, minlength=N_THRESHOLDS + 1)
    hist_matched = np.bincount(lv[matched], minlength=N_THRESHOLDS + 1)
    # count at threshold k (0-based) = pixels whose level >= k + 1
    sum_p = np.cumsum(hist_all[::-1])[::-1][1:]
    cnt_p = np.cumsum(hist_matched[::-1])[::-1][1:]
    # ground-truth pixels: recalled at threshold k if a predicted pixel of level >= k + 1
    # lies within the tolerance
    gy, gx = np.nonzero(gt)
    best = _max_level_near(levels, gy.astype(np.int32), gx.astype(np.int32), dy, dx,
                           np.uint8(N_THRESHOLDS))
    hist_r = np.bincount(best, minlength=N_THRESHOLDS + 1)
    cnt_r = np.cumsum(hist_r[::-1])[::-1][1:]
    sum_r = int(len(gy))
    _, _, f = _prf(cnt_r, sum_r, cnt_p, sum_p)
    k = int(np.argmax(f))
    ois = np.array([cnt_r[k], sum_r, cnt_p[k], sum_p[k]], np.int64)
    return ContourStats(cnt_r.astype(np.int64), sum_r, cnt_p.astype(np.int64),
                        sum_p.astype(np.int64), ois, n_images=1)


def compute(stats: ContourStats) -> dict:
    """ODS and OIS from summed counts, as fractions.

    Returns
    -------
    dict: ``ODS`` (F at the best fixed threshold), ``P``, ``R`` and ``threshold`` there,
    ``OIS`` (F from the per-image best thresholds' counts), ``OIS_P``, ``OIS_R``, and
    ``precision``, ``recall``, ``f`` per threshold (99,). NaN everywhere if no image was
    counted.
    """
    if stats.n_images == 0:
        nan = float("nan")
        return {"ODS": nan, "P": nan, "R": nan, "threshold": nan, "OIS": nan,
                "OIS_P": nan, "OIS_R": nan}
    p, r, f = _prf(stats.cnt_r, stats.sum_r, stats.cnt_p, stats.sum_p)
    k = int(np.argmax(f))
    op, orr, of = _prf(*stats.ois)
    return {"ODS": float(f[k]), "P": float(p[k]), "R": float(r[k]),
            "threshold": float(THRESHOLDS[k]), "OIS": float(of), "OIS_P": float(op),
            "OIS_R": float(orr), "precision": p, "recall": r, "f": f}
