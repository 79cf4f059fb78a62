"""From prediction maps to instances and panoptic segments: :func:`derive_panoptic`.

The method (DESIGN.md, "The method, precisely"):

1. thing mask (semantic argmax in a thing class) minus contour pixels -> connected
   components; the class of a component is its most frequent semantic class;
2. split: cluster the predicted centres (pixel + offset) inside each instance (DBSCAN,
   ``eps``) and split where several clusters exist;
3. merge: join same-class instances whose mean predicted centres are closer than ``eps``;
4. min-area: remove instances smaller than ``min_area``, giving their pixels to the
   same-class instance whose centre is nearest the pixel's predicted centre, if closer
   than ``eps`` (else the pixels become void);
5. fill contours: give thing contour pixels back to the nearest instance of their class;
6. panoptic: stuff segments from the semantic argmax (one per class), thing segments from
   the instances. Each instance's class and confidence (mean softmax probability of its
   class over its pixels of that class) are computed on its final pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from panoptool.labels import CITYSCAPES, CLASS_NAMES, IGNORE, LabelSpace
from panoptool.postprocess.config import PostprocessConfig
from panoptool.postprocess import kernels
from panoptool.postprocess.instances import check_maps, fill_contours, gather_instances, thing_components
from panoptool.postprocess.refine import merge_instances, remove_small, split_instances

#: Thing segment ids are ``label_id * 1000 + k`` (as in Cityscapes' instanceIds) while
#: k < 1000; further instances of a class get ids from here on (Cityscapes), or from above
#: every ``label_id * 1000 + k`` of the label space (:func:`overflow_base`).
_OVERFLOW_BASE = 100_000


def overflow_base(labels: LabelSpace = CITYSCAPES) -> int:
    """The first segment id of the instances beyond the 1000th of a class: 100000, or
    ``n_labels * 1000`` where label ids reach 100 (COCO: 201000), so that it never equals a
    ``label_id * 1000 + k`` id.

    >>> from panoptool.labels import Category
    >>> overflow_base(), overflow_base(LabelSpace("big", (
    ...     Category(200, "cow", 0, "animal", 0, True, False, (9, 9, 9)),)))
    (100000, 201000)
    """
    return max(_OVERFLOW_BASE, labels.n_labels * 1000)


@dataclass(frozen=True)
class Segment:
    """One panoptic segment.

    Attributes
    ----------
    id : value of the segment in ``panoptic_ids`` (stuff: label id; thing: label id * 1000
        + k, k = 0, 1, ... per class, up to 999; beyond, :func:`overflow_base` + j).
    train_id, label_id : its class (label id = COCO ``category_id``).
    area : pixels.
    score : confidence of a thing instance (mean softmax probability of its class over
        its pixels of that class); 1.0 for stuff.
    instance : the instance's value in ``instance_ids`` (1..N); 0 for stuff.
    """

    id: int
    train_id: int
    label_id: int
    area: int
    score: float
    instance: int

    @property
    def isthing(self) -> bool:
        return self.instance > 0


@dataclass(frozen=True)
class PanopticResult:
    """What :func:`derive_panoptic` returns.

    Attributes
    ----------
    instance_ids : int32 (H, W), 0 = no instance, k = instance k (1..N).
    panoptic_ids : int32 (H, W), segment id per pixel (0 = void: ignore pixels and thing
        pixels that belong to no instance).
    segments : stuff segments by train id, then thing segments by instance number.
    """

    instance_ids: np.ndarray
    panoptic_ids: np.ndarray
    segments: tuple[Segment, ...]

    @property
    def instances(self) -> tuple[Segment, ...]:
        """The thing segments, instance k at position k - 1."""
        return tuple(s for s in self.segments if s.isthing)


def _derive(train_ids: np.ndarray, confidence: np.ndarray, contour_prob: np.ndarray,
            offset_yx: np.ndarray, config: PostprocessConfig, space: LabelSpace):
    """Steps 1-5 on the thing pixels; returns (stats, n, instance_ids, class_areas).

    The per-instance sums (:class:`InstanceSums`) are measured once on the
    components and then updated by each step for the pixels it moves only.
    """
    check_maps(train_ids, confidence, contour_prob, offset_yx)
    h, w = train_ids.shape
    components, n, class_areas = thing_components(train_ids, contour_prob,
                                                  config.contour_threshold, config.connectivity,
                                                  space)
    pixels, labels, stats = gather_instances(
        components, n, train_ids, confidence, contour_prob, config.contour_threshold,
        offset_yx, int(class_areas[space.is_thing_train].sum()), space)
    if n and config.split:
        labels, stats = split_instances(labels, pixels, stats, eps=config.eps,
                                        min_samples=config.min_samples, cell=config.cell)
    if n and config.merge:
        labels, stats = merge_instances(labels, stats, eps=config.eps)
    if n and config.min_area > 0:
        labels, stats = remove_small(labels, pixels, stats, min_area=config.min_area,
                                     eps=config.eps)
    if n:  # renumber the instances left to 1..n, in order
        labels, stats = stats.compacted(labels)
        n = len(stats) - 1
    instance_ids = np.zeros((h, w), dtype=np.int32)
    if n:
        kernels.scatter(instance_ids.reshape(-1), pixels.index, labels)
    if config.derivation == "seeded" and len(pixels):
        labels, stats, n = _grow(instance_ids, labels, pixels, stats, n, config)
    if n and config.fill_contours:
        todo = np.flatnonzero(pixels.contour & (labels == 0))
        if fill_contours(instance_ids, pixels.index[todo], train_ids, stats.classes()):
            got = instance_ids.ravel()[pixels.index[todo]]
            labels[todo] = got
            stats = stats.add_pixels(pixels, todo, np.zeros(len(todo), dtype=np.intp), got)
    return stats, n, instance_ids, class_areas


def _grow(instance_ids: np.ndarray, labels: np.ndarray, pixels, stats, n: int,
          config: PostprocessConfig):
    """The seeded derivation's growth step, after the refinement.

    1. The contour pixels without an instance join the same-class instance whose mean
       centre is nearest their predicted centre among those that reach them through
       contour pixels, if within ``band_eps`` (default ``eps``; :func:`kernels.grow_seeds`).
    2. The groups that none takes (objects lying wholly in the band, and pieces of
       objects cut off by another one) become new instances, which pass the refinement
       steps: merge with any same-class instance whose centre is within ``eps`` (a cut-off
       piece joins its body, :func:`merge_instances` with ``first_new``; if merge is on), a
       support test (at least ``min_samples`` of their predicted centres within ``eps`` of
       their mean: the evidence the split asks of a cluster) and min-area.
    3. With ``fill_contours``, the contour pixels still without an instance (the groups
       that failed) join the instance that reaches them with the nearest centre, without
       a limit; groups that no instance reaches stay void.

    ``instance_ids`` (int32 (H, W)) is updated. Returns (labels, stats, n).
    """
    todo = np.flatnonzero(pixels.contour & (labels == 0))
    if todo.size == 0:
        return labels, stats, n
    labels, stats, n_new = _grow_pass(instance_ids, labels, pixels, stats, n, todo,
                                      config.band_limit ** 2)
    if n_new > n:
        if config.merge:
            labels, stats = merge_instances(labels, stats, eps=config.eps, first_new=n + 1)
        labels, stats = _drop_incoherent(labels, pixels, stats, todo, n, config)
        if config.min_area > 0:  # only new instances can be small here
            labels, stats = remove_small(labels, pixels, stats, min_area=config.min_area,
                                         eps=config.eps)
        labels, stats = stats.compacted(labels)
        kernels.scatter(instance_ids.reshape(-1), pixels.index, labels)
    n = len(stats) - 1
    rest = todo[labels[todo] == 0]
    if config.fill_contours and rest.size and n:
        labels, stats, n_new = _grow_pass(instance_ids, labels, pixels, stats, n, rest, np.inf)
        if n_new > n:  # groups no instance reaches: void, as in the paper's fill-back
            unreached = rest[labels[rest] > n]
            instance_ids.ravel()[pixels.index[unreached]] = 0
            labels[unreached] = 0
            stats = stats.extended(n)
    return labels, stats, n


def _grow_pass(instance_ids, labels, pixels, stats, n, todo, limit2):
    """One :func:`kernels.grow_seeds` pass over the thing pixels at positions ``todo``
    (label 0); returns (labels, stats, n_new) with rows for the new groups."""
    mean_y, mean_x = stats.centres()
    got, n_new = kernels.grow_seeds(instance_ids.reshape(-1), pixels.shape[1],
                                    pixels.index[todo], pixels.train_ids, stats.classes(),
                                    pixels.centre_y[todo], pixels.centre_x[todo], mean_y, mean_x,
                                    limit2, n)
    labels = labels.copy()
    labels[todo] = got
    stats = stats.extended(n_new).add_pixels(pixels, todo, np.zeros(len(todo), dtype=np.intp),
                                             labels[todo])
    return labels, stats, n_new


def _drop_incoherent(labels: np.ndarray, pixels, stats, todo: np.ndarray, n: int,
                     config: PostprocessConfig):
    """Keep a new instance (label > n, its pixels among ``todo``) only if at least
    ``min_samples`` of its pixels' predicted centres lie within ``eps`` of its mean centre
    (the evidence the split asks of a cluster: a DBSCAN core); the others lose their pixels
    (the fill-back gives them to their neighbours)."""
    new = todo[labels[todo] > n]
    if new.size == 0:
        return labels, stats
    mean_y, mean_x = stats.centres()
    lab = labels[new]
    close = np.hypot(pixels.centre_y[new] - mean_y[lab],
                     pixels.centre_x[new] - mean_x[lab]) < config.eps
    support = np.bincount(lab[close], minlength=len(stats))
    weak = (support < config.min_samples)[lab]
    if not weak.any():
        return labels, stats
    drop = new[weak]
    stats = stats.add_pixels(pixels, drop, labels[drop], np.zeros(len(drop), dtype=np.intp))
    labels = labels.copy()
    labels[drop] = 0
    return labels, stats


def derive_instances(train_ids: np.ndarray, confidence: np.ndarray, contour_prob: np.ndarray,
                     offset_yx: np.ndarray, config: PostprocessConfig = PostprocessConfig(),
                     labels: LabelSpace = CITYSCAPES
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Steps 1-5 of the method: the instances.

    Parameters
    ----------
    train_ids : uint8 (H, W), semantic argmax (Cityscapes: 0..18, 255 = ignore).
    confidence : float (H, W), softmax probability of the argmax class.
    contour_prob : float (H, W), contour probability.
    offset_yx : float (2, H, W), (dy, dx) from each pixel to its predicted instance centre.
    config : the settings.
    labels : the label space (which train ids are thing classes).

    Returns
    -------
    instance_ids : int32 (H, W), 0 = none, 1..N in raster order of first appearance of the
        component each instance grew from.
    classes : uint8 (N + 1,), train id of instance k at index k (255 at 0).
    scores : float64 (N + 1,), confidence of instance k.
    areas : int64 (N + 1,), pixels of instance k.
    """
    stats, _, instance_ids, _ = _derive(train_ids, confidence, contour_prob, offset_yx, config,
                                        labels)
    classes, scores, areas = stats.classes(), stats.scores(), stats.area
    return instance_ids, classes, scores, areas


