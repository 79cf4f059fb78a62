"""Evaluate a results folder against a Cityscapes split: the runner behind ``panoptool report``.

A results folder holds any of the official result formats (see :mod:`panoptool.io.formats`)::

    semantic/<stem>*.png           label-id maps          -> mIoU, iIoU
    instance/<stem>*.txt (+ masks) instance lists         -> AP, AP50
    panoptic.json + panoptic/*.png COCO panoptic          -> PQ, SQ, RQ (All/Things/Stuff)
    instances.json                 COCO results (RLE)     -> AP, AP50 (used instead of
                                                             instance/ when present)

COCO mask AP (``coco_AP`` ...) is computed with pycocotools' COCOeval on the ground truth
converted by detectron2's rule (:mod:`panoptool.evaluation.coco`) whenever instances are
evaluated.

Every part present is evaluated. Files are found by stem like the official scripts do
(``<stem>*.png`` / ``<stem>*.txt``, in any subfolder of the part's folder), so the output of
other tools is read too. Each image is decoded once and evaluated in a worker process; only
small statistics travel back, so memory stays bounded for any number of images.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from panoptool.io import coco as coco_io
from panoptool.evaluation import coco as coco_instances
from panoptool.io import formats
from panoptool.io.cityscapes import list_samples, resolve_root
from panoptool.errors import ConfigError, InputError
from panoptool.io.files import (PNG_SIGNATURE, check_png_size, decode_png, read_json, read_png, safe_join,
                 write_json, write_text)
from panoptool.labels import CLASS_NAMES, KNOWN_LABEL_ID, LABEL_TO_TRAIN, NUM_CLASSES
from panoptool.evaluation.metrics import gt as gtm
from panoptool.evaluation.metrics import boundary as bmetrics
from panoptool.evaluation.metrics import instance, panoptic, semantic
from panoptool.runtime.pool import run_parallel
from panoptool.evaluation.tables import to_markdown

if TYPE_CHECKING:  # imported only where a DataFrame is made: slow to import
    import pandas as pd

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
#: Every key a ``metrics.json`` may hold (the columns ``--compare`` accepts).
ALL_METRIC_KEYS = METRIC_KEYS + BOUNDARY_KEYS + CONTOUR_KEYS
PARTS = ("semantic", "instance", "panoptic")
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
    """What :func:`evaluate` found.

    metrics : flat dict of :data:`METRIC_KEYS`, percent; None for parts not evaluated.
    per_class_table : :class:`PerClassTable`, one row per class (19, train-id order): IoU,
        iIoU, AP, AP50, PQ, SQ, RQ in percent (NaN where undefined or not evaluated);
        ``per_class`` is the same as a DataFrame (pandas is imported on first use).
    parts : the parts evaluated.
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

    @functools.cached_property
    def per_class(self) -> "pd.DataFrame":
        return self.per_class_table.to_frame()


@dataclass(frozen=True)
class ImageJob:
    """Files of one image for a worker (paths as strings, picklable)."""

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


# --- finding the result files -----------------------------------------------------------------

def _index_files(folder: Path, pattern: str, stems: set[str], what: str,
                 skip: Path | None = None) -> dict[str, Path]:
    found: dict[str, Path] = {}
    inside = folder.parent.resolve()  # the results folder
    for path in sorted(folder.rglob(pattern)):
        if path.name.startswith(".") or not path.is_file():
            continue
        if skip is not None and skip in path.parents:
            continue
        if path.is_symlink():  # as masks and panoptic PNGs: links must stay inside
            target = path.resolve()
            if inside not in target.parents:
                raise InputError(path, f"symbolic link to {target}, outside the results "
                                       f"folder {inside}")
        stem = coco_io.match_stem(path.name, stems)
        if stem is None:
            raise InputError(path, f"{what} result for an image that has no ground truth in "
                                   f"this split")
        if stem in found:
            raise InputError(path, f"second {what} result for image {stem} (first: "
                                   f"{found[stem]})")
        found[stem] = path
    return found


