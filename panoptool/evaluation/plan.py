"""Planning an evaluation: the parts and images of a results folder, one job per image.

A results folder holds any of the official result formats (:mod:`panoptool.io.results`)::

    semantic/<stem>*.png           label-id maps          -> mIoU, iIoU
    instance/<stem>*.txt (+ masks) instance lists         -> AP, AP50
    panoptic.json + panoptic/*.png COCO panoptic          -> PQ, SQ, RQ (All/Things/Stuff)
    instances.json                 COCO results (RLE)     -> AP, AP50 (used instead of
                                                             instance/ when present)

Every part present is evaluated, and each image of the split must have a result in each part
(with ``subset``: each image that has a result in some part). Files are found by stem like
the official scripts do (:func:`panoptool.io.results.index_results`).

The ground truth is a dataset's (:func:`panoptool.io.datasets.open_dataset`: a Cityscapes
root or a COCO-panoptic dataset); the label ids of the results must be ids of its label
space.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from panoptool.errors import InputError
from panoptool.evaluation import coco as coco_instances
from panoptool.evaluation.config import PARTS
from panoptool.evaluation.image import ImageJob
from panoptool.evaluation.metrics import gt as gtm
from panoptool.io import coco as coco_io
from panoptool.io import formats
from panoptool.io.datasets import Dataset, open_dataset
from panoptool.io.files import read_json
from panoptool.io.results import PanopticAnnotation, index_results, read_panoptic_json
from panoptool.labels import LabelSpace

PathLike = str | os.PathLike


def find_parts(results_dir: PathLike) -> tuple[str, ...]:
    """The parts present in a results folder (``semantic``, ``instance``, ``panoptic``)."""
    results_dir = Path(results_dir)
    parts = []
    if (results_dir / formats.SEMANTIC_DIR).is_dir():
        parts.append("semantic")
    if (results_dir / formats.INSTANCE_DIR).is_dir():
        parts.append("instance")
    if formats.panoptic_json_path(results_dir).is_file():
        parts.append("panoptic")
    if "instance" not in parts and (results_dir / coco_io.INSTANCES_JSON).is_file():
        parts.insert(1 if "semantic" in parts else 0, "instance")
    return tuple(parts)


def _require_all(found: dict[str, Path], stems: list[str], folder: Path, what: str) -> None:
    missing = [s for s in stems if s not in found]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise InputError(folder, f"no {what} result for image {missing[0]}{more}")


def _predicted_stems(results_dir: Path, parts: tuple[str, ...], stems: set[str]) -> set[str]:
    """Stems of the split that have a result file in some part of ``results_dir``.

    ``panoptic.json`` is only scanned for image ids here; it is read (and checked) with
    :func:`panoptool.io.results.read_panoptic_json` once the images are known.
    """
    found: set[str] = set()
    if "semantic" in parts:
        found |= set(index_results(results_dir / formats.SEMANTIC_DIR, "*.png", stems,
                                   "semantic"))
    if "instance" in parts and (results_dir / formats.INSTANCE_DIR).is_dir():
        found |= set(index_results(results_dir / formats.INSTANCE_DIR, "*.txt", stems,
                                   "instance"))
    if "panoptic" in parts:
        data = read_json(formats.panoptic_json_path(results_dir))
        if isinstance(data, dict) and isinstance(data.get("annotations"), list):
            found |= {str(a.get("image_id")) for a in data["annotations"]
                      if isinstance(a, dict)} & stems
    return found


@dataclass
class ResultFiles:
    """The result files of the planned images, per part (None: part not evaluated).

    semantic / instance_txt : stem -> file. instance_entries : stem -> COCO results entries
    of ``instance_json``. panoptic : stem -> its ``panoptic.json`` annotation.
    """

    semantic: dict[str, Path] | None = None
    instance_txt: dict[str, Path] | None = None
    instance_json: Path | None = None
    instance_entries: dict[str, list] | None = None
    panoptic: dict[str, PanopticAnnotation] | None = None


def _parts(results_dir: Path, instances: PathLike | None) -> tuple[tuple[str, ...], Path, bool]:
    """(parts, COCO results JSON, whether instances come from it)."""
    parts = find_parts(results_dir)
    json_path = Path(instances) if instances else results_dir / coco_io.INSTANCES_JSON
    use_json = instances is not None or json_path.is_file()
    if instances is not None and "instance" not in parts:
        parts = tuple(p for p in PARTS if p in parts or p == "instance")
    if not parts:
        raise InputError(results_dir, "no results: expected semantic/, instance/ or "
                                      "panoptic.json")
    return parts, json_path, use_json


def _planned_samples(dataset: Dataset, split: str, results_dir: Path, parts: tuple[str, ...],
                     subset: bool) -> list:
    """The split's images, or with ``subset`` those that have a result in some part."""
    samples = dataset.samples(split)
    if subset:
        predicted = _predicted_stems(results_dir, parts, {s.stem for s in samples})
        samples = [s for s in samples if s.stem in predicted]
        if not samples:
            raise InputError(results_dir, f"no result for any image of split {split!r}")
    return samples


