"""COCO results JSON of instances (pycocotools RLE): the format, its reader and writer.

Formats
-------
A COCO *results* file (``instances.json``; what detectron2 and mmdetection write as
``coco_instances_results.json``) is a JSON list with one entry per predicted instance::

    {"image_id": "frankfurt_000000_000294", "category_id": 26, "score": 0.93,
     "segmentation": {"size": [1024, 2048], "counts": "<pycocotools compressed RLE>"},
     "bbox": [x, y, width, height]}

* ``category_id`` is the Cityscapes **labelId** (24 person ... 33 bicycle), as in the official
  ``_pred.txt``. A file with another numbering (detectron2 counts the eight classes 0..7) is
  read with a COCO ground-truth file whose ``categories`` name the classes (``--coco-gt``).
* ``segmentation`` is a pycocotools RLE of the mask in column-major (Fortran) order, counts as
  a string (an uncompressed list of counts is read too).
* **Image ids.** A string id is matched to an image by its file stem: ``<stem>``,
  ``<stem>_leftImg8bit.png`` or a path ending in one (detectron2 uses the image's file name).
  An integer id (or a string that is no stem) is looked up in the ``images`` list of a COCO
  ground-truth file (``--coco-gt``): the id's ``file_name`` gives the stem.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils

from panoptool.errors import InputError
from panoptool.io.rle import c_transpose, counts_from_string, counts_from_strings
from panoptool.io.files import read_json, write_json
from panoptool.labels import CITYSCAPES, LabelSpace

PathLike = str | os.PathLike

INSTANCES_JSON = "instances.json"
#: Per-image sidecars of postprocess, assembled into ``instances.json`` at the end.
SIDECAR_DIR = "coco_instances"
SIDECAR_SUFFIX = "_instances.json"
#: Label ids a results entry may carry: the classes with instances (Cityscapes 24..33;
#: ``labels.has_instances_label``); caravan and trailer (29, 30) are read and, as in the
#: official evaluation, not evaluated.
RESULT_LABEL_IDS = tuple(int(i) for i in np.flatnonzero(CITYSCAPES.has_instances_label))

def kernels():
    """The compiled loops (:mod:`panoptool.io.rle_kernels`), imported on first use."""
    from panoptool.io import rle_kernels as coco_kernels

    return coco_kernels


def _as_text(rle: dict) -> dict:
    counts = rle["counts"]
    return {"size": [int(rle["size"][0]), int(rle["size"][1])],
            "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def encode_mask(mask: np.ndarray) -> dict:
    """pycocotools RLE of one binary mask, counts as ``str`` (JSON-ready).

    Parameters
    ----------
    mask : (H, W), any dtype; non-zero pixels belong to the mask.

    >>> encode_mask(np.array([[0, 1], [1, 1]]))
    {'size': [2, 2], 'counts': '13'}
    """
    fortran = np.asfortranarray(mask != 0, dtype=np.uint8)
    return _as_text(mask_utils.encode(fortran))


def encode_label_map(index_map: np.ndarray, n: int, lut: np.ndarray | None = None,
                     bbox: tuple[int, int, int, int] | None = None) -> list[dict]:
    """RLE of every value 1..n of an index map in one pass (exactly ``encode_mask(map == k)``).

    Parameters
    ----------
    index_map : non-negative int (H, W), 0 = background, k = object k (values above ``n``
        are ignored).
    n : number of objects.
    lut : optional int (V,): object of each value of ``index_map`` (0 = none; values >= V
        are none), so that ids or segment indices are encoded without a full-image lookup.
    bbox : optional ``(x, y, width, height)`` that holds every object: only it is scanned.

    Returns
    -------
    list of n RLE dicts (counts as ``str``); an absent value gets an empty mask.

    >>> [r["counts"] for r in encode_label_map(np.array([[1, 2], [1, 0]]), 2)]
    ['022', '211']
    """
    h, w = index_map.shape
    x0, y0, bw, bh = (0, 0, w, h) if bbox is None else (int(v) for v in bbox)
    # column-major order of the box = rows of its transpose
    transposed = c_transpose(index_map[y0:y0 + bh, x0:x0 + bw])
    if lut is None:
        lut = np.arange(n + 1, dtype=np.int64)
    lut = np.where((lut >= 0) & (lut <= n), lut, 0).astype(np.int64)
    values, starts, lengths = kernels().object_runs(transposed, lut, h, x0, y0)
    order = np.argsort(values, kind="stable")  # runs of each object, in raster order
    values, lengths, starts = values[order], lengths[order], starts[order]  # int64 each
    bounds = np.searchsorted(values, np.arange(1, n + 2))
    total = h * w
    uncompressed = []
    for k in range(n):
        a, b = bounds[k], bounds[k + 1]
        s, ln = starts[a:b], lengths[a:b].astype(np.int64)
        ends = s + ln
        gaps = s - np.concatenate(([0], ends[:-1]))
        counts = np.empty(2 * len(s), dtype=np.int64)
        counts[0::2], counts[1::2] = gaps, ln
        tail = total - (int(ends[-1]) if len(s) else 0)
        out = counts.tolist() + ([tail] if tail or not len(s) else [])
        uncompressed.append({"counts": out, "size": [h, w]})
    if not uncompressed:
        return []
    return [_as_text(r) for r in mask_utils.frPyObjects(uncompressed, h, w)]


def rle_counts(rle: dict) -> np.ndarray:
    """The run lengths of an RLE (zeros first, alternating), int64 (R,).

    Raises
    ------
    ValueError
        If the string is truncated, a run is negative, or the runs do not cover the image.

    >>> rle_counts({"size": [2, 2], "counts": "13"}).tolist()
    [1, 3]
    """
    counts = rle["counts"]
    h, w = int(rle["size"][0]), int(rle["size"][1])
    if isinstance(counts, (list, tuple)):
        runs = np.asarray(counts, dtype=np.int64)
    else:
        raw = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
        runs, ok = counts_from_string(np.frombuffer(raw, dtype=np.uint8))
        if not ok:
            raise ValueError("truncated RLE counts string")
    _check_runs(runs, h, w)
    return runs


def _check_runs(runs: np.ndarray, h: int, w: int) -> None:
    """ValueError unless ``runs`` are non-negative run lengths covering an h x w image."""
    if runs.size and runs.min() < 0:
        raise ValueError("negative run length in RLE counts")
    if int(runs.sum()) != h * w:
        raise ValueError(f"RLE runs cover {int(runs.sum())} pixels, size {h}x{w} has {h * w}")


def decode_rle(rle: dict) -> np.ndarray:
    """The mask of an RLE, uint8 (H, W) 0/1."""
    rle = {"size": list(rle["size"]),
           "counts": rle["counts"].encode("ascii") if isinstance(rle["counts"], str)
           else rle["counts"]}
    if isinstance(rle["counts"], list):
        rle = mask_utils.frPyObjects(rle, *rle["size"])
    with warnings.catch_warnings():  # pycocotools 2.0.11 under numpy 2: copy=False notice
        warnings.simplefilter("ignore", DeprecationWarning)
        return np.ascontiguousarray(mask_utils.decode(rle))


def rle_bbox(rles: list[dict]) -> list[list[float]]:
    """pycocotools' ``[x, y, width, height]`` of each RLE."""
    if not rles:
        return []
    coded = [{"size": r["size"], "counts": r["counts"].encode("ascii")} for r in rles]
    return [[float(v) for v in box] for box in mask_utils.toBbox(coded)]