def _require_all(found: dict[str, Path], stems: list[str], folder: Path, what: str) -> None:
    missing = [s for s in stems if s not in found]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise InputError(folder, f"no {what} result for image {missing[0]}{more}")


def _panoptic_annotations(results_dir: Path, stems: list[str]) -> dict[str, tuple]:
    """Per stem: (png path, segment ids, category ids) from ``panoptic.json``, validated."""
    json_path = formats.panoptic_json_path(results_dir)
    data = read_json(json_path)
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise InputError(json_path, "expected a COCO panoptic object with 'annotations'")
    stem_set = set(stems)
    png_dir = results_dir / formats.PANOPTIC_DIR
    out: dict[str, tuple] = {}
    for ann in data["annotations"]:
        image_id = str(ann.get("image_id")) if isinstance(ann, dict) else None
        if image_id is None or not isinstance(ann.get("segments_info"), list):
            raise InputError(json_path, "an annotation lacks image_id or segments_info")
        if image_id not in stem_set:
            raise InputError(json_path, f"annotation for image {image_id!r}, which has no "
                                        f"ground truth in this split")
        if image_id in out:
            raise InputError(json_path, f"image {image_id} is annotated twice")
        file_name = ann.get("file_name") or f"{image_id}_panoptic.png"
        if not isinstance(file_name, str):
            raise InputError(json_path, f"image {image_id}: file_name must be a string, got "
                                        f"{type(file_name).__name__}")
        png = safe_join(png_dir, str(file_name), source=json_path)
        ids, cats = [], []
        for seg in ann["segments_info"]:
            try:
                seg_id, cat = seg["id"], seg["category_id"]
            except (KeyError, TypeError):
                raise InputError(json_path, f"image {image_id}: a segment lacks an integer id "
                                            f"or category_id") from None
            for key, value in (("id", seg_id), ("category_id", cat)):
                if not isinstance(value, int) or isinstance(value, bool):
                    raise InputError(json_path, f"image {image_id}: segment {key} must be an "
                                                f"integer, got {type(value).__name__} "
                                                f"{value!r}")
            if not (0 <= cat < 256 and panoptic.IS_CATEGORY[cat]):
                raise InputError(json_path, f"image {image_id}: segment {seg_id} has unknown "
                                            f"category_id {cat}")
            if not 0 <= seg_id < 1 << 24:
                raise InputError(json_path, f"image {image_id}: segment id {seg_id} is not a "
                                            f"24-bit RGB id")
            ids.append(seg_id)
            cats.append(cat)
        if len(ids) >= 65535:
            raise InputError(json_path, f"image {image_id}: {len(ids)} segments; at most "
                                        f"65534 are supported")
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            raise InputError(json_path, f"image {image_id}: segment id(s) {dup} listed twice")
        out[image_id] = (str(png), tuple(ids), tuple(cats))
    missing = [s for s in stems if s not in out]
    if missing:
        raise InputError(json_path, f"no annotation for image {missing[0]}"
                                    + (f" and {len(missing) - 1} more" if len(missing) > 1
                                       else ""))
    return out


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


def _predicted_stems(results_dir: Path, parts: tuple[str, ...], stems: set[str]) -> set[str]:
    """Stems of the split that have a result file in some part of ``results_dir``."""
    found: set[str] = set()
    if "semantic" in parts:
        found |= set(_index_files(results_dir / formats.SEMANTIC_DIR, "*.png", stems,
                                  "semantic"))
    if "instance" in parts and (results_dir / formats.INSTANCE_DIR).is_dir():
        found |= set(_index_files(results_dir / formats.INSTANCE_DIR, "*.txt", stems,
                                  "instance"))
    if "panoptic" in parts:
        data = read_json(formats.panoptic_json_path(results_dir))
        if isinstance(data, dict) and isinstance(data.get("annotations"), list):
            found |= {str(a.get("image_id")) for a in data["annotations"]
                      if isinstance(a, dict)} & stems
    return found