def derive_panoptic(train_ids: np.ndarray, confidence: np.ndarray, contour_prob: np.ndarray,
                    offset_yx: np.ndarray, config: PostprocessConfig = PostprocessConfig(),
                    labels: LabelSpace = CITYSCAPES) -> PanopticResult:
    """Instances and panoptic segments from prediction maps (the whole method).

    Parameters
    ----------
    train_ids : uint8 (H, W), semantic argmax (Cityscapes: 0..18, 255 = ignore).
    confidence : float (H, W), softmax probability of the argmax class.
    contour_prob : float (H, W), contour probability in [0, 1].
    offset_yx : float (2, H, W), (dy, dx) from each pixel to its predicted instance centre.
    config : the settings.
    labels : the label space: thing classes, and the label ids of the segments.

    Returns
    -------
    PanopticResult

    Examples
    --------
    Two touching cars (train id 13) on road (0), with a contour between them:

    >>> tid = np.zeros((6, 10), np.uint8); tid[1:5, 1:9] = 13
    >>> prob = np.zeros((6, 10), np.float32); prob[1:5, 5] = 1
    >>> off = np.zeros((2, 6, 10), np.float32)
    >>> res = derive_panoptic(tid, np.ones((6, 10), np.float32), prob, off,
    ...                       PostprocessConfig(min_area=0, split=False, merge=False))
    >>> res.instance_ids[2].tolist()
    [0, 1, 1, 1, 1, 1, 2, 2, 2, 0]
    >>> [(s.id, s.label_id, s.area) for s in res.segments]
    [(7, 7, 28), (26000, 26, 20), (26001, 26, 12)]
    """
    stats, n, instance_ids, hist = _derive(train_ids, confidence, contour_prob, offset_yx,
                                           config, labels)
    classes, scores, areas = stats.classes(), stats.scores(), stats.area
    to_label = labels.train_to_label
    # stuff: one segment per class present
    segments = [Segment(int(to_label[t]), int(t), int(to_label[t]), int(hist[t]), 1.0, 0)
                for t in labels.stuff_train_ids if hist[t] > 0]
    # things: label_id * 1000 + k per class
    seg_of = np.zeros(n + 1, dtype=np.int32)
    per_class: dict[int, int] = {}
    overflow = overflow_base(labels)
    for k in range(1, n + 1):
        if areas[k] == 0:  # cannot happen after compaction; guards the ids
            continue
        label_id = int(to_label[classes[k]])
        j = per_class.get(label_id, 0)
        per_class[label_id] = j + 1
        if j < 1000:
            seg_id = label_id * 1000 + j
        else:
            seg_id, overflow = overflow, overflow + 1
        seg_of[k] = seg_id
        segments.append(Segment(seg_id, int(classes[k]), label_id, int(areas[k]),
                                float(scores[k]), k))
    panoptic_ids = kernels.panoptic_ids(instance_ids, np.ascontiguousarray(train_ids), seg_of,
                                        labels.stuff_train_to_label)
    return PanopticResult(instance_ids=instance_ids, panoptic_ids=panoptic_ids,
                          segments=tuple(segments))


