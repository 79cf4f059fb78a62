"""Statistics of one image: its ground truth and result files read, every part evaluated.

:func:`evaluate_image` runs in a worker process for each :class:`ImageJob` (planned by
:mod:`panoptool.evaluation.plan`); only the small, additive :class:`ImageStats` travel back.
The result files are read with :mod:`panoptool.io.results`; the rules are those of
:mod:`panoptool.evaluation.metrics`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from panoptool.errors import InputError
from panoptool.evaluation import coco as coco_instances
from panoptool.evaluation import coco_panoptic
from panoptool.evaluation.metrics import boundary as bmetrics
from panoptool.evaluation.metrics import gt as gtm
from panoptool.evaluation.metrics import instance, panoptic, semantic
from panoptool.io import formats
from panoptool.io.files import read_png
from panoptool.io.results import (read_instance_list, read_mask, read_panoptic_rgb,
                                  read_result_png, read_semantic_result)
from panoptool.labels import CITYSCAPES, LabelSpace

PathLike = str | os.PathLike


@dataclass(frozen=True)
class ImageJob:
    """Files of one image for a worker (paths as strings, picklable).

    The ground truth is a Cityscapes image's two PNGs (``label_ids_path``,
    ``instance_ids_path``) or, with ``coco_sample`` (a
    :class:`~panoptool.io.datasets.CocoSample`), a COCO panoptic PNG and its segments;
    ``labels`` is the dataset's label space.
    """

    stem: str
    label_ids_path: str
    instance_ids_path: str
    results_dir: str
    semantic_path: str | None = None
    instance_txt: str | None = None
    panoptic_png: str | None = None
    panoptic_ids: tuple[int, ...] = ()
    panoptic_categories: tuple[int, ...] = ()
    cache_file: str | None = None
    instance_json: str | None = None  # COCO results file the entries below come from
    instance_entries: tuple = ()  # coco_io.ResultInstance of this image
    coco_ap: bool = False  # also gather COCO ground truth and detections (COCO mask AP)
    coco_cache_file: str | None = None
    boundary_ratio: float = 0.0  # > 0: also boundary statistics with this ratio
    coco_sample: object | None = None  # io.datasets.CocoSample: the ground truth instead
    labels: LabelSpace = CITYSCAPES

    def ground_truth_key(self) -> str:
        """Key of the ground truth in the caches: the digests of its files."""
        if self.coco_sample is not None:
            s = self.coco_sample
            return coco_panoptic.ground_truth_key(s.png_path, s.image, s.thing_ids)
        return gtm.cache_key(self.label_ids_path, self.instance_ids_path)


@dataclass
class ImageStats:
    """Statistics of one image (or a sum of images) for each part."""

    semantic: semantic.SemanticStats | None = None
    instance: instance.InstanceStats | None = None
    panoptic: panoptic.PanopticStats | None = None
    coco: "coco_instances.CocoImages | None" = None
    boundary: bmetrics.BoundaryStats | None = None

    def __add__(self, other: "ImageStats") -> "ImageStats":
        def add(a, b):
            return b if a is None else a if b is None else a + b
        return ImageStats(add(self.semantic, other.semantic), add(self.instance, other.instance),
                          add(self.panoptic, other.panoptic), add(self.coco, other.coco),
                          add(self.boundary, other.boundary))


# --- ground truth ------------------------------------------------------------------------------

def read_segmented_ground_truth(label_ids_path: PathLike, instance_ids_path: PathLike,
                                cache_file: PathLike | None = None,
                                labels: LabelSpace = CITYSCAPES) -> gtm.GroundTruth:
    """The ground truth of one image as segments, from the cache if it is up to date; every
    label id must be one of ``labels``.

    Raises
    ------
    InputError
        On missing/corrupt files, other sizes or dtypes, or unknown label ids.
    """
    return gtm.cached_ground_truth(
        cache_file, lambda: gtm.cache_key(label_ids_path, instance_ids_path),
        lambda: _read_ground_truth(label_ids_path, instance_ids_path, labels))


def _read_ground_truth(label_ids_path: PathLike, instance_ids_path: PathLike,
                       labels: LabelSpace) -> gtm.GroundTruth:
    """The two ground-truth PNGs read, checked and reduced to segments."""
    label_ids = read_result_png(label_ids_path, "semantic")
    if label_ids.ndim != 2 or label_ids.dtype != np.uint8:
        raise InputError(label_ids_path, f"expected a single-channel uint8 PNG, got shape "
                                         f"{label_ids.shape} dtype {label_ids.dtype}")
    inst = read_png(instance_ids_path, channels=1)
    if inst.dtype not in (np.uint16, np.uint8):
        raise InputError(instance_ids_path, f"expected a 16-bit PNG, got dtype {inst.dtype}")
    if inst.shape != label_ids.shape:
        raise InputError(instance_ids_path, f"size {inst.shape[1]}x{inst.shape[0]} differs "
                                            f"from {Path(label_ids_path).name} "
                                            f"({label_ids.shape[1]}x{label_ids.shape[0]})")
    gt = gtm.segment_ground_truth(label_ids, inst)
    _check_known_labels(gt, label_ids_path, instance_ids_path, labels)
    return gt


def _check_known_labels(gt: gtm.GroundTruth, label_ids_path: PathLike,
                        instance_ids_path: PathLike, labels: LabelSpace = CITYSCAPES) -> None:
    known = labels.known_label
    inst_label = gtm.instance_label(gt.instance_ids)
    bad = (inst_label > 255) | ~known[inst_label.clip(0, 255)]
    if bad.any():
        raise InputError(instance_ids_path, f"instance id(s) with unknown label "
                                            f"{np.unique(gt.instance_ids[bad])[:5].tolist()}")
    bad = ~known[gt.label_ids]
    if bad.any():
        raise InputError(label_ids_path, f"unknown label id(s) "
                                         f"{np.unique(gt.label_ids[bad]).tolist()}")


def job_ground_truth(job: ImageJob) -> gtm.GroundTruth:
    """The ground truth of a job: its Cityscapes PNGs or its COCO sample (cached in
    ``job.cache_file``)."""
    if job.coco_sample is not None:
        s = job.coco_sample
        return coco_panoptic.read_sample_ground_truth(s.png_path, s.image, s.thing_ids,
                                                      job.cache_file)
    return read_segmented_ground_truth(job.label_ids_path, job.instance_ids_path,
                                       job.cache_file, job.labels)


def job_panoptic_ground_truth(job: ImageJob, gt: gtm.GroundTruth
                              ) -> panoptic.PanopticGroundTruth:
    """The panoptic segments of a job's ground truth: createPanopticImgs' rule for
    Cityscapes, the listed segments for COCO."""
    if job.coco_sample is not None:
        return panoptic.segment_panoptic_ground_truth(gt, job.labels)
    return panoptic.panoptic_ground_truth(gt, job.labels)


def _unknown_ids_text(labels: LabelSpace) -> str:
    if labels == CITYSCAPES:
        return "Cityscapes label ids are 0..33"
    return f"not a category id of {labels.name!r}"


# --- one part each -----------------------------------------------------------------------------

def semantic_stats(gt: gtm.GroundTruth, path: PathLike,
                   keep: dict | None = None,
                   labels: LabelSpace = CITYSCAPES) -> semantic.SemanticStats:
    """Read a ``*_pred_labelIds.png`` and return its statistics.

    ``keep``, if given, receives the decoded prediction as ``keep["label_ids"]`` (uint8
    (H, W)), so that the boundary metrics do not decode it again.
    """
    pred = read_semantic_result(path, gt.shape)
    counts = semantic.segment_prediction_counts(gt, pred)
    unknown = semantic.unknown_prediction_ids(counts, labels)
    if unknown:
        raise InputError(path, f"unknown label id(s) {unknown} ({_unknown_ids_text(labels)})")
    if keep is not None:
        keep["label_ids"] = pred
    return semantic.update(gt, pred, counts, labels)


def txt_instances(gt: gtm.GroundTruth, txt_path: PathLike, results_dir: PathLike,
                  labels: LabelSpace = CITYSCAPES):
    """The evaluated instances of a ``_pred.txt``, each mask read once: ``(label_id,
    confidence, mask, overlap with the ground-truth segments, area)``. Instances of classes
    that are not evaluated are not read, as in cityscapesscripts; empty masks are skipped."""
    for mask_path, label_id, conf in read_instance_list(txt_path, results_dir, labels):
        if not instance.is_evaluated_label(label_id, labels):
            continue
        mask = read_mask(mask_path, gt.shape)
        overlap = instance.mask_segment_overlap(gt, mask)
        area = int(overlap.sum())
        if area:
            yield label_id, conf, mask, overlap, area


def predicted_instance_stats(gt: gtm.GroundTruth, label_ids, scores, areas, overlaps,
                             labels: LabelSpace = CITYSCAPES) -> instance.InstanceStats:
    """The instance statistics of an image's predictions: one entry per instance in each of
    ``label_ids``, ``scores``, ``areas`` (lists or arrays) and ``overlaps`` (its pixels on
    each ground-truth segment: a list of (S,) rows or a (P, S) array)."""
    areas = np.asarray(areas, dtype=np.int64)
    pred = instance.PredictedInstances(
        label_ids=np.asarray(label_ids, dtype=np.int64),
        scores=np.asarray(scores, dtype=np.float64), areas=areas,
        segment_overlap=np.asarray(overlaps, dtype=np.int64).reshape(len(areas),
                                                                     gt.n_segments))
    return instance.update(gt, pred, labels)


def instance_stats(gt: gtm.GroundTruth, txt_path: PathLike, results_dir: PathLike,
                   labels: LabelSpace = CITYSCAPES) -> instance.InstanceStats:
    """Read a ``_pred.txt`` and its masks and return its statistics."""
    found = list(txt_instances(gt, txt_path, results_dir, labels))
    return predicted_instance_stats(gt, [f[0] for f in found], [f[1] for f in found],
                                    [f[4] for f in found], [f[3] for f in found], labels)


def _prediction_index(rgb: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """uint16 (H, W): k on the pixels of the k-th listed segment id (1-based), 0 elsewhere
    (VOID); for the boundary metrics, which need the per-pixel segments (every colour of the
    PNG is known to be listed or VOID by then)."""
    rgba = np.zeros(rgb.shape[:2] + (4,), dtype=np.uint8)
    rgba[..., :3] = rgb[..., :3]
    pan_ids = rgba.view("<u4")[..., 0].astype(np.int64)
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    pos = np.minimum(np.searchsorted(sorted_ids, pan_ids), max(len(ids) - 1, 0))
    if not len(ids):
        return np.zeros(rgb.shape[:2], dtype=np.uint16)
    hit = sorted_ids[pos] == pan_ids
    return np.where(hit, order[pos] + 1, 0).astype(np.uint16)


def panoptic_stats(gt: gtm.GroundTruth, png_path: PathLike, ids: tuple[int, ...],
                   categories: tuple[int, ...], keep: dict | None = None,
                   labels: LabelSpace = CITYSCAPES,
                   pan_gt: panoptic.PanopticGroundTruth | None = None
                   ) -> panoptic.PanopticStats:
    """Read a panoptic PNG and return its statistics against the converted ground truth
    (``pan_gt``; default :func:`~panoptool.evaluation.metrics.panoptic.panoptic_ground_truth`
    of ``gt``).

    ``keep``, if given, receives what the boundary metrics need: ``pred_index`` (uint16
    (H, W), k on the k-th listed segment, 0 on VOID), ``seg_counts`` and ``pan_gt``.
    """
    rgb = read_panoptic_rgb(png_path, gt.shape)
    id_array = np.array(ids, dtype=np.int64)
    seg_counts, unlisted = panoptic.rgb_segment_counts(gt, rgb, id_array)
    if len(unlisted):
        raise InputError(png_path, f"segment id(s) {unlisted[:5].tolist()} are in the PNG but "
                                   f"not listed in {formats.PANOPTIC_JSON}")
    areas = seg_counts.sum(axis=0)[1:]
    if (areas == 0).any():
        absent = id_array[areas == 0][:5].tolist()
        raise InputError(png_path, f"segment id(s) {absent} listed in {formats.PANOPTIC_JSON} "
                                   f"are missing from the PNG")
    if pan_gt is None:
        pan_gt = panoptic.panoptic_ground_truth(gt, labels)
    if keep is not None:
        keep.update(pred_index=_prediction_index(rgb, id_array), seg_counts=seg_counts,
                    pan_gt=pan_gt)
    return panoptic.update(gt, pan_gt, None, np.array(categories, dtype=np.int64), seg_counts,
                           labels)


def boundary_image_stats(gt: gtm.GroundTruth, job: ImageJob, sem_keep: dict | None,
                         pan_keep: dict | None) -> bmetrics.BoundaryStats:
    """Boundary statistics of one image from the predictions its parts decoded."""
    width = bmetrics.boundary_width(gt.shape, job.boundary_ratio)
    out = bmetrics.BoundaryStats()
    labels = job.labels
    if sem_keep:
        out.semantic = bmetrics.semantic_update(
            bmetrics.ground_truth_train_ids(gt, labels),
            bmetrics.label_ids_to_train_ids(sem_keep["label_ids"], labels), width, labels)
    if pan_keep:
        out.panoptic = bmetrics.panoptic_update(
            gt, pan_keep["pan_gt"], pan_keep["pred_index"],
            np.array(job.panoptic_categories, dtype=np.int64), pan_keep["seg_counts"], width,
            labels)
    return out


# --- the whole image ---------------------------------------------------------------------------

def _instance_part(gt: gtm.GroundTruth, job: ImageJob, out: ImageStats) -> None:
    """The instance statistics of ``job`` (and its COCO images for COCO mask AP) into
    ``out``."""
    dets: list = []
    labels = job.labels
    if job.instance_txt is not None and job.coco_ap:
        out.instance, dets = coco_instances.txt_instance_stats(gt, job.stem, job.instance_txt,
                                                               job.results_dir, labels)
    elif job.instance_txt is not None:
        out.instance = instance_stats(gt, job.instance_txt, job.results_dir, labels)
    if job.instance_json is not None:
        out.instance, dets = coco_instances.entries_instance_stats(
            gt, job.stem, job.instance_entries, job.instance_json, labels,
            detections=job.coco_ap)
    if job.coco_ap:
        key = None if job.coco_cache_file is None else job.ground_truth_key()
        coco = job.coco_sample
        out.coco = coco_instances.CocoImages.one(
            job.stem, gt.shape,
            coco_instances.read_coco_gt_cached(job.coco_cache_file, key, gt, labels,
                                               by_segment=coco is not None),
            dets, file_name=None if coco is None else coco.image.file_name)


def evaluate_image(job: ImageJob) -> ImageStats:
    """Statistics of one image for every part of its job (runs in a worker process)."""
    gt = job_ground_truth(job)
    out = ImageStats()
    sem_keep: dict | None = {} if job.boundary_ratio > 0 else None
    pan_keep: dict | None = {} if job.boundary_ratio > 0 else None
    if job.semantic_path is not None:
        out.semantic = semantic_stats(gt, job.semantic_path, keep=sem_keep, labels=job.labels)
    _instance_part(gt, job, out)
    if job.panoptic_png is not None:
        out.panoptic = panoptic_stats(gt, job.panoptic_png, job.panoptic_ids,
                                      job.panoptic_categories, keep=pan_keep,
                                      labels=job.labels,
                                      pan_gt=job_panoptic_ground_truth(job, gt))
    if job.boundary_ratio > 0:
        out.boundary = boundary_image_stats(gt, job, sem_keep, pan_keep)
    return out