def plan_jobs(root: PathLike, split: str, results_dir: PathLike,
              cache_dir: PathLike | None, instances: PathLike | None = None,
              coco_gt: PathLike | None = None, coco_ap: bool = False, *,
              subset: bool = False
              ) -> tuple[list[ImageJob], tuple[str, ...]]:
    """One :class:`ImageJob` per ground-truth image, with its result files.

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
    parts = find_parts(results_dir)
    json_path = Path(instances) if instances else results_dir / coco_io.INSTANCES_JSON
    use_json = instances is not None or json_path.is_file()
    if instances is not None and "instance" not in parts:
        parts = tuple(p for p in PARTS if p in parts or p == "instance")
    if not parts:
        raise InputError(results_dir, "no results: expected semantic/, instance/ or "
                                      "panoptic.json")
    samples = list_samples(root, split)
    if subset:
        predicted = _predicted_stems(results_dir, parts, {s.stem for s in samples})
        samples = [s for s in samples if s.stem in predicted]
        if not samples:
            raise InputError(results_dir, f"no result for any image of split {split!r}")
    stems = [s.stem for s in samples]
    stem_set = set(stems)
    semantic_files = instance_files = pan = None
    if "semantic" in parts:
        folder = results_dir / formats.SEMANTIC_DIR
        semantic_files = _index_files(folder, "*.png", stem_set, "semantic")
        _require_all(semantic_files, stems, folder, "semantic")
    entries = None
    if "instance" in parts and use_json:
        entries = coco_io.read_results(json_path, stems, coco_gt)
    elif "instance" in parts:
        folder = results_dir / formats.INSTANCE_DIR
        instance_files = _index_files(folder, "*.txt", stem_set, "instance")
        _require_all(instance_files, stems, folder, "instance")
    if "panoptic" in parts:
        pan = _panoptic_annotations(results_dir, stems)
    jobs = []
    for s in samples:
        kwargs = {}
        if semantic_files is not None:
            kwargs["semantic_path"] = str(semantic_files[s.stem])
        if instance_files is not None:
            kwargs["instance_txt"] = str(instance_files[s.stem])
        if entries is not None:
            kwargs.update(instance_json=str(json_path), instance_entries=tuple(entries[s.stem]))
        if coco_ap and "instance" in parts:
            kwargs["coco_ap"] = True
            if cache_dir is not None:
                kwargs["coco_cache_file"] = str(coco_instances.coco_gt_cache_path(
                    cache_dir, split, s.stem))
        if pan is not None:
            png, ids, cats = pan[s.stem]
            kwargs.update(panoptic_png=png, panoptic_ids=ids, panoptic_categories=cats)
        cache_file = None if cache_dir is None else str(gtm.cache_path(cache_dir, split, s.stem))
        jobs.append(ImageJob(stem=s.stem, label_ids_path=str(s.label_ids_path),
                             instance_ids_path=str(s.instance_ids_path),
                             results_dir=str(results_dir), cache_file=cache_file, **kwargs))
    return jobs, parts


# --- one image ---------------------------------------------------------------------------------

def read_segmented_ground_truth(label_ids_path: PathLike, instance_ids_path: PathLike,
                                cache_file: PathLike | None = None) -> gtm.GroundTruth:
    """The ground truth of one image as segments, from the cache if it is up to date.

    Raises
    ------
    InputError
        On missing/corrupt files, other sizes or dtypes, or unknown label ids.
    """
    key = None
    if cache_file is not None:
        key = gtm.cache_key(label_ids_path, instance_ids_path)
        cached = gtm.load_cached(cache_file, key)
        if cached is not None:
            return cached
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
    inst_label = gtm.instance_label(gt.instance_ids)
    bad = (inst_label > 255) | ~KNOWN_LABEL_ID[inst_label.clip(0, 255)]
    if bad.any():
        raise InputError(instance_ids_path, f"instance id(s) with unknown label "
                                            f"{np.unique(gt.instance_ids[bad])[:5].tolist()}")
    bad = ~KNOWN_LABEL_ID[gt.label_ids]
    if bad.any():
        raise InputError(label_ids_path, f"unknown label id(s) "
                                         f"{np.unique(gt.label_ids[bad]).tolist()}")
    if cache_file is not None:
        gtm.save_cached(cache_file, gt, key)
    return gt


def read_result_png(path: PathLike, kind: str,
                    shape: tuple[int, int] | None = None) -> np.ndarray:
    """Decode a result PNG as cityscapesscripts (PIL) sees it, with the fastest decoder.

    Parameters
    ----------
    path : the file.
    kind : ``semantic`` (palette PNGs give their indices, like ``np.array(Image.open())``),
        ``mask`` (palette PNGs give PIL's ``convert("L")``) or ``panoptic`` (palette PNGs
        are refused: the official code cannot read them either).
    shape : (H, W) of the ground truth: a PNG whose header announces another size is refused
        before it is decoded (a result file holds exactly the pixels of its ground truth).

    Returns
    -------
    ndarray (H, W) or (H, W, C), colour in RGB order, as stored (uint8 or uint16).
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except OSError as exc:
        raise InputError(path, f"cannot read ({exc.strerror})") from None
    check_png_size(data, path, expected=shape)
    if len(data) >= 33 and data.startswith(PNG_SIGNATURE) and data[25] == 3:  # palette
        if kind == "panoptic":
            raise InputError(path, "palette PNG; a panoptic result must be RGB")
        import io as _io
        from PIL import Image
        try:
            with Image.open(_io.BytesIO(data)) as img:
                return np.array(img.convert("L") if kind == "mask" else img)
        except Exception as exc:  # PIL raises many types
            raise InputError(path, f"cannot decode image ({exc})") from None
    return decode_png(data, path, expected=shape)