def results_entries(image_id: str, instance_ids: np.ndarray, label_ids: list[int],
                    scores: list[float], values: list[int] | None = None,
                    bbox: tuple[int, int, int, int] | None = None) -> list[dict]:
    """COCO results entries of one image's instances.

    Parameters
    ----------
    image_id : the image's stem.
    instance_ids : int (H, W), instance map (0 = none).
    label_ids, scores : per instance, Cityscapes labelId and confidence.
    values : the value of each instance in ``instance_ids`` (default 1..N).
    bbox : ``(x, y, width, height)`` holding every instance, if known (faster).
    """
    n = len(label_ids)
    lut = None
    if values is not None:
        lut = np.zeros(int(max(values, default=0)) + 1, dtype=np.int64)
        lut[np.asarray(values, dtype=np.int64)] = np.arange(1, n + 1)
    rles = encode_label_map(instance_ids, n, lut, bbox)
    boxes = rle_bbox(rles)
    return [{"image_id": image_id, "category_id": int(lab), "score": float(score),
             "segmentation": rle, "bbox": box}
            for lab, score, rle, box in zip(label_ids, scores, rles, boxes)]


@dataclass(frozen=True)
class ImageIdMap:
    """How the ``image_id`` and ``category_id`` of a results file map to stems and labelIds.

    ids : COCO image id -> stem (from a COCO file's ``images``); empty = match by stem only.
    categories : category id -> labelId (from a COCO file's ``categories`` names); empty =
        category ids are labelIds.
    source : the COCO file the maps come from (for messages).
    """

    ids: dict
    categories: dict
    source: str = ""


def match_stem(name: str, stems: set[str]) -> str | None:
    """The stem a file name or image id starts with (``<stem>`` or ``<stem>_...``/``.``); the
    one rule for result files (``report``'s file discovery) and COCO image ids alike.

    >>> match_stem("aachen_000000_000019_leftImg8bit.png", {"aachen_000000_000019"})
    'aachen_000000_000019'
    """
    base = os.path.basename(name)
    parts = base.split("_")
    for k in range(len(parts), 0, -1):
        prefix = "_".join(parts[:k])
        for candidate in (prefix, prefix.split(".")[0]):
            if candidate in stems and (base == candidate or base[len(candidate)] in "_."):
                return candidate
    return None


