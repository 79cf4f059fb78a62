"""Instances as COCO results JSON (pycocotools RLE), and the COCO view of Cityscapes ground truth.

The results format (``instances.json``: what it holds, how image ids and category ids are
matched; its reader, writer and RLE) is documented and implemented in :mod:`panoptool.io.coco`.

The COCO *ground truth* of a Cityscapes image follows the rule detectron2 uses when it reads
``*_gtFine_instanceIds.png`` (``cityscapes_files_to_dict`` with ``from_json=False``):

* every instance id >= 1000 whose label (id // 1000) is an evaluated thing class (person,
  rider, car, truck, bus, train, motorcycle, bicycle) is one annotation, ``iscrowd`` 0;
* each such class's crowd pixels (instance id = the bare labelId, < 1000) are one annotation
  per image with ``iscrowd`` 1;
* an annotation whose mask spans a single row or a single column is skipped (detectron2
  drops boxes with ``xmax <= xmin`` or ``ymax <= ymin``, pixel-inclusive corners);
* ``category_id`` = labelId, ``area`` = mask pixels, ``bbox`` = pycocotools' box of the RLE.

The COCO ground truth of a *COCO-panoptic* image is panopticapi's
(``converters/panoptic2detection_coco_format.py``): every listed segment of an evaluated
thing category is one annotation with the segment's own ``iscrowd`` (a crowd segment is a
crowd annotation of its own, several per category if the image has several), none skipped
(:func:`segment_annotations`).

Predictions with an empty mask are dropped before COCOeval (as detectron2 does). Every
detection reaches COCOeval with a ``bbox`` (the entry's own, else pycocotools' box of its
mask, which is what ``instances.json`` holds): pycocotools' ``loadRes`` then takes a
detection's *area* (for AP_S / AP_M / AP_L) from its box, exactly as it does for the
results detectron2 writes, so the numbers equal COCOeval run directly on the files.

Everything below works on arrays and Python objects, except the functions whose name says
``read`` / ``write``.
"""

from __future__ import annotations

import contextlib
import io as _io
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from panoptool.errors import ConfigError, InputError, PanoptoolError
from panoptool.io.files import read_json, write_json
from panoptool.io.rle import masks_segment_overlap
from panoptool.io.coco import (ImageIdMap, compressed_counts, decode_rle, encode_label_map, encode_mask,
                               entries_runs, kernels, parse_results, read_image_id_map, rle_bbox,
                               write_results)
from panoptool.labels import CITYSCAPES, LabelSpace
from panoptool.evaluation.metrics.gt import GroundTruth, instance_label
from panoptool.evaluation.metrics.instance import InstanceStats

PathLike = str | os.PathLike

from panoptool.evaluation.config import COCO_METRIC_KEYS  # noqa: E402  (defined with the others)


def coco_instance_categories(labels: LabelSpace = CITYSCAPES) -> list[dict]:
    """COCO ``categories`` of the evaluated thing classes, id = labelId."""
    return [{"id": c.id, "name": c.name, "supercategory": c.supercategory}
            for c in labels.categories if c.isthing]


# --- ground truth ------------------------------------------------------------------------------

