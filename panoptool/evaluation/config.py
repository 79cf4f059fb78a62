"""Settings of an evaluation (:class:`ReportConfig`) and the names of what it reports."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from panoptool.errors import ConfigError
from panoptool.evaluation.metrics import boundary as bmetrics
from panoptool.evaluation.metrics import gt as gtm

PathLike = str | os.PathLike

#: Keys of ``metrics.json``, all in percent except ``n_images``.
METRIC_KEYS = ("mIoU", "iIoU", "AP", "AP50", "PQ", "SQ", "RQ", "PQ_th", "SQ_th", "RQ_th",
               "PQ_st", "SQ_st", "RQ_st", "n_images")
#: Boundary metrics (:mod:`panoptool.evaluation.metrics.boundary`), in ``metrics.json`` when evaluated.
BOUNDARY_KEYS = ("boundary_IoU", "boundary_PQ", "boundary_SQ", "boundary_RQ", "boundary_PQ_th",
                 "boundary_SQ_th", "boundary_RQ_th", "boundary_PQ_st", "boundary_SQ_st",
                 "boundary_RQ_st")
#: Contour-head score (:mod:`panoptool.evaluation.metrics.contour`), with ``report --maps``.
CONTOUR_KEYS = ("contour_ODS", "contour_OIS", "contour_P", "contour_R", "contour_threshold")
#: COCO mask-AP keys (:mod:`panoptool.evaluation.coco`, percent), in COCOeval's ``stats``
#: order; in ``metrics.json`` when instances are evaluated with ``--coco-ap``.
COCO_METRIC_KEYS = ("coco_AP", "coco_AP50", "coco_AP75", "coco_AP_S", "coco_AP_M", "coco_AP_L")
#: Every key a ``metrics.json`` may hold (the columns ``--compare`` accepts).
ALL_METRIC_KEYS = METRIC_KEYS + COCO_METRIC_KEYS + BOUNDARY_KEYS + CONTOUR_KEYS
#: Parts of a results folder, in evaluation order.
PARTS = ("semantic", "instance", "panoptic")
#: Files ``write_report`` can write: summary.md, per_class.csv, metrics.json.
OUTPUT_FORMATS = ("md", "csv", "json")


@dataclass(frozen=True)
class ReportConfig:
    """Settings of an evaluation.

    split : dataset split to evaluate.
    workers : worker processes (0 = all cores).
    cache : keep ground-truth statistics in a cache folder between evaluations.
    cache_dir : the cache folder; empty = ``<root>/.panoptool_cache``.
    boundary : also compute Boundary IoU / Boundary PQ (:mod:`panoptool.evaluation.metrics.boundary`).
    boundary_ratio : boundary width as a fraction of the image diagonal (> 0, < 1).
    """

    split: str = "val"
    workers: int = 0
    cache: bool = True
    cache_dir: str = ""
    boundary: bool = False
    boundary_ratio: float = bmetrics.DEFAULT_RATIO

    def __post_init__(self):
        if not self.split or "/" in self.split or self.split.startswith("."):
            raise ConfigError(f"split must be a folder name, got {self.split!r}")
        if self.workers < 0:
            raise ConfigError(f"workers must be >= 0, got {self.workers}")
        if not 0 < self.boundary_ratio < 1:
            raise ConfigError(f"boundary ratio must lie in (0, 1), got {self.boundary_ratio}")


def default_cache_dir(root: PathLike) -> Path:
    """The ground-truth cache of a dataset root: ``<root>/.panoptool_cache``."""
    return Path(root) / gtm.CACHE_DIRNAME