def _check_size(path: PathLike, array: np.ndarray, shape: tuple[int, int]) -> None:
    if array.shape[:2] != shape:
        raise InputError(path, f"size {array.shape[1]}x{array.shape[0]} differs from the "
                               f"ground truth ({shape[1]}x{shape[0]})")


def semantic_stats(gt: gtm.GroundTruth, path: PathLike,
                   keep: dict | None = None) -> semantic.SemanticStats:
    """Read a ``*_pred_labelIds.png`` and return its statistics.

    ``keep``, if given, receives the decoded prediction as ``keep["label_ids"]`` (uint8
    (H, W)), so that the boundary metrics do not decode it again.
    """
    pred = read_result_png(path, "semantic", gt.shape)
    if pred.ndim != 2:
        raise InputError(path, f"expected a single-channel label-id PNG, got {pred.shape[2]} "
                               f"channels")
    _check_size(path, pred, gt.shape)
    if pred.dtype != np.uint8:
        if pred.dtype != np.uint16:
            raise InputError(path, f"expected a uint8 label-id PNG, got dtype {pred.dtype}")
        if pred.max(initial=0) > 255:
            bad = np.unique(pred[pred > 255])[:5].tolist()
            raise InputError(path, f"unknown label id(s) {bad}")
        pred = pred.astype(np.uint8)
    counts = semantic.segment_prediction_counts(gt, pred)
    unknown = semantic.unknown_prediction_ids(counts)
    if unknown:
        raise InputError(path, f"unknown label id(s) {unknown} (Cityscapes label ids are 0..33)")
    if keep is not None:
        keep["label_ids"] = pred
    return semantic.update(gt, pred, counts)