def ground_truth_annotations(gt: GroundTruth, labels: LabelSpace = CITYSCAPES) -> list[dict]:
    """COCO instance annotations of one image by detectron2's instanceIds rule (module
    docstring): ``category_id``, ``iscrowd``, ``area``, ``bbox``, ``segmentation`` (RLE);
    no ``id`` / ``image_id`` (given when the file is assembled).

    Annotations are in increasing instance id order.
    """
    seg_inst = gt.instance_ids.astype(np.int64)
    seg_label = instance_label(seg_inst)
    keep = (seg_label < 256) & labels.is_thing_label[seg_label.clip(0, 255)]
    inst_ids = np.unique(seg_inst[keep])
    if not inst_ids.size:
        return []
    ann_of_seg = np.zeros(gt.n_segments, dtype=np.int32)
    ann_of_seg[keep] = np.searchsorted(inst_ids, seg_inst[keep]) + 1
    rles = encode_label_map(gt.segment_index, len(inst_ids), ann_of_seg)
    areas = np.bincount(ann_of_seg, weights=gt.areas, minlength=len(inst_ids) + 1)[1:]
    boxes = rle_bbox(rles)
    out = []
    for iid, rle, area, box in zip(inst_ids.tolist(), rles, areas.tolist(), boxes):
        if box[2] <= 1 or box[3] <= 1:
            continue  # detectron2: xmax <= xmin or ymax <= ymin
        out.append({"category_id": int(iid // 1000 if iid >= 1000 else iid),
                    "iscrowd": int(iid < 1000), "area": int(area), "bbox": box,
                    "segmentation": rle})
    return out


def segment_annotations(gt: GroundTruth, labels: LabelSpace = CITYSCAPES) -> list[dict]:
    """COCO instance annotations of one COCO-panoptic image (module docstring): one per
    ground-truth segment of an evaluated thing label, in segment order (the order of
    ``segments_info``), ``iscrowd`` 1 for a crowd segment (instance id < 1000); keys as
    :func:`ground_truth_annotations`.

    >>> gt = GroundTruth(np.array([[0, 1, 1], [2, 2, 3]], np.uint16),
    ...                  np.array([0, 26, 26, 7], np.uint8), np.array([0, 26000, 26, 7], np.int32),
    ...                  np.array([1, 2, 2, 1]))
    >>> [(a["category_id"], a["iscrowd"], a["area"], a["bbox"]) for a in segment_annotations(gt)]
    [(26, 0, 2, [1.0, 0.0, 2.0, 1.0]), (26, 1, 2, [0.0, 1.0, 2.0, 1.0])]
    """
    label = gt.label_ids.astype(np.int64)
    keep = np.flatnonzero(labels.is_thing_label[label] & (gt.areas > 0))
    if not keep.size:
        return []
    ann_of_seg = np.zeros(gt.n_segments, dtype=np.int32)
    ann_of_seg[keep] = np.arange(1, len(keep) + 1)
    rles = encode_label_map(gt.segment_index, len(keep), ann_of_seg)
    boxes = rle_bbox(rles)
    return [{"category_id": int(label[s]), "iscrowd": int(gt.instance_ids[s] < 1000),
             "area": int(gt.areas[s]), "bbox": box, "segmentation": rle}
            for s, rle, box in zip(keep.tolist(), rles, boxes)]


def assemble_ground_truth(images: list[dict], annotations: list[list[dict]],
                          labels: LabelSpace = CITYSCAPES) -> dict:
    """A COCO instances ground-truth object from per-image annotations.

    Parameters
    ----------
    images : per image ``{"id", "file_name", "height", "width"}``.
    annotations : per image, :func:`ground_truth_annotations`.
    """
    anns = []
    for img, per_image in zip(images, annotations):
        for ann in per_image:
            anns.append({"id": len(anns) + 1, "image_id": img["id"], **ann})
    return {"images": images, "annotations": anns,
            "categories": coco_instance_categories(labels)}


# --- COCOeval ----------------------------------------------------------------------------------

#: COCOeval implementations: pycocotools (the reference) and faster-coco-eval (its C++
#: re-implementation, same numbers; about 4x faster on 100 Cityscapes-size images).
COCO_BACKENDS = ("pycocotools", "faster-coco-eval")


def coco_mask_ap(ground_truth: dict, detections: list[dict],
                 backend: str = "pycocotools") -> dict:
    """COCO mask AP (COCOeval, ``iouType="segm"``, default parameters).

    Parameters
    ----------
    ground_truth : COCO instances object (:func:`assemble_ground_truth`).
    detections : results entries whose ``image_id`` are ids of ``ground_truth``'s images
        (empty masks already dropped).
    backend : one of :data:`COCO_BACKENDS`.

    Returns
    -------
    dict of :data:`COCO_METRIC_KEYS` in percent; None where COCOeval has no value (-1).
    """
    if backend == "faster-coco-eval":
        return _faster_coco_mask_ap(ground_truth, detections)
    if backend != "pycocotools":
        raise ConfigError(f"coco backend must be one of {', '.join(COCO_BACKENDS)}, got "
                          f"{backend!r}")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    return _run_cocoeval(COCO, COCOeval, ground_truth, detections)


def _run_cocoeval(coco_cls, eval_cls, ground_truth: dict, detections: list[dict]) -> dict:
    """COCOeval (``iouType="segm"``) of one backend's classes, its printing silenced."""
    with contextlib.redirect_stdout(_io.StringIO()):
        coco_gt = coco_cls()
        coco_gt.dataset = ground_truth
        coco_gt.createIndex()
        if detections:
            coco_dt = coco_gt.loadRes(detections)
        else:  # loadRes refuses an empty list; no detection is a valid result
            coco_dt = coco_cls()
            coco_dt.dataset = {"images": ground_truth["images"], "annotations": [],
                               "categories": ground_truth["categories"]}
            coco_dt.createIndex()
        ev = eval_cls(coco_gt, coco_dt, iouType="segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {k: (None if v < 0 else 100.0 * float(v)) for k, v in zip(COCO_METRIC_KEYS,
                                                                      ev.stats[:6])}