def _result_files(results_dir: Path, parts: tuple[str, ...], stems: list[str],
                  json_path: Path | None, coco_gt: PathLike | None,
                  labels: LabelSpace) -> ResultFiles:
    """Every planned image's result file in every part (``json_path``: instances from this
    COCO results JSON, else from ``instance/``)."""
    stem_set = set(stems)
    files = ResultFiles()
    if "semantic" in parts:
        folder = results_dir / formats.SEMANTIC_DIR
        files.semantic = index_results(folder, "*.png", stem_set, "semantic")
        _require_all(files.semantic, stems, folder, "semantic")
    if "instance" in parts and json_path is not None:
        files.instance_json = json_path
        files.instance_entries = coco_io.read_results(json_path, stems, coco_gt, labels)
    elif "instance" in parts:
        folder = results_dir / formats.INSTANCE_DIR
        files.instance_txt = index_results(folder, "*.txt", stem_set, "instance")
        _require_all(files.instance_txt, stems, folder, "instance")
    if "panoptic" in parts:
        files.panoptic = read_panoptic_json(results_dir, stems,
                                            is_category=labels.is_evaluated_label)
    return files


def _image_job(sample, files: ResultFiles, results_dir: Path, split: str,
               cache_dir: PathLike | None, coco_ap: bool, labels: LabelSpace) -> ImageJob:
    stem = sample.stem
    kwargs: dict = {}
    if files.semantic is not None:
        kwargs["semantic_path"] = str(files.semantic[stem])
    if files.instance_txt is not None:
        kwargs["instance_txt"] = str(files.instance_txt[stem])
    if files.instance_entries is not None:
        kwargs.update(instance_json=str(files.instance_json),
                      instance_entries=tuple(files.instance_entries[stem]))
    if coco_ap:
        kwargs["coco_ap"] = True
        if cache_dir is not None:
            kwargs["coco_cache_file"] = str(coco_instances.coco_gt_cache_path(
                cache_dir, split, stem))
    if files.panoptic is not None:
        png, ids, cats = files.panoptic[stem]
        kwargs.update(panoptic_png=str(png), panoptic_ids=ids, panoptic_categories=cats)
    cache_file = None if cache_dir is None else str(gtm.cache_path(cache_dir, split, stem))
    if hasattr(sample, "png_path"):  # a COCO-panoptic image: its PNG and segments
        kwargs["coco_sample"] = sample
        paths = ("", "")
    else:
        paths = (str(sample.label_ids_path), str(sample.instance_ids_path))
    return ImageJob(stem=stem, label_ids_path=paths[0], instance_ids_path=paths[1],
                    results_dir=str(results_dir), cache_file=cache_file, labels=labels,
                    **kwargs)


def plan_jobs(root: "PathLike | Dataset", split: str, results_dir: PathLike,
              cache_dir: PathLike | None, instances: PathLike | None = None,
              coco_gt: PathLike | None = None, coco_ap: bool = False, *,
              subset: bool = False
              ) -> tuple[list[ImageJob], tuple[str, ...]]:
    """One :class:`ImageJob` per ground-truth image, with its result files.

    ``root``: the dataset (:func:`~panoptool.io.datasets.open_dataset`); its label space is
    the jobs' (``ImageJob.labels``).

    Instances come from ``instances`` (a COCO results JSON) if given, else from the folder's
    ``instances.json`` if it has one, else from ``instance/*.txt``; ``coco_gt`` maps the
    JSON's image ids and category ids (:func:`coco_io.read_image_id_map`).

    With ``subset`` only the images that have a result in some part are planned (each of
    them must then have a result in every part present).

    Raises
    ------
    InputError
        If the results folder has no part, a result has no ground truth, or an image has no
        result in a part that is present.
    """
    results_dir = Path(results_dir).resolve()
    if not results_dir.is_dir():
        raise InputError(results_dir, "results folder not found")
    dataset = open_dataset(root)
    labels = dataset.label_space(split)
    parts, json_path, use_json = _parts(results_dir, instances)
    samples = _planned_samples(dataset, split, results_dir, parts, subset)
    files = _result_files(results_dir, parts, [s.stem for s in samples],
                          json_path if use_json else None, coco_gt, labels)
    coco_ap = coco_ap and "instance" in parts
    return [_image_job(s, files, results_dir, split, cache_dir, coco_ap, labels)
            for s in samples], parts