def read_image_id_map(coco_json: PathLike, stems: set[str],
                      labels: LabelSpace = CITYSCAPES) -> ImageIdMap:
    """Image ids and category ids of a COCO ground-truth (or image list) file.

    ``images[].file_name`` gives each id's stem; ``categories[].name`` (a class name of
    ``labels``) gives each category id's labelId. Images of other splits are skipped.
    """
    name_to_label = labels.label_of_name
    data = read_json(coco_json)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise InputError(coco_json, "expected a COCO object with an 'images' list")
    ids = {}
    for n, img in enumerate(data["images"]):
        if not isinstance(img, dict) or "id" not in img or "file_name" not in img:
            raise InputError(coco_json, f"images[{n}]: lacks 'id' or 'file_name'")
        stem = match_stem(str(img["file_name"]), stems)
        if stem is not None:
            ids[_id_key(img["id"])] = stem
    cats = {}
    for n, cat in enumerate(data.get("categories") or []):
        if isinstance(cat, dict) and cat.get("name") in name_to_label and "id" in cat:
            cats[_id_key(cat["id"])] = name_to_label[cat["name"]]
    return ImageIdMap(ids=ids, categories=cats, source=str(coco_json))


def _id_key(value) -> object:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else str(value)


@dataclass(frozen=True)
class ResultInstance:
    """One validated results entry: ``index`` in the file, labelId, score, RLE."""

    index: int
    label_id: int
    score: float
    height: int
    width: int
    counts: str | tuple
    bbox: tuple | None = None


def parse_results(data, stems: list[str], path: PathLike, id_map: ImageIdMap | None = None,
                  labels: LabelSpace = CITYSCAPES) -> dict[str, list[ResultInstance]]:
    """Validate a COCO results list and group its entries by image stem.

    Parameters
    ----------
    data : the parsed JSON.
    stems : the stems of the split's images.
    path : the file it came from (named in errors).
    id_map : image id / category id maps (:func:`read_image_id_map`), or None.
    labels : the label space (which label ids have instances).

    Returns
    -------
    dict stem -> list of :class:`ResultInstance` (every stem present, maybe empty).

    Raises
    ------
    InputError
        Not a list; an entry without image_id / category_id / score / segmentation; an
        image id that matches no ground-truth image; a category id that is not a thing
        labelId; a score that is not a finite number; a malformed RLE. The message names the
        entry (its index in the list).
    """
    if not isinstance(data, list):
        raise InputError(path, f"a COCO results file must be a JSON list of instances, got "
                               f"{type(data).__name__}")
    stem_set = set(stems)
    out: dict[str, list[ResultInstance]] = {s: [] for s in stems}
    cache: dict = {}
    for n, entry in enumerate(data):
        where = f"entry {n}"
        _check_entry_keys(entry, where, path)
        image_id = entry["image_id"]
        key = _id_key(image_id)
        if key not in cache:
            cache[key] = _stem_of(image_id, key, stem_set, id_map)
        stem = cache[key]
        if stem is None:
            hint = "" if id_map is None else f" (nor in the images of {id_map.source})"
            if id_map is None and not isinstance(key, str):
                hint = "; integer ids need --coco-gt, a COCO file whose images list maps " \
                       "them to file names"
            raise InputError(path, f"{where}: image_id {image_id!r} matches no ground-truth "
                                   f"image of this split{hint}")
        label = _label_of(entry["category_id"], id_map, labels)
        if label is None:
            allowed = np.flatnonzero(labels.has_instances_label)
            raise InputError(path, f"{where}: unknown category_id {entry['category_id']!r} "
                                   f"(expected the labelId of a thing class, "
                                   f"{allowed[0]}..{allowed[-1]}; another "
                                   f"numbering needs --coco-gt with named categories)")
        score = _entry_score(entry["score"], where, path)
        size, counts = _entry_rle(entry["segmentation"], where, path)
        box = _entry_bbox(entry.get("bbox"), where, path)
        out[stem].append(ResultInstance(index=n, label_id=label, score=score,
                                        height=size[0], width=size[1],
                                        counts=counts if isinstance(counts, str)
                                        else tuple(counts), bbox=box))
    return out


def _check_entry_keys(entry, where: str, path: PathLike) -> None:
    """A results entry is an object with image_id, category_id, score and segmentation."""
    if not isinstance(entry, dict):
        raise InputError(path, f"{where}: expected an object, got {type(entry).__name__}")
    missing = [k for k in ("image_id", "category_id", "score", "segmentation")
               if k not in entry]
    if missing:
        raise InputError(path, f"{where}: lacks {', '.join(missing)}")