def _faster_coco_mask_ap(ground_truth: dict, detections: list[dict]) -> dict:
    """:func:`coco_mask_ap` with faster-coco-eval (which needs integer image ids: images are
    numbered 1..N in their order)."""
    try:
        from faster_coco_eval import COCO, COCOeval_faster
    except ImportError:
        raise ConfigError("--coco-backend faster-coco-eval needs the package faster-coco-eval "
                          "(pip install faster-coco-eval)") from None
    number = {img["id"]: k + 1 for k, img in enumerate(ground_truth["images"])}
    gt = {"images": [dict(img, id=number[img["id"]]) for img in ground_truth["images"]],
          "annotations": [dict(a, image_id=number[a["image_id"]])
                          for a in ground_truth["annotations"]],
          "categories": ground_truth["categories"]}
    return _run_cocoeval(COCO, COCOeval_faster, gt, [dict(d, image_id=number[d["image_id"]])
                                                     for d in detections])


def read_coco_gt_cached(cache_file: PathLike | None, key: str | None,
                        gt: GroundTruth, labels: LabelSpace = CITYSCAPES, *,
                        by_segment: bool = False) -> list[dict]:
    """:func:`ground_truth_annotations` of ``gt`` (``by_segment``: :func:`segment_annotations`,
    for COCO-panoptic ground truth), from the cache file if its key matches (a key made for
    another label space or rule must differ)."""
    if cache_file is not None and key is not None and os.path.isfile(cache_file):
        try:
            data = read_json(cache_file)
            if isinstance(data, dict) and data.get("key") == key:
                return data["annotations"]
        except (InputError, KeyError):
            pass
    anns = segment_annotations(gt, labels) if by_segment else ground_truth_annotations(gt, labels)
    if cache_file is not None and key is not None:
        with contextlib.suppress(OSError, PanoptoolError):
            write_json(cache_file, {"key": key, "annotations": anns}, indent=None)
    return anns


def coco_gt_cache_path(cache_dir: PathLike, split: str, stem: str) -> Path:
    """Cache file of one image's COCO ground-truth annotations."""
    return Path(cache_dir) / "coco_gt" / split / f"{stem}.json"


# --- evaluation --------------------------------------------------------------------------------