def read_instance_list(txt_path: PathLike, results_dir: PathLike) -> list[tuple[Path, int, float]]:
    """Parse a ``_pred.txt``: ``(mask path, label id, confidence)`` per instance.

    Mask paths are relative to the file's folder and must stay inside ``results_dir``. A mask
    listed twice counts once, with the values of its last line (as in cityscapesscripts).
    Blank lines are skipped.
    """
    txt_path = Path(txt_path)
    results_dir = Path(results_dir)
    try:
        lines = txt_path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(txt_path, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(txt_path, f"cannot read ({exc})") from None
    rel_dir = os.path.relpath(txt_path.resolve().parent, results_dir.resolve())
    entries: dict[Path, tuple[int, float]] = {}
    folders: dict[str, Path] = {}
    for n, line in enumerate(lines, start=1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != 3:
            raise InputError(txt_path, f"line {n}: expected '<mask png> <label id> "
                                       f"<confidence>', got {line.strip()!r}")
        if os.path.isabs(tokens[0]):
            raise InputError(txt_path, f"line {n}: mask path {tokens[0]!r} is absolute; it "
                                       f"must be relative to {txt_path.parent}")
        rel = os.path.normpath(os.path.join(rel_dir, tokens[0]))
        head, name = os.path.split(rel)
        if name in ("", ".", "..") or os.path.islink(results_dir / rel):
            mask = safe_join(results_dir, rel, source=txt_path)
        else:  # resolve each folder once: masks usually share one
            if head not in folders:
                try:
                    folders[head] = safe_join(results_dir, head or ".", source=txt_path)
                except InputError:
                    safe_join(results_dir, rel, source=txt_path)  # the message names rel
                    raise
            mask = folders[head] / name
        try:
            label_id = int(float(tokens[1]))
            conf = float(tokens[2])
        except ValueError:
            raise InputError(txt_path, f"line {n}: label id and confidence must be numbers, "
                                       f"got {tokens[1]!r} {tokens[2]!r}") from None
        if not (0 <= label_id < 256 and KNOWN_LABEL_ID[label_id]):
            raise InputError(txt_path, f"line {n}: unknown label id {label_id}")
        if not math.isfinite(conf):
            raise InputError(txt_path, f"line {n}: confidence must be finite, got {tokens[2]}")
        entries[mask] = (label_id, conf)
    return [(path, lab, conf) for path, (lab, conf) in entries.items()]


def _read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    mask = read_result_png(path, "mask", shape)
    _check_size(path, mask, shape)
    if mask.ndim == 3:
        if mask.shape[2] >= 3:  # as PIL's convert("L"): ITU-R 601-2 luma, rounded
            rgb = mask[..., :3].astype(np.uint32)
            mask = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471
                    + 0x8000) >> 16
        else:
            mask = mask[..., 0]
    return mask


def instance_stats(gt: gtm.GroundTruth, txt_path: PathLike,
                   results_dir: PathLike) -> instance.InstanceStats:
    """Read a ``_pred.txt`` and its masks and return its statistics."""
    labels, scores, areas, overlaps = [], [], [], []
    for mask_path, label_id, conf in read_instance_list(txt_path, results_dir):
        if not instance.is_evaluated_label(label_id):
            continue  # not read, as in cityscapesscripts
        overlap = instance.mask_segment_overlap(gt, _read_mask(mask_path, gt.shape))
        area = int(overlap.sum())
        if area == 0:
            continue
        labels.append(label_id)
        scores.append(conf)
        areas.append(area)
        overlaps.append(overlap)
    pred = instance.PredictedInstances(
        label_ids=np.array(labels, dtype=np.int64), scores=np.array(scores, dtype=np.float64),
        areas=np.array(areas, dtype=np.int64),
        segment_overlap=(np.stack(overlaps) if overlaps
                         else np.zeros((0, gt.n_segments), dtype=np.int64)))
    return instance.update(gt, pred)


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
                   categories: tuple[int, ...], keep: dict | None = None
                   ) -> panoptic.PanopticStats:
    """Read a panoptic PNG and return its statistics against the converted ground truth.

    ``keep``, if given, receives what the boundary metrics need: ``pred_index`` (uint16
    (H, W), k on the k-th listed segment, 0 on VOID), ``seg_counts`` and ``pan_gt``.
    """
    rgb = read_result_png(png_path, "panoptic", gt.shape)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4) or rgb.dtype != np.uint8:
        raise InputError(png_path, f"expected an 8-bit RGB PNG, got shape {rgb.shape} "
                                   f"dtype {rgb.dtype}")
    _check_size(png_path, rgb, gt.shape)
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
    pan_gt = panoptic.panoptic_ground_truth(gt)
    if keep is not None:
        keep.update(pred_index=_prediction_index(rgb, id_array), seg_counts=seg_counts,
                    pan_gt=pan_gt)
    return panoptic.update(gt, pan_gt, None, np.array(categories, dtype=np.int64), seg_counts)


