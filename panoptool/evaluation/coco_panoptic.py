"""PQ / SQ / RQ on any COCO-panoptic dataset (COCO, Mapillary Vistas, ADE20K), with the rules of
panopticapi's ``pq_compute`` (cityscapesscripts ships the same code as
``evaluation.evalPanopticSemanticLabeling.pq_compute_single_core``).

The ground truth comes from a checked :class:`~panoptool.io.coco_panoptic.CocoPanopticDataset`
and the label space from its categories (:func:`~panoptool.io.coco_panoptic.label_space`).
Each image's ground truth becomes the segment form of :mod:`.metrics.gt` (one segment per
listed ground-truth segment, plus void) and the PQ statistics of :mod:`.metrics.panoptic`
are computed on it: crowd segments (``iscrowd`` 1) match nothing, and an unmatched predicted
segment lying more than half on void or on its category's crowd region is no false positive.

Predictions: a COCO panoptic JSON whose ``annotations`` name the ground truth's images
(``image_id``), and the folder of its PNGs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from panoptool.errors import InputError
from panoptool.evaluation.metrics import gt as gtm
from panoptool.evaluation.metrics import panoptic
from panoptool.evaluation.metrics.gt import GroundTruth
from panoptool.io.coco_panoptic import (CocoPanopticDataset, PanopticImage,
                                        index_annotations, label_space, remap,
                                        segment_encoding, segment_index)
from panoptool.io.files import read_json, read_png, safe_join
from panoptool.labels import LabelSpace

PathLike = str | os.PathLike


def listed_order_index(png_path: PathLike, image: PanopticImage
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The image's panoptic PNG read once and checked
    (:func:`~panoptool.io.coco_panoptic.segment_index`), as ``(index uint16 (H, W), areas
    int64 (G + 1,))``: index k (1..G) on the pixels of the k-th segment of
    ``segments_info``, 0 on void; areas by index."""
    _, listed, sorted_index, counts = segment_index(png_path, image)
    # position in the sorted ids + 1 -> position in segments_info + 1 (0: void)
    slot = np.zeros(len(listed) + 1, dtype=np.uint16)
    rank = np.searchsorted(listed, [seg.id for seg in image.segments]) + 1
    slot[rank] = np.arange(1, len(image.segments) + 1)
    areas = np.zeros(len(image.segments) + 1, dtype=np.int64)
    areas[slot] = counts
    return remap(sorted_index, slot), areas


def ground_truth(png_path: PathLike, image: PanopticImage
                 ) -> tuple[GroundTruth, panoptic.PanopticGroundTruth]:
    """The segment form of one image's COCO panoptic ground truth (its PNG ``png_path``,
    checked against ``image.segments``).

    Returns
    -------
    (GroundTruth, PanopticGroundTruth): segment 0 is void; segment k (1..G) is the k-th
    listed segment (label id = its category, instance id = its segment id).
    """
    segments = image.segments
    index, areas = listed_order_index(png_path, image)
    seg_ids = np.array([s.id for s in segments], dtype=np.int64)
    cats = np.array([s.category_id for s in segments], dtype=np.int64)
    gt = GroundTruth(segment_index=index,
                     label_ids=np.concatenate([[0], cats]).astype(np.uint8),
                     instance_ids=np.concatenate([[0], seg_ids]).astype(np.int32),
                     areas=areas)
    pan = panoptic.PanopticGroundTruth(
        segment_to_gt=np.arange(len(segments) + 1, dtype=np.int64), ids=seg_ids,
        categories=cats, iscrowd=np.array([s.iscrowd for s in segments], dtype=bool),
        areas=areas[1:])
    return gt, pan


def sample_ground_truth(png_path: PathLike, image: PanopticImage,
                        thing_ids: frozenset[int]) -> GroundTruth:
    """The ground truth of one COCO panoptic image in the segment form every metric of
    ``report`` reads, in panoptool's encoding (:func:`~panoptool.io.coco_panoptic.label_maps`):
    segment 0 is void (label 0, instance 0; area 0 where the PNG has no void), segment k
    (1..G) the k-th listed segment, label id = its category, instance id = ``category * 1000
    + n`` for a non-crowd thing, ``category`` for stuff and crowd.

    The panoptic metrics take the listed segments as they are
    (:func:`~panoptool.evaluation.metrics.panoptic.segment_panoptic_ground_truth`); the
    semantic and instance metrics, which group segments by label / instance id, read it as
    Cityscapes' two PNGs.

    Raises
    ------
    InputError
        As :func:`~panoptool.io.coco_panoptic.segment_index` (the PNG against its
        ``segments_info``).
    """
    index, areas = listed_order_index(png_path, image)
    seg_label, seg_instance = segment_encoding(png_path, image, thing_ids)
    return GroundTruth(segment_index=index,
                       label_ids=np.concatenate([[0], seg_label]).astype(np.uint8),
                       instance_ids=np.concatenate([[0], seg_instance]).astype(np.int32),
                       areas=areas)


