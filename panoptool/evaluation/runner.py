"""Evaluate a results folder against a dataset's split (a Cityscapes root or a COCO-panoptic
dataset): the runner behind ``panoptool report``.

:func:`evaluate` joins the steps, each in a module of its own:

* :mod:`panoptool.evaluation.plan`: the parts and images of the results folder, one
  :class:`ImageJob` per image (the result formats are read by :mod:`panoptool.io.results`);
* :mod:`panoptool.evaluation.image`: the statistics of one image, in a worker process; only
  small statistics travel back, so memory stays bounded for any number of images;
* :mod:`panoptool.evaluation.summary`: summed statistics -> metrics and the per-class table;
* :mod:`panoptool.evaluation.report`: ``metrics.json``, ``per_class.csv``, ``summary.md``.

COCO mask AP (``coco_AP`` ...) is computed with pycocotools' COCOeval on the ground truth
converted by detectron2's rule (:mod:`panoptool.evaluation.coco`) whenever instances are
evaluated.

On a COCO-panoptic dataset the label space is the dataset's categories (a results folder
whose ``config.json`` records another one is refused), PQ/SQ/RQ equal panopticapi's
``pq_compute`` on the listed ground-truth segments, mIoU counts crowd pixels as their
category and leaves void (and ignored categories) out, COCO mask AP takes each thing segment
as an annotation (crowd ones with ``iscrowd`` 1), and the Cityscapes-style AP/AP50 are
computed with the same rules on that label space's things.

The names of those modules are re-exported here (``from panoptool.evaluation.runner import
evaluate, write_report, ...`` keeps working).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import asdict
from pathlib import Path

from panoptool.errors import ConfigError
from panoptool.evaluation import coco as coco_instances
from panoptool.evaluation.config import (ALL_METRIC_KEYS, BOUNDARY_KEYS, CONTOUR_KEYS,
                                         METRIC_KEYS, OUTPUT_FORMATS, PARTS, ReportConfig,
                                         default_cache_dir)
from panoptool.evaluation.image import (ImageJob, ImageStats, boundary_image_stats,
                                        evaluate_image, instance_stats, panoptic_stats,
                                        read_segmented_ground_truth, semantic_stats)
from panoptool.evaluation.metrics import boundary as bmetrics
from panoptool.evaluation.metrics import semantic as semantic_metrics
from panoptool.evaluation.plan import find_parts, plan_jobs
from panoptool.evaluation.report import summary_markdown, write_report
from panoptool.evaluation.summary import EvaluationResult, PerClassTable, summarize
from panoptool.io import formats
from panoptool.io.datasets import CityscapesDataset, Dataset, open_dataset
from panoptool.io.cityscapes import resolve_root
from panoptool.io.files import read_json
from panoptool.labels import LabelSpace, labels_of_config, require_same
from panoptool.io.results import read_instance_list, read_result_png
from panoptool.runtime.pool import run_parallel

PathLike = str | os.PathLike

__all__ = ["ALL_METRIC_KEYS", "BOUNDARY_KEYS", "CONTOUR_KEYS", "METRIC_KEYS", "OUTPUT_FORMATS",
           "PARTS", "EvaluationResult", "ImageJob", "ImageStats", "PerClassTable", "ReportConfig",
           "boundary_image_stats", "default_cache_dir", "evaluate", "evaluate_image",
           "find_parts", "instance_stats", "panoptic_stats", "plan_jobs", "read_instance_list",
           "read_result_png", "read_segmented_ground_truth", "semantic_stats", "summarize",
           "summary_markdown", "write_report"]


def evaluate(root: PathLike | None, split: str, results_dir: PathLike, workers: int = 0,
             cache: bool | PathLike = True, show_progress: bool = True,
             instances: PathLike | None = None, coco_gt: PathLike | None = None,
             coco_ap: bool = True, coco_backend: str = "pycocotools",
             boundary: bool = False,
             boundary_ratio: float = bmetrics.DEFAULT_RATIO,
             subset: bool = False) -> EvaluationResult:
    """Evaluate every part of a results folder against a split's ground truth.

    Parameters
    ----------
    root : dataset root (or None for ``$CITYSCAPES_DATASET``): a Cityscapes root or a
        COCO-panoptic dataset (:func:`~panoptool.io.datasets.open_dataset`).
    split : split name (``val``).
    results_dir : folder with ``semantic/``, ``instance/`` and/or ``panoptic.json``.
    workers : worker processes, 0 = all cores.
    cache : True = cache ground-truth statistics in ``<root>/.panoptool_cache`` (a COCO
        description file: in its folder); a path =
        that folder; False = no cache. A cache that cannot be written is skipped.
    show_progress : show a progress bar on stderr.
    instances : a COCO results JSON to evaluate as the instance part (default: the folder's
        ``instances.json`` if present, else ``instance/``).
    coco_gt : a COCO file whose ``images`` / ``categories`` map the JSON's image ids and
        category ids (see :mod:`panoptool.evaluation.coco`).
    coco_ap : also compute COCO mask AP (``coco_AP`` ...) when instances are evaluated.
    coco_backend : COCOeval implementation, one of :data:`coco_instances.COCO_BACKENDS`.
    boundary : also Boundary IoU (semantic part) and Boundary PQ (panoptic part), in the
        ``boundary_*`` keys and per-class columns.
    boundary_ratio : boundary width as a fraction of the image diagonal.
    subset : evaluate only the images that have predictions (default: every image of the
        split, as the official evaluators); the result then says "subset: N of M images"
        (``subset`` in metrics.json, a ``subset`` column in per_class.csv, a line in
        summary.md).

    Returns
    -------
    EvaluationResult with flat metrics in percent and a per-class table (the dataset's
    classes).

    Raises
    ------
    ConfigError
        The results' ``config.json`` records another label space than the dataset's.
    """
    if coco_backend not in coco_instances.COCO_BACKENDS:
        raise ConfigError(f"coco backend must be one of "
                          f"{', '.join(coco_instances.COCO_BACKENDS)}, got {coco_backend!r}")
    config = ReportConfig(split=split, workers=workers, cache=bool(cache),
                          cache_dir="" if isinstance(cache, bool) else os.fspath(cache),
                          boundary=boundary, boundary_ratio=boundary_ratio)
    dataset = _dataset(root)
    labels = dataset.label_space(split)
    results_config = _results_config(Path(results_dir))
    _check_labels(labels, results_config, dataset, Path(results_dir))
    jobs, parts = _jobs(dataset, config, results_dir, instances, coco_gt, coco_ap, subset)
    if "semantic" in parts:  # iIoU's weights, read once here and inherited by the workers
        semantic_metrics.average_class_size(labels)
    total = _sum_stats(jobs, workers, show_progress)
    metrics, table = summarize(total, len(jobs), labels)
    if total.coco is not None:
        metrics.update(total.coco.compute(coco_backend, labels))
    subset_text = None
    if subset:
        subset_text = f"{len(jobs)} of {len(dataset.samples(split))} images"
        metrics["subset"] = subset_text
        table.insert_first("subset", subset_text)
    settings = _settings(config, parts, subset, instances, coco_gt, coco_ap, coco_backend)
    return EvaluationResult(metrics=metrics, per_class_table=table, parts=parts,
                            root=str(dataset.root), split=split,
                            results_dir=str(Path(results_dir)),
                            results_config=results_config, settings=settings,
                            subset=subset_text, labels=labels)


def _dataset(root: "PathLike | Dataset | None") -> Dataset:
    """The dataset ``root`` names; a Cityscapes root as :func:`resolve_root` checks it (its
    messages), with the path as given."""
    dataset = open_dataset(root)
    if isinstance(dataset, CityscapesDataset):
        return CityscapesDataset(resolve_root(dataset.root))
    return dataset


def _check_labels(labels: LabelSpace, results_config: dict | None, dataset: Dataset,
                  results_dir: Path) -> None:
    """Refuse results whose ``config.json`` chain records another label space than the
    dataset's (results that record none, e.g. another method's, are read as they are)."""
    recorded = labels_of_config(results_config)
    if recorded is not None:
        require_same(labels, recorded, f"the dataset {dataset.root}",
                     f"the results ({results_dir / formats.CONFIG_JSON})")


def _jobs(root: Dataset, config: ReportConfig, results_dir: PathLike,
          instances: PathLike | None, coco_gt: PathLike | None, coco_ap: bool,
          subset: bool) -> tuple[list[ImageJob], tuple[str, ...]]:
    """The planned jobs (with the cache folder and the boundary ratio) and parts."""
    cache_dir = None
    if config.cache:
        cache_dir = (Path(config.cache_dir) if config.cache_dir
                     else default_cache_dir(root.folder))
    jobs, parts = plan_jobs(root, config.split, results_dir, cache_dir, instances, coco_gt,
                            coco_ap, subset=subset)
    # RLE masks are read with numpy (panoptool.io.rle): no compiled kernels to load here
    if config.boundary and ("semantic" in parts or "panoptic" in parts):
        jobs = [dataclasses.replace(j, boundary_ratio=config.boundary_ratio) for j in jobs]
    return jobs, parts


def _sum_stats(jobs: list[ImageJob], workers: int, show_progress: bool) -> ImageStats:
    """The statistics of every job, summed (in worker processes, with a progress bar)."""
    total = ImageStats()
    chunksize = max(1, min(8, len(jobs) // (4 * max(1, workers or 2))))
    for stats in run_parallel(evaluate_image, jobs, workers=workers, description="report",
                              chunksize=chunksize, show_progress=show_progress):
        total = total + stats
    return total


def _settings(config: ReportConfig, parts: tuple[str, ...], subset: bool,
              instances: PathLike | None, coco_gt: PathLike | None, coco_ap: bool,
              coco_backend: str) -> dict:
    """The settings recorded in the report's ``config.json``: the config, ``subset`` if set,
    then the instance settings where instances are evaluated (in this order)."""
    settings = asdict(config)
    if subset:
        settings["subset"] = True
    if "instance" in parts:
        settings.update(instances=str(instances) if instances else None,
                        coco_gt=str(coco_gt) if coco_gt else None, coco_ap=coco_ap,
                        coco_backend=coco_backend)
    return settings


def _results_config(results_dir: Path) -> dict | None:
    """The results folder's ``config.json`` (how the results were made), if it has one."""
    cfg_path = results_dir / formats.CONFIG_JSON
    return read_json(cfg_path) if cfg_path.is_file() else None