def evaluate_image(job: ImageJob) -> ImageStats:
    """Statistics of one image for every part of its job (runs in a worker process)."""
    gt = read_segmented_ground_truth(job.label_ids_path, job.instance_ids_path, job.cache_file)
    out = ImageStats()
    sem_keep: dict | None = {} if job.boundary_ratio > 0 else None
    pan_keep: dict | None = {} if job.boundary_ratio > 0 else None
    if job.semantic_path is not None:
        out.semantic = semantic_stats(gt, job.semantic_path, keep=sem_keep)
    if job.instance_txt is not None and job.coco_ap:
        out.instance, dets = coco_instances.txt_instance_stats(gt, job.stem, job.instance_txt,
                                                               job.results_dir)
    elif job.instance_txt is not None:
        out.instance = instance_stats(gt, job.instance_txt, job.results_dir)
    if job.instance_json is not None:
        out.instance, dets = coco_instances.entries_instance_stats(
            gt, job.stem, job.instance_entries, job.instance_json)
    if job.coco_ap:
        key = None if job.coco_cache_file is None else gtm.cache_key(job.label_ids_path,
                                                                      job.instance_ids_path)
        out.coco = coco_instances.CocoImages.one(
            job.stem, gt.shape, coco_instances.read_coco_gt_cached(job.coco_cache_file, key, gt),
            dets)
    if job.panoptic_png is not None:
        out.panoptic = panoptic_stats(gt, job.panoptic_png, job.panoptic_ids,
                                      job.panoptic_categories, keep=pan_keep)
    if job.boundary_ratio > 0:
        out.boundary = boundary_image_stats(gt, job, sem_keep, pan_keep)
    return out


def boundary_image_stats(gt: gtm.GroundTruth, job: ImageJob, sem_keep: dict | None,
                         pan_keep: dict | None) -> bmetrics.BoundaryStats:
    """Boundary statistics of one image from the predictions its parts decoded."""
    width = bmetrics.boundary_width(gt.shape, job.boundary_ratio)
    out = bmetrics.BoundaryStats()
    if sem_keep:
        out.semantic = bmetrics.semantic_update(
            bmetrics.ground_truth_train_ids(gt),
            bmetrics.label_ids_to_train_ids(sem_keep["label_ids"]), width)
    if pan_keep:
        out.panoptic = bmetrics.panoptic_update(
            gt, pan_keep["pan_gt"], pan_keep["pred_index"],
            np.array(job.panoptic_categories, dtype=np.int64), pan_keep["seg_counts"], width)
    return out


# --- whole dataset -----------------------------------------------------------------------

def _pct(value: float) -> float | None:
    return None if value is None or math.isnan(value) else 100.0 * float(value)


