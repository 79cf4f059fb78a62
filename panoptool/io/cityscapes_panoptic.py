"""Cityscapes ground truth as COCO panoptic, one image at a time, by the rules of
cityscapesscripts' ``createPanopticImgs.py``.

Every distinct instance id of an image whose label (``id // 1000`` from 1000 on, else the
id) is not ``ignoreInEval`` is one segment, its id the instance id and its colour ``(id %
256, id // 256, id // 65536)``; its category is the label id (or, with ``category_ids=
"train"``, the train id); ``iscrowd`` is 1 for ids below 1000 of a label with instances;
``area`` counts its pixels and ``bbox`` is ``[x, y, width, height]`` of its extent. Pixels of
ignored labels are 0 (VOID).

The encoding lives here, below the stages, so that ``synth`` (writing its scenes as a COCO
panoptic dataset) and ``convert`` (a whole Cityscapes split, resumable) share it.
"""

from __future__ import annotations

import cv2
import numpy as np

from panoptool.errors import ArrayError, ConfigError
from panoptool.labels import CITYSCAPES, LabelSpace

#: How category ids are encoded on the COCO side: Cityscapes label ids or train ids.
CATEGORY_IDS = ("label", "train")

_N = 1 << 16
_V = np.arange(_N)
_LABEL_OF_ID = np.where(_V >= 1000, _V // 1000, _V)  # label encoded in each 16-bit id
del _V


def _id_tables(category_ids: str, labels: LabelSpace
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per 16-bit instance id: known label, kept (a segment), category, iscrowd."""
    known = np.zeros(_N, dtype=bool)
    kept = np.zeros(_N, dtype=bool)
    category = np.zeros(_N, dtype=np.int64)
    crowd = np.zeros(_N, dtype=bool)
    for c in labels.categories:
        sel = _LABEL_OF_ID == c.id
        known |= sel
        if c.ignore_in_eval:
            continue
        kept |= sel
        category[sel] = c.train_id if category_ids == "train" else c.id
        if c.has_instances:
            crowd[sel & (np.arange(_N) < 1000)] = True
    return known, kept, category, crowd


_TABLES: dict[tuple[str, LabelSpace], tuple] = {}


def id_tables(category_ids: str, labels: LabelSpace = CITYSCAPES
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per 16-bit instance id (cached per label space): known label, kept (a segment),
    category, iscrowd; ConfigError on an unknown ``category_ids``."""
    if category_ids not in CATEGORY_IDS:
        raise ConfigError(f"category ids must be one of {', '.join(CATEGORY_IDS)}, got "
                          f"{category_ids!r}")
    key = (category_ids, labels)
    if key not in _TABLES:
        _TABLES[key] = _id_tables(category_ids, labels)
    return _TABLES[key]


def panoptic_categories(category_ids: str = "label",
                        labels: LabelSpace = CITYSCAPES) -> list[dict]:
    """The ``categories`` list createPanopticImgs writes: the evaluated classes (19).

    >>> cats = panoptic_categories()
    >>> len(cats), cats[0]["id"], cats[0]["name"], cats[-1]["isthing"]
    (19, 7, 'road', 1)
    >>> panoptic_categories("train")[0]["id"]
    0
    """
    id_tables(category_ids, labels)  # validates
    return [{"id": c.train_id if category_ids == "train" else c.id,
             "name": c.name, "color": list(c.color), "supercategory": c.supercategory,
             "isthing": 1 if c.has_instances else 0}
            for c in labels.categories if not c.ignore_in_eval]


# --- one image ------------------------------------------------------------------------------

def gt_to_panoptic(instance_ids: np.ndarray, category_ids: str = "label",
                   labels: LabelSpace = CITYSCAPES
                   ) -> tuple[np.ndarray, list[dict]]:
    """One ``*_instanceIds.png`` as a COCO panoptic image, by createPanopticImgs' rules.

    Parameters
    ----------
    instance_ids : uint8 or uint16 (H, W), Cityscapes instance ids.
    category_ids : ``label`` or ``train``: what ``category_id`` holds.
    labels : the label space.

    Returns
    -------
    rgb : uint8 (H, W, 3), the panoptic PNG's pixels, id = R + 256 G + 256^2 B (0 = VOID).
    segments : ``segments_info`` dicts (id, category_id, area, bbox [x, y, w, h], iscrowd)
        in increasing id order, plain Python ints.

    Raises
    ------
    ArrayError
        Not a uint8/uint16 (H, W) array, or an id encodes no label id of ``labels`` (the official script fails on it with a
        KeyError); the message lists up to 5 such ids.

    Examples
    --------
    >>> inst = np.array([[0, 7, 26001], [26, 7, 26001]], np.uint16)
    >>> rgb, segs = gt_to_panoptic(inst)
    >>> [(s["id"], s["category_id"], s["area"], s["bbox"], s["iscrowd"]) for s in segs]
    [(7, 7, 2, [1, 0, 1, 2], 0), (26, 26, 1, [0, 1, 1, 1], 1), (26001, 26, 2, [2, 0, 1, 2], 0)]
    >>> rgb[0, 2].tolist()  # 26001 = 145 + 256 * 101
    [145, 101, 0]
    """
    if instance_ids.dtype not in (np.uint8, np.uint16) or instance_ids.ndim != 2:
        raise ArrayError(None, f"instance_ids must be uint8/uint16 (H, W), got "
                               f"{instance_ids.dtype} {instance_ids.shape}")
    known, kept, category, crowd = id_tables(category_ids, labels)
    inst = np.ascontiguousarray(instance_ids, dtype=np.uint16)
    counts = _id_counts(inst)
    ids = np.flatnonzero(counts)
    if not known[ids].all():
        raise ArrayError(None, f"instance id(s) {ids[~known[ids]][:5].tolist()} encode no "
                               f"label id of the {labels.name} label space")
    ids = ids[kept[ids]]
    rgb = _panoptic_rgb16(inst, ids)
    box = _segment_boxes(inst, ids, len(counts))
    segments = [{"id": int(i), "category_id": int(category[i]), "area": int(counts[i]),
                 "bbox": [int(x0), int(y0), int(x1 - x0 + 1), int(y1 - y0 + 1)],
                 "iscrowd": int(crowd[i])}
                for i, (y0, x0, y1, x1) in zip(ids, box)]
    return rgb, segments


def _id_counts(inst: np.ndarray) -> np.ndarray:
    """Pixels of each id of uint16 (H, W) ``inst``: int64 (max id + 1,)."""
    flat = inst.reshape(1, -1)
    top = int(inst.max(initial=0)) + 1
    if inst.size < 1 << 24:  # float32 counts are exact
        return cv2.calcHist([flat], [0], None, [top], [0, top]).ravel().astype(np.int64)
    return np.bincount(flat.ravel(), minlength=top)


def _panoptic_rgb16(inst: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) panoptic PNG pixels: the pixels of ``ids`` keep their id, all others
    become 0 (VOID)."""
    # the uint16 bytes are R (id % 256) and G (id // 256); B (id // 65536) is 0 for 16-bit ids
    keep_value = np.zeros(_N, dtype=np.uint16)
    keep_value[ids] = ids
    pan = keep_value[inst]
    low_high = pan.astype("<u2", copy=False).view(np.uint8).reshape(*inst.shape, 2)
    return cv2.merge([low_high, np.zeros(inst.shape, dtype=np.uint8)])  # 6x numpy's copy


def _segment_boxes(inst: np.ndarray, ids: np.ndarray, top: int) -> np.ndarray:
    """Inclusive (y0, x0, y1, x1) extent of each of ``ids`` in ``inst`` (ids below ``top``),
    int (len(ids), 4)."""
    from panoptool.io.segment_kernels import bounding_boxes

    slot = np.full(top, -1, dtype=np.int64)
    slot[ids] = np.arange(len(ids))
    return bounding_boxes(inst, slot, len(ids))
