"""Summed statistics -> flat metrics (percent) and the per-class table of an evaluation."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from panoptool.evaluation.config import BOUNDARY_KEYS, METRIC_KEYS
from panoptool.evaluation.image import ImageStats
from panoptool.evaluation.metrics import boundary as bmetrics
from panoptool.evaluation.metrics import instance, panoptic, semantic
from panoptool.labels import CITYSCAPES, LabelSpace

if TYPE_CHECKING:  # imported only where a DataFrame is made: slow to import
    import pandas as pd

#: Keys of the panoptic metrics, without and with the ``boundary_`` prefix.
_PQ_KEYS = ("PQ", "SQ", "RQ", "PQ_th", "SQ_th", "RQ_th", "PQ_st", "SQ_st", "RQ_st")


class PerClassTable:
    """The per-class columns of a summary, filled without pandas (slow to import), with the
    two ways of a DataFrame :func:`summarize` writes them: ``table[col] = values`` and
    ``table.loc[rows, col] = values`` (a new column starts as NaN).

    columns : dict name -> ndarray (n_rows,).
    """

    def __init__(self, columns: dict):
        self.columns = {k: np.asarray(v) for k, v in columns.items()}
        self.n_rows = len(next(iter(self.columns.values())))

    def __setitem__(self, col: str, values) -> None:
        self.columns[col] = np.array(np.broadcast_to(values, (self.n_rows,)))

    def __getitem__(self, col: str) -> np.ndarray:
        return self.columns[col]

    def insert_first(self, col: str, value) -> None:
        """A constant column placed before the others (as ``DataFrame.insert(0, ...)``)."""
        self.columns = {col: np.array([value] * self.n_rows, dtype=object), **self.columns}

    @property
    def loc(self) -> "_Loc":
        return _Loc(self)

    def to_frame(self) -> "pd.DataFrame":
        """The same table as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame({k: v.tolist() if v.dtype.kind in "OU" else v
                             for k, v in self.columns.items()})


class _Loc:
    def __init__(self, table: PerClassTable):
        self.table = table

    def __setitem__(self, key, values) -> None:
        rows, col = key
        if col not in self.table.columns:
            self.table[col] = np.nan
        self.table.columns[col][rows] = values


@dataclass
class EvaluationResult:
    """What :func:`panoptool.evaluation.runner.evaluate` found.

    metrics : flat dict of :data:`METRIC_KEYS`, percent; None for parts not evaluated.
    per_class_table : :class:`PerClassTable`, one row per class of ``labels`` (Cityscapes:
        19, train-id order): IoU, iIoU, AP, AP50, PQ, SQ, RQ in percent (NaN where undefined
        or not evaluated); ``per_class`` is the same as a DataFrame (pandas is imported on
        first use).
    parts : the parts evaluated.
    labels : the label space evaluated (the dataset's).
    """

    metrics: dict
    per_class_table: PerClassTable
    parts: tuple[str, ...]
    root: str
    split: str
    results_dir: str
    results_config: dict | None = None
    settings: dict = field(default_factory=dict)
    #: with ``subset``: "N of M images" (images with predictions of the split's images)
    subset: str | None = None
    labels: LabelSpace = CITYSCAPES

    @functools.cached_property
    def per_class(self) -> "pd.DataFrame":
        return self.per_class_table.to_frame()


def _pct(value: float) -> float | None:
    return None if value is None or math.isnan(value) else 100.0 * float(value)


def summarize(stats: ImageStats, n_images: int,
              labels: LabelSpace = CITYSCAPES) -> tuple[dict, PerClassTable]:
    """Flat metrics (percent) and the per-class table (the classes of ``labels``, by train
    id, under their names) from summed statistics."""
    metrics: dict = {key: None for key in METRIC_KEYS}
    metrics["n_images"] = n_images
    table = PerClassTable({"train_id": np.arange(labels.num_classes),
                           "class": np.array(labels.class_names, dtype=object)})
    for col in ("IoU", "iIoU", "AP", "AP50", "PQ", "SQ", "RQ"):
        table[col] = np.nan
    if stats.semantic is not None:
        res = semantic.compute(stats.semantic, labels)
        metrics["mIoU"], metrics["iIoU"] = _pct(res["mIoU"]), _pct(res["iIoU"])
        table["IoU"] = 100 * res["iou"]
        table["iIoU"] = 100 * res["iiou"]
    if stats.instance is not None:
        res = instance.compute(stats.instance)
        metrics["AP"], metrics["AP50"] = _pct(res["AP"]), _pct(res["AP50"])
        rows = labels.label_to_train[list(labels.thing_label_ids)]
        table.loc[rows, "AP"] = 100 * res["ap"]
        table.loc[rows, "AP50"] = 100 * res["ap50"]
    if stats.panoptic is not None:
        _summarize_panoptic(panoptic.compute(stats.panoptic, labels), metrics, table, "",
                            labels)
    if stats.boundary is not None:
        _summarize_boundary(stats.boundary, metrics, table, labels)
    return metrics, table


def _summarize_panoptic(res: dict, metrics: dict, table: PerClassTable, prefix: str,
                        labels: LabelSpace = CITYSCAPES) -> None:
    """Add PQ/SQ/RQ (All/Things/Stuff) and the per-class PQ, SQ, RQ columns, with ``prefix``
    before every name (in place)."""
    for key in _PQ_KEYS:
        metrics[f"{prefix}{key}"] = _pct(res[key])
    rows = labels.label_to_train[list(labels.evaluated_label_ids)]
    for key in ("pq", "sq", "rq"):
        table.loc[rows, f"{prefix}{key.upper()}"] = 100 * res[key]


def _summarize_boundary(stats: bmetrics.BoundaryStats, metrics: dict,
                        table: PerClassTable, labels: LabelSpace = CITYSCAPES) -> None:
    """Add the ``boundary_*`` metrics and per-class columns (in place)."""
    for key in BOUNDARY_KEYS:
        metrics[key] = None
    for col in ("boundary_IoU", "boundary_PQ", "boundary_SQ", "boundary_RQ"):
        table[col] = np.nan
    if stats.semantic is not None:
        res = bmetrics.semantic_compute(stats.semantic)
        metrics["boundary_IoU"] = _pct(res["mean"])
        table["boundary_IoU"] = 100 * res["iou"]
    if stats.panoptic is not None:
        _summarize_panoptic(panoptic.compute(stats.panoptic, labels), metrics, table,
                            "boundary_", labels)