def summarize(stats: ImageStats, n_images: int) -> tuple[dict, PerClassTable]:
    """Flat metrics (percent) and the per-class table from summed statistics."""
    metrics: dict = {key: None for key in METRIC_KEYS}
    metrics["n_images"] = n_images
    table = PerClassTable({"train_id": np.arange(NUM_CLASSES),
                           "class": np.array(CLASS_NAMES, dtype=object)})
    for col in ("IoU", "iIoU", "AP", "AP50", "PQ", "SQ", "RQ"):
        table[col] = np.nan
    if stats.semantic is not None:
        res = semantic.compute(stats.semantic)
        metrics["mIoU"], metrics["iIoU"] = _pct(res["mIoU"]), _pct(res["iIoU"])
        table["IoU"] = 100 * res["iou"]
        table["iIoU"] = 100 * res["iiou"]
    if stats.instance is not None:
        res = instance.compute(stats.instance)
        metrics["AP"], metrics["AP50"] = _pct(res["AP"]), _pct(res["AP50"])
        rows = LABEL_TO_TRAIN[list(instance.INSTANCE_LABEL_IDS)]
        table.loc[rows, "AP"] = 100 * res["ap"]
        table.loc[rows, "AP50"] = 100 * res["ap50"]
    if stats.panoptic is not None:
        res = panoptic.compute(stats.panoptic)
        for key in ("PQ", "SQ", "RQ", "PQ_th", "SQ_th", "RQ_th", "PQ_st", "SQ_st", "RQ_st"):
            metrics[key] = _pct(res[key])
        rows = LABEL_TO_TRAIN[list(panoptic.CATEGORY_IDS)]
        for key in ("pq", "sq", "rq"):
            table.loc[rows, key.upper()] = 100 * res[key]
    if stats.boundary is not None:
        _summarize_boundary(stats.boundary, metrics, table)
    return metrics, table


def _summarize_boundary(stats: bmetrics.BoundaryStats, metrics: dict,
                        table: PerClassTable) -> None:
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
        res = panoptic.compute(stats.panoptic)
        for key in ("PQ", "SQ", "RQ", "PQ_th", "SQ_th", "RQ_th", "PQ_st", "SQ_st", "RQ_st"):
            metrics[f"boundary_{key}"] = _pct(res[key])
        rows = LABEL_TO_TRAIN[list(panoptic.CATEGORY_IDS)]
        for key in ("pq", "sq", "rq"):
            table.loc[rows, f"boundary_{key.upper()}"] = 100 * res[key]