def entries_instance_stats(gt: GroundTruth, stem: str, entries: tuple, path: PathLike,
                           labels: LabelSpace = CITYSCAPES, detections: bool = True
                           ) -> tuple[InstanceStats, list[dict]]:
    """Cityscapes instance statistics of one image's results entries, and its COCO detections.

    The masks are never decoded: the RLEs' pixels are counted on the ground-truth segments
    from runs alone (:func:`~panoptool.io.rle.masks_segment_overlap`, all masks of the image
    at once), which is all the official matching needs, so the AP equals that of the same
    masks as PNG files. Entries of labels that are not evaluated and empty masks are dropped
    (as the official script and detectron2 do).

    Returns
    -------
    (InstanceStats, detections): detections are COCO results entries (``image_id`` = stem)
    of the evaluated, non-empty masks, for :func:`coco_mask_ap` (empty unless
    ``detections``).
    """
    from panoptool.evaluation.image import predicted_instance_stats

    all_runs = entries_runs(list(entries), gt.shape, path)  # every entry is checked
    evaluated = [(inst, runs) for inst, runs in zip(entries, all_runs)
                 if labels.is_thing_label[inst.label_id]]
    overlap = masks_segment_overlap([runs for _, runs in evaluated], *gt.column_runs,
                                    gt.n_segments)
    areas = overlap.sum(axis=1)
    kept = [inst for (inst, _), area in zip(evaluated, areas.tolist()) if area > 0]
    stats = predicted_instance_stats(gt, [inst.label_id for inst in kept],
                                     [inst.score for inst in kept], areas[areas > 0],
                                     overlap[areas > 0], labels)
    dets = []
    for inst in kept if detections else ():
        rle = {"size": [inst.height, inst.width], "counts": compressed_counts(inst)}
        dets.append({"image_id": stem, "category_id": inst.label_id, "score": inst.score,
                     "segmentation": rle,
                     "bbox": list(inst.bbox) if inst.bbox else rle_bbox([rle])[0]})
    return stats, dets


_NONZERO = np.ones(256, dtype=np.int64)
_NONZERO[0] = 0


def txt_instance_stats(gt: GroundTruth, stem: str, txt_path: PathLike, results_dir: PathLike,
                       labels: LabelSpace = CITYSCAPES) -> tuple[InstanceStats, list[dict]]:
    """:func:`panoptool.evaluation.image.instance_stats` of an official ``_pred.txt`` (the same
    statistics, each mask read once) and the COCO detections of its masks (RLE-encoded
    over their bounding box only)."""
    from panoptool.evaluation.image import predicted_instance_stats, txt_instances

    label_ids, scores, areas, overlaps, dets = [], [], [], [], []
    for label_id, conf, mask, overlap, area in txt_instances(gt, txt_path, results_dir, labels):
        label_ids.append(label_id)
        scores.append(conf)
        areas.append(area)
        overlaps.append(overlap)
        index = mask if mask.dtype == np.uint8 else (mask != 0).view(np.uint8)
        rle = encode_label_map(index, 1, _NONZERO, cv2.boundingRect(index))[0]
        dets.append({"image_id": stem, "category_id": int(label_id), "score": float(conf),
                     "segmentation": rle, "bbox": rle_bbox([rle])[0]})
    return predicted_instance_stats(gt, label_ids, scores, areas, overlaps, labels), dets


@dataclass
class CocoImages:
    """What COCO mask AP needs of some images: their COCO ``images`` entries, ground-truth
    annotations and detections. Adds up over images (``+``)."""

    images: list
    annotations: list
    detections: list

    @classmethod
    def one(cls, stem: str, shape: tuple[int, int], annotations: list[dict],
            detections: list[dict], file_name: str | None = None) -> "CocoImages":
        """One image (``file_name``: its image file; default Cityscapes'
        ``<city>/<stem>_leftImg8bit.png``)."""
        from panoptool.io.formats import city_of

        if file_name is None:
            file_name = f"{city_of(stem)}/{stem}_leftImg8bit.png"
        image = {"id": stem, "file_name": file_name,
                 "height": int(shape[0]), "width": int(shape[1])}
        return cls([image], [annotations], list(detections))

    def __add__(self, other: "CocoImages") -> "CocoImages":
        return CocoImages(self.images + other.images, self.annotations + other.annotations,
                          self.detections + other.detections)

    def ground_truth(self, labels: LabelSpace = CITYSCAPES) -> dict:
        """The COCO ground-truth object, images in stem order."""
        order = sorted(range(len(self.images)), key=lambda i: self.images[i]["id"])
        return assemble_ground_truth([self.images[i] for i in order],
                                     [self.annotations[i] for i in order], labels)

    def compute(self, backend: str = "pycocotools", labels: LabelSpace = CITYSCAPES) -> dict:
        """:data:`COCO_METRIC_KEYS` in percent (:func:`coco_mask_ap`)."""
        return coco_mask_ap(self.ground_truth(labels), self.detections, backend)