def _entry_score(score, where: str, path: PathLike) -> float:
    """An entry's score: a finite number (not a bool)."""
    if isinstance(score, bool) or not isinstance(score, (int, float)) \
            or not math.isfinite(score):
        raise InputError(path, f"{where}: score must be a finite number, got {score!r}")
    return float(score)


def _entry_rle(seg, where: str, path: PathLike) -> tuple[list[int], str | list]:
    """(size [height, width], counts) of an entry's RLE segmentation (counts not decoded)."""
    size = seg.get("size") if isinstance(seg, dict) else None
    counts = seg.get("counts") if isinstance(seg, dict) else None
    if (not isinstance(size, list) or len(size) != 2
            or not all(isinstance(v, int) and v > 0 for v in size)
            or not isinstance(counts, (str, list))):
        raise InputError(path, f"{where}: segmentation must be an RLE "
                               f"{{'size': [height, width], 'counts': ...}}")
    return size, counts


def _entry_bbox(box, where: str, path: PathLike) -> tuple | None:
    """An entry's optional bbox [x, y, width, height] as floats (absent or [] = None)."""
    if box is None or box == []:
        return None
    if not (isinstance(box, list) and len(box) == 4
            and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                    and math.isfinite(v) for v in box)):
        raise InputError(path, f"{where}: bbox must be [x, y, width, height], got "
                               f"{box!r}")
    return tuple(float(v) for v in box)


def _stem_of(image_id, key, stems: set[str], id_map: ImageIdMap | None) -> str | None:
    if id_map is not None and id_map.ids and key in id_map.ids:
        return id_map.ids[key]
    if isinstance(key, str):
        return match_stem(key, stems)
    return None


def _label_of(category_id, id_map: ImageIdMap | None, labels: LabelSpace) -> int | None:
    if isinstance(category_id, bool) or not isinstance(category_id, (int, float)):
        return None
    if id_map is not None and id_map.categories:
        return id_map.categories.get(_id_key(category_id))
    if category_id != int(category_id):
        return None
    label = int(category_id)
    return label if 0 <= label < 256 and labels.has_instances_label[label] else None


def read_results(path: PathLike, stems: list[str], coco_gt: PathLike | None = None,
                 labels: LabelSpace = CITYSCAPES) -> dict[str, list[ResultInstance]]:
    """Read and validate a COCO results JSON file (see :func:`parse_results`)."""
    id_map = read_image_id_map(coco_gt, set(stems), labels) if coco_gt else None
    return parse_results(read_json(path), stems, path, id_map, labels)


def entries_runs(entries: list[ResultInstance], shape: tuple[int, int],
                 path: PathLike) -> list[np.ndarray]:
    """The run lengths of an image's results entries, each checked against the image size;
    the compressed strings are decoded together (:func:`~panoptool.io.rle.counts_from_strings`).

    Raises
    ------
    InputError
        Naming ``path`` and the first bad entry: another size, a truncated string, a negative
        run, or runs that do not cover the image.
    """
    for inst in entries:
        if (inst.height, inst.width) != tuple(shape):
            raise InputError(path, f"entry {inst.index}: RLE size {inst.height}x{inst.width} "
                                   f"(height x width) differs from the image ({shape[0]}x"
                                   f"{shape[1]})")
    strings = []
    for inst in entries:
        if isinstance(inst.counts, str):
            try:
                strings.append(inst.counts.encode("ascii"))
            except UnicodeEncodeError:
                raise InputError(path, f"entry {inst.index}: invalid RLE (counts string is "
                                       f"not ASCII)") from None
    decoded, ok = counts_from_strings(strings)
    out, k = [], 0
    for inst in entries:
        try:
            if isinstance(inst.counts, str):
                runs, good = decoded[k], ok[k]
                k += 1
                if not good:
                    raise ValueError("truncated RLE counts string")
            else:
                runs = np.asarray(list(inst.counts), dtype=np.int64)
            _check_runs(runs, inst.height, inst.width)
        except (ValueError, TypeError) as exc:
            raise InputError(path, f"entry {inst.index}: invalid RLE ({exc})") from None
        out.append(runs)
    return out


def compressed_counts(inst: ResultInstance) -> str:
    """The compressed counts string of an entry (uncompressed lists are compressed)."""
    if isinstance(inst.counts, str):
        return inst.counts
    rle = mask_utils.frPyObjects({"counts": list(inst.counts),
                                  "size": [inst.height, inst.width]}, inst.height, inst.width)
    return _as_text(rle)["counts"]


def write_results(path: PathLike, entries: list[dict]) -> None:
    """Write a COCO results list, atomically."""
    write_json(path, entries, indent=None)