def segment_bboxes(panoptic_ids: np.ndarray, segment_ids: list[int]) -> dict[int, list[int]]:
    """COCO bounding box ``[x, y, width, height]`` of each segment id.

    Parameters
    ----------
    panoptic_ids : int (H, W).
    segment_ids : ids whose boxes are wanted (absent ids get ``[0, 0, 0, 0]``).

    >>> ids = np.array([[0, 5, 5], [0, 0, 5], [9, 0, 0]])
    >>> segment_bboxes(ids, [5, 9])
    {5: [1, 0, 2, 2], 9: [0, 2, 1, 1]}
    """
    ids = [int(i) for i in segment_ids]
    if not ids:
        return {}
    panoptic_ids = np.ascontiguousarray(panoptic_ids)
    top = max(max(ids), int(panoptic_ids.max(initial=0)))
    slot = np.full(top + 1, -1, dtype=np.int64)
    slot[ids] = np.arange(len(ids))
    box = kernels.bounding_boxes(panoptic_ids, slot, len(ids))
    return {sid: ([int(x0), int(y0), int(x1 - x0 + 1), int(y1 - y0 + 1)] if y1 >= 0
                  else [0, 0, 0, 0])
            for sid, (y0, x0, y1, x1) in zip(ids, box)}


def coco_categories(labels: LabelSpace = CITYSCAPES) -> list[dict]:
    """The COCO-panoptic ``categories`` of a label space: the evaluated classes, id = label
    id, as ``cityscapesscripts.preparation.createPanopticImgs`` writes them for Cityscapes."""
    return [{"id": c.id, "name": c.name, "color": list(c.color),
             "supercategory": c.supercategory, "isthing": 1 if c.has_instances else 0}
            for c in labels.categories if not c.ignore_in_eval]


__all__ = ["Segment", "PanopticResult", "derive_instances", "derive_panoptic",
           "segment_bboxes", "coco_categories", "CLASS_NAMES", "IGNORE"]