# --- conversions (convert instance-results) ----------------------------------------------------

def _plain_stem(name: str) -> str:
    """A stem from a file name or image id: the base name without extension and without a
    ``_leftImg8bit`` / ``_pred`` suffix."""
    base = os.path.basename(str(name))
    base = base.split(".")[0] if "." in base else base
    for suffix in ("_leftImg8bit", "_pred"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base


def txt_results_to_coco(results_dir: PathLike, show_progress: bool = False) -> list[dict]:
    """COCO results entries of a folder of official instance results
    (``instance/**/<stem>_pred.txt`` + masks); image ids are the stems, files in name order.

    Every line is kept (labels that are not evaluated too); empty masks are kept as empty
    RLEs so that the conversion is lossless.
    """
    from panoptool.io.results import read_instance_list, read_mask, read_result_png

    results_dir = Path(results_dir)
    folder = results_dir / "instance"
    if not folder.is_dir():
        raise InputError(results_dir, "no instance/ folder of official instance results")
    entries: list[dict] = []
    for txt in sorted(folder.rglob("*.txt")):
        if txt.name.startswith("."):
            continue
        stem = _plain_stem(txt.name)
        rows = read_instance_list(txt, results_dir)
        shape = None
        for mask_path, label, conf in rows:
            if shape is None:
                shape = read_result_png(mask_path, "mask").shape[:2]
            mask = read_mask(mask_path, shape)
            rle = encode_mask(mask)
            entries.append({"image_id": stem, "category_id": int(label), "score": float(conf),
                            "segmentation": rle, "bbox": rle_bbox([rle])[0]})
    return entries


def coco_to_txt_results(data, path: PathLike, out: PathLike,
                        id_map: ImageIdMap | None = None) -> dict[str, int]:
    """Write COCO results entries as official instance results below ``out``:
    ``instance/<stem>_pred.txt`` and ``instance/masks/<stem>_<k>.png`` (0/255), each file
    atomically. Returns instances written per stem.

    Entries are validated as in :func:`parse_results`, against the stems they name
    (``image_id`` as a file stem, or through ``id_map``). Nothing is written if any entry
    is invalid.
    """
    from panoptool.io.formats import instance_mask_relpath, instance_txt_path
    from panoptool.io.files import LABEL_PNG_PARAMS, write_png, write_text

    if not isinstance(data, list):
        raise InputError(path, f"a COCO results file must be a JSON list of instances, got "
                               f"{type(data).__name__}")
    if id_map is not None:
        stems = sorted(set(id_map.ids.values()))
    else:
        stems = sorted({_plain_stem(e["image_id"]) for e in data
                        if isinstance(e, dict) and isinstance(e.get("image_id"), str)})
    grouped = parse_results(data, stems, path, id_map)
    masks: dict[str, list] = {}
    for stem, insts in grouped.items():
        shape = (insts[0].height, insts[0].width) if insts else None
        masks[stem] = list(zip(insts, entries_runs(insts, shape, path)))
    out = Path(out)
    written = {}
    for stem, items in masks.items():
        if not items:
            continue
        lines = []
        for k, (inst, _) in enumerate(items):
            rel = instance_mask_relpath(stem, k)
            mask = decode_rle({"size": [inst.height, inst.width],
                               "counts": compressed_counts(inst)})
            write_png(out / "instance" / rel, mask * np.uint8(255), params=LABEL_PNG_PARAMS)
            lines.append(f"{rel} {inst.label_id} {inst.score!r}")
        write_text(instance_txt_path(out, stem), "".join(line + "\n" for line in lines))
        written[stem] = len(items)
    return written


# --- runners (convert instances-gt) ------------------------------------------------------------

def _gt_image(job) -> CocoImages:
    """The COCO ground truth of one :class:`~panoptool.evaluation.image.ImageJob`."""
    from panoptool.evaluation.image import job_ground_truth

    gt = job_ground_truth(job)
    key = job.ground_truth_key() if job.coco_cache_file else None
    coco = job.coco_sample
    annotations = read_coco_gt_cached(job.coco_cache_file, key, gt, job.labels,
                                      by_segment=coco is not None)
    return CocoImages.one(job.stem, gt.shape, annotations, [],
                          file_name=None if coco is None else coco.image.file_name)


def convert_instances_gt(root, split: str, out: PathLike, *,
                         workers: int | None = 0, cache: bool | PathLike = True,
                         show_progress: bool = True) -> dict:
    """Write the COCO instances ground truth of a split to ``out``, atomically; return it.

    ``root``: any dataset (:func:`~panoptool.io.datasets.open_dataset`). A Cityscapes root
    is converted by detectron2's instanceIds rule (module docstring): images have ``id`` =
    stem and ``file_name`` = ``<city>/<stem>_leftImg8bit.png``. A COCO-panoptic dataset by
    panopticapi's rule (:func:`segment_annotations`: one annotation per thing segment, crowd
    as ``iscrowd``), its images' own file names, its categories. Annotation ids count from 1
    in stem order. Per-image annotations are kept in the ground-truth cache
    (``.panoptool_cache/coco_gt/`` in the dataset folder) as they are made, so an
    interrupted conversion resumes there, and ``report`` reuses them.
    """
    from panoptool.evaluation.config import default_cache_dir
    from panoptool.evaluation.plan import ResultFiles, _image_job
    from panoptool.io.datasets import open_dataset
    from panoptool.runtime.pool import run_parallel

    dataset = open_dataset(root)
    labels = dataset.label_space(split)
    samples = dataset.samples(split)
    cache_dir = None
    if cache:
        cache_dir = default_cache_dir(dataset.folder) if cache is True else Path(cache)
    jobs = [_image_job(s, ResultFiles(), dataset.folder, split, cache_dir, True, labels)
            for s in samples]
    kernels().warm_up()  # loaded once here; forked workers inherit them
    total = CocoImages([], [], [])
    for part in run_parallel(_gt_image, jobs, workers=workers, description="convert",
                             show_progress=show_progress):
        total = total + part
    data = total.ground_truth(labels)
    write_json(out, data, indent=None)
    return data


def convert_instance_results(*, results_dir: PathLike | None = None,
                             instances: PathLike | None = None, out: PathLike,
                             coco_gt: PathLike | None = None) -> int:
    """``convert instance-results``: official txt + PNG results (``results_dir``) -> one COCO
    results JSON ``out``, or a COCO results JSON (``instances``) -> official results in the
    folder ``out`` (``coco_gt`` maps its image and category ids). Returns instances written.
    """
    if (results_dir is None) == (instances is None):
        raise ConfigError("give either --results DIR (txt + PNG -> JSON) or --instances FILE "
                          "(JSON -> txt + PNG)")
    if results_dir is not None:
        entries = txt_results_to_coco(results_dir)
        write_results(out, entries)
        return len(entries)
    id_map = None
    if coco_gt is not None:
        data = read_json(coco_gt)
        images = data.get("images") if isinstance(data, dict) else None
        names = [img.get("file_name", "") for img in images or [] if isinstance(img, dict)]
        id_map = read_image_id_map(coco_gt, {_plain_stem(n) for n in names})
    return sum(coco_to_txt_results(read_json(instances), instances, out, id_map).values())