def ground_truth_key(png_path: PathLike, image: PanopticImage,
                     thing_ids: frozenset[int]) -> str:
    """Cache key of :func:`sample_ground_truth`: the PNG's digest and a digest of what the
    JSON says of it (segments, size, thing categories), so that editing either invalidates
    the entry; never equal to a Cityscapes key (:func:`~panoptool.evaluation.metrics.gt.cache_key`)."""
    import hashlib

    listed = repr((image.height, image.width, image.segments, sorted(thing_ids)))
    return (f"v{gtm.CACHE_VERSION}:coco:{gtm.file_digest(png_path)}:"
            f"{hashlib.blake2b(listed.encode(), digest_size=16).hexdigest()}")


def read_sample_ground_truth(png_path: PathLike, image: PanopticImage,
                             thing_ids: frozenset[int], cache_file: PathLike | None = None
                             ) -> GroundTruth:
    """:func:`sample_ground_truth`, from the cache file if its key matches (written there
    otherwise; a cache that cannot be written is skipped)."""
    return gtm.cached_ground_truth(cache_file,
                                   lambda: ground_truth_key(png_path, image, thing_ids),
                                   lambda: sample_ground_truth(png_path, image, thing_ids))


@dataclass(frozen=True)
class Predictions:
    """A COCO panoptic results JSON: per image id, its PNG and segments."""

    json_path: Path
    png_dir: Path
    annotations: dict


def read_predictions(pred_json: PathLike, pred_dir: PathLike | None,
                     dataset: CocoPanopticDataset) -> Predictions:
    """Read and check a COCO panoptic results JSON against the dataset: every image of the
    dataset has one annotation, categories are the dataset's, segment ids listed once."""
    json_path = Path(pred_json)
    data = read_json(json_path)
    anns = data.get("annotations") if isinstance(data, dict) else None
    if not isinstance(anns, list):
        raise InputError(json_path, "expected a COCO panoptic object with an 'annotations' list")
    known = {c.id for c in dataset.categories}
    wanted = {img.id for img in dataset.images}
    out = index_annotations(anns, known, wanted, json_path,
                            f"the ground truth {dataset.json_path.name}")
    missing = [i for i in wanted if i not in out]
    if missing:
        raise InputError(json_path, f"no prediction for image {missing[0]!r}"
                                    + (f" ({len(missing)} images)" if len(missing) > 1 else ""))
    png_dir = Path(pred_dir) if pred_dir is not None else json_path.with_suffix("")
    if not png_dir.is_dir():
        raise InputError(png_dir, "prediction PNG folder not found")
    return Predictions(json_path, png_dir, out)


def image_stats(dataset: CocoPanopticDataset, image: PanopticImage, preds: Predictions,
                labels: LabelSpace) -> panoptic.PanopticStats:
    """The PQ statistics of one image."""
    gt, pan = ground_truth(dataset.png_path(image), image)
    png, segments = preds.annotations[image.id]
    path = safe_join(preds.png_dir, png, source=preds.json_path)
    rgb = read_png(path, dtype=np.uint8, channels=3)
    if rgb.shape[:2] != gt.shape:
        raise InputError(path, f"prediction is {rgb.shape[1]}x{rgb.shape[0]}, the image "
                               f"{image.file_name} is {image.width}x{image.height}")
    pred_ids = np.array([s.id for s in segments], dtype=np.int64)
    counts, unlisted = panoptic.rgb_segment_counts(gt, rgb, pred_ids)
    if unlisted.size:
        raise InputError(path, f"segment id {int(unlisted[0])} occurs in the PNG but not in "
                               f"segments_info of image {image.id!r}")
    empty = np.flatnonzero(counts[:, 1:].sum(axis=0) == 0)
    if empty.size:
        raise InputError(path, f"segment {int(pred_ids[empty[0]])} of image {image.id!r} is "
                               f"listed in segments_info but absent from the PNG")
    cats = np.array([s.category_id for s in segments], dtype=np.int64)
    return panoptic.update(gt, pan, None, cats, seg_counts=counts, labels=labels)


def evaluate_panoptic(dataset: CocoPanopticDataset, pred_json: PathLike,
                      pred_dir: PathLike | None = None, labels: LabelSpace | None = None
                      ) -> dict:
    """PQ / SQ / RQ of COCO panoptic predictions on a COCO-panoptic dataset.

    Returns :func:`panoptool.evaluation.metrics.panoptic.compute`'s dict (fractions; per
    category in the order of ``labels.evaluated_label_ids``) plus ``category_ids`` and
    ``n_images``.
    """
    labels = labels or label_space(dataset.categories, source=dataset.json_path)
    preds = read_predictions(pred_json, pred_dir, dataset)
    total = panoptic.PanopticStats.empty(labels.n_labels)
    for image in dataset.images:
        total = total + image_stats(dataset, image, preds, labels)
    out = panoptic.compute(total, labels)
    out["category_ids"] = list(labels.evaluated_label_ids)
    out["n_images"] = len(dataset.images)
    return out
