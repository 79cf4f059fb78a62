"""Score the contour head's maps against a split's ground truth: ``report --maps``.

For every ground-truth image of the split, the ``contour_prob`` of its prediction maps
(``maps/<split>/<city>/<stem>_maps.npz``, see :mod:`panoptool.io.formats`) is scored against
the 1-px inner boundaries of its non-crowd thing instances (:mod:`panoptool.evaluation.metrics.contour`
has the protocol), one image per worker task; the per-image counts add up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from panoptool.io import formats
from panoptool.io.cityscapes import Sample, read_instance_ids, resolve_root
from panoptool.io.datasets import CityscapesDataset, open_dataset
from panoptool.labels import CITYSCAPES, LabelSpace
from panoptool.errors import ConfigError, InputError
from panoptool.evaluation.metrics import contour
from panoptool.runtime.pool import run_parallel
from panoptool.targets.core import inner_boundary

PathLike = str | os.PathLike


@dataclass(frozen=True)
class ContourScoreConfig:
    """Settings of the contour score.

    max_dist : matching tolerance as a fraction of the image diagonal (BSDS: 0.0075).
    nms : thin the predicted map by non-maximum suppression before thresholding.
    """

    max_dist: float = contour.DEFAULT_MAX_DIST
    nms: bool = True

    def __post_init__(self):
        if not 0 < self.max_dist < 1:
            raise ConfigError(f"contour tolerance must lie in (0, 1), got {self.max_dist}")


def read_contour_prob(path: PathLike) -> np.ndarray:
    """The ``contour_prob`` array of a maps file, float32 (H, W), checked to lie in [0, 1].

    Raises
    ------
    InputError
        If the file is missing or unreadable, lacks ``contour_prob``, or it is not a finite
        2-d float map in [0, 1].
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "prediction maps not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "contour_prob" not in data.files:
                raise InputError(path, f"missing array contour_prob; has {', '.join(data.files)}")
            prob = data["contour_prob"]
    except InputError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, ValueError, OSError, EOFError...
        raise InputError(path, f"cannot read .npz ({type(exc).__name__}: {exc})") from None
    if prob.ndim != 2 or prob.dtype not in (np.float16, np.float32, np.float64):
        raise InputError(path, f"contour_prob must be a 2-d float map, got shape {prob.shape} "
                               f"dtype {prob.dtype}")
    prob = prob.astype(np.float32, copy=False)
    if not np.isfinite(prob).all():
        raise InputError(path, "contour_prob has NaN or infinite values")
    lo, hi = float(prob.min(initial=0)), float(prob.max(initial=0))
    if lo < 0 or hi > 1:
        raise InputError(path, f"contour_prob must lie in [0, 1], got range [{lo:.3g}, {hi:.3g}]")
    return prob


def _score_image(sample: Sample, *, maps_root: str, split: str,
                 config: ContourScoreConfig,
                 labels: LabelSpace = CITYSCAPES) -> contour.ContourStats:
    path = formats.maps_path(maps_root, split, sample.stem)
    prob = read_contour_prob(path)
    if isinstance(sample, Sample):
        instance_ids = read_instance_ids(sample.instance_ids_path)
    else:  # a COCO-panoptic image (io.datasets.CocoSample)
        instance_ids = sample.read_ground_truth()[1]
    gt = inner_boundary(instance_ids, labels)
    if prob.shape != gt.shape:
        raise InputError(path, f"contour_prob is {prob.shape[1]}x{prob.shape[0]}, the ground "
                               f"truth {gt.shape[1]}x{gt.shape[0]}")
    return contour.update(prob, gt, contour.tolerance_px(gt.shape, config.max_dist),
                          nms=config.nms)


def score_contours(root: PathLike | None, split: str, maps_root: PathLike, *,
                   config: ContourScoreConfig = ContourScoreConfig(), workers: int = 0,
                   show_progress: bool = True) -> tuple[dict, contour.ContourStats]:
    """ODS / OIS of the contour maps of a split (``root``: a Cityscapes root or a
    COCO-panoptic dataset, :func:`~panoptool.io.datasets.open_dataset`).

    Returns
    -------
    ``(metrics, stats)``: metrics are the ``contour_*`` keys of ``metrics.json``
    (``contour_ODS``, ``contour_OIS``, ``contour_P``, ``contour_R`` in percent,
    ``contour_threshold`` the ODS threshold in [0, 1]); stats the summed counts.

    Raises
    ------
    InputError
        If the maps folder is missing or an image of the split has no maps (the message
        names the first missing file), or a maps file is invalid.
    """
    dataset = open_dataset(root)
    if isinstance(dataset, CityscapesDataset):
        dataset = CityscapesDataset(resolve_root(dataset.root))
    maps_root = Path(maps_root)
    if not maps_root.is_dir():
        raise InputError(maps_root, "maps folder not found")
    samples = dataset.samples(split)
    missing = [s for s in samples if not formats.maps_path(maps_root, split, s.stem).is_file()]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise InputError(formats.maps_path(maps_root, split, missing[0].stem),
                         f"prediction maps not found{more} (expected "
                         f"<maps>/{split}/<city>/<stem>{formats.MAPS_SUFFIX})")
    task = partial(_score_image, maps_root=str(maps_root), split=split, config=config,
                   labels=dataset.label_space(split))
    total = contour.ContourStats()
    for stats in run_parallel(task, samples, workers=workers, description="contour score",
                              show_progress=show_progress):
        total = total + stats
    res = contour.compute(total)
    pct = (lambda v: None if np.isnan(v) else 100.0 * v)
    metrics = {"contour_ODS": pct(res["ODS"]), "contour_OIS": pct(res["OIS"]),
               "contour_P": pct(res["P"]), "contour_R": pct(res["R"]),
               "contour_threshold": None if np.isnan(res["threshold"]) else res["threshold"]}
    return metrics, total


def add_contour_score(result, root, split: str, maps: PathLike,
                      config: ContourScoreConfig = ContourScoreConfig(), workers: int = 0):
    """``result`` (an :class:`~panoptool.evaluation.summary.EvaluationResult`, or None for a
    contour score alone) with the contour score of ``maps`` added: its ``contour_*``
    metrics, the part ``contour`` and its settings. What ``report --maps`` does."""
    from panoptool.evaluation.image import ImageStats
    from panoptool.evaluation.summary import EvaluationResult, PerClassTable, summarize
    from panoptool.io.files import read_json
    from panoptool.io.formats import CONFIG_JSON

    maps = Path(maps)
    metrics, stats = score_contours(root, split, maps, config=config, workers=workers)
    if result is None:
        dataset = open_dataset(root)
        labels = dataset.label_space(split)
        _, table = summarize(ImageStats(), stats.n_images, labels)
        cfg = maps / CONFIG_JSON
        result = EvaluationResult(
            metrics={"n_images": stats.n_images},
            per_class_table=PerClassTable({k: table[k] for k in ("train_id", "class")}),
            parts=(), root=str(dataset.root), split=split, results_dir=str(maps),
            results_config=read_json(cfg) if cfg.is_file() else None,
            settings={"split": split, "workers": workers}, labels=labels)
    result.metrics.update(metrics)
    result.parts = (*result.parts, "contour")
    result.settings = {**result.settings, "contour_max_dist": config.max_dist,
                       "contour_nms": config.nms, "maps": str(maps)}
    return result