def default_cache_dir(root: PathLike) -> Path:
    return Path(root) / gtm.CACHE_DIRNAME


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
    root : dataset root (or None for ``$CITYSCAPES_DATASET``).
    split : split name (``val``).
    results_dir : folder with ``semantic/``, ``instance/`` and/or ``panoptic.json``.
    workers : worker processes, 0 = all cores.
    cache : True = cache ground-truth statistics in ``<root>/.panoptool_cache``; a path =
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
    EvaluationResult with flat metrics in percent and a per-class table.
    """
    if coco_backend not in coco_instances.COCO_BACKENDS:
        raise ConfigError(f"coco backend must be one of "
                          f"{', '.join(coco_instances.COCO_BACKENDS)}, got {coco_backend!r}")
    config = ReportConfig(split=split, workers=workers, cache=bool(cache),
                          cache_dir="" if isinstance(cache, bool) else os.fspath(cache),
                          boundary=boundary, boundary_ratio=boundary_ratio)
    root = resolve_root(root)
    cache_dir = None
    if config.cache:
        cache_dir = Path(config.cache_dir) if config.cache_dir else default_cache_dir(root)
    jobs, parts = plan_jobs(root, split, results_dir, cache_dir, instances, coco_gt, coco_ap,
                            subset=subset)
    # RLE masks are read with numpy (panoptool.io.rle): no compiled kernels to load here
    if config.boundary and ("semantic" in parts or "panoptic" in parts):
        jobs = [dataclasses.replace(j, boundary_ratio=config.boundary_ratio) for j in jobs]
    total = ImageStats()
    chunksize = max(1, min(8, len(jobs) // (4 * max(1, workers or 2))))
    for stats in run_parallel(evaluate_image, jobs, workers=workers, description="report",
                              chunksize=chunksize, show_progress=show_progress):
        total = total + stats
    metrics, table = summarize(total, len(jobs))
    if total.coco is not None:
        metrics.update(total.coco.compute(coco_backend))
    subset_text = None
    settings = asdict(config)
    if subset:
        subset_text = f"{len(jobs)} of {len(list_samples(root, split))} images"
        metrics["subset"] = subset_text
        table.insert_first("subset", subset_text)
        settings["subset"] = True
    results_dir = Path(results_dir)
    cfg_path = results_dir / formats.CONFIG_JSON
    results_config = read_json(cfg_path) if cfg_path.is_file() else None
    if "instance" in parts:
        settings.update(instances=str(instances) if instances else None,
                        coco_gt=str(coco_gt) if coco_gt else None, coco_ap=coco_ap,
                        coco_backend=coco_backend)
    return EvaluationResult(metrics=metrics, per_class_table=table, parts=parts,
                            root=str(root), split=split, results_dir=str(results_dir),
                            results_config=results_config, settings=settings,
                            subset=subset_text)


# --- writing -----------------------------------------------------------------------------

def summary_markdown(result: EvaluationResult) -> str:
    """The ``summary.md`` text: overall metrics and the per-class table."""
    shown = {k: v for k, v in result.metrics.items() if v is not None}
    lines = [f"# Evaluation of `{result.results_dir}`", "",
             f"Split `{result.split}` of `{result.root}`, {result.metrics['n_images']} images; "
             f"parts evaluated: {', '.join(result.parts)}. Metrics equal to cityscapesscripts' "
             f"evaluators, in percent.", "",
             *([f"subset: {result.subset}", ""] if result.subset else []),
             to_markdown([{k: (float(v) if k not in ('n_images', 'subset') else v)
                           for k, v in shown.items()}]),
             "", "## Per class", "",
             to_markdown(result.per_class.drop(columns=["train_id"]).dropna(axis=1, how="all")),
             ""]
    return "\n".join(lines)


def write_report(result: EvaluationResult, out_dir: PathLike,
                 formats_: tuple[str, ...] | list[str] = OUTPUT_FORMATS) -> list[Path]:
    """Write ``metrics.json`` (json), ``per_class.csv`` (csv) and ``summary.md`` (md).

    Every file is written atomically; ``config.json`` records how the numbers were made
    (evaluation settings + the results folder's own config as upstream).
    """
    unknown = [f for f in formats_ if f not in OUTPUT_FORMATS]
    if unknown:
        raise ConfigError(f"unknown report format(s) {unknown}; choose from "
                          f"{', '.join(OUTPUT_FORMATS)}")
    out_dir = Path(out_dir)
    from panoptool.runtime.guard import output_lock
    from panoptool.io.files import remove_stale_temporaries
    with output_lock(out_dir, "report"):
        remove_stale_temporaries(out_dir)
        return _write_report_files(result, out_dir, formats_)


def _write_report_files(result: EvaluationResult, out_dir: Path,
                        formats_: tuple[str, ...] | list[str]) -> list[Path]:
    written = []
    if "json" in formats_:
        write_json(out_dir / "metrics.json", result.metrics)
        written.append(out_dir / "metrics.json")
    if "csv" in formats_:
        write_text(out_dir / "per_class.csv", result.per_class.to_csv(index=False))
        written.append(out_dir / "per_class.csv")
    if "md" in formats_:
        write_text(out_dir / "summary.md", summary_markdown(result))
        written.append(out_dir / "summary.md")
    settings = dict(result.settings, root=result.root, results_dir=result.results_dir,
                    parts=list(result.parts))
    write_json(out_dir / formats.CONFIG_JSON,
               formats.stage_config("report", settings, result.results_config))
    written.append(out_dir / formats.CONFIG_JSON)
    return written
