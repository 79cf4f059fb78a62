"""COCO panoptic on the Cityscapes side: the ground-truth conversion and results conversions.

Ground truth
------------
:func:`convert_panoptic_gt` writes what ``cityscapesscripts/preparation/createPanopticImgs.py``
writes, value for value, from ``gtFine/<split>/*/*_instanceIds.png``::

    <out>/cityscapes_panoptic_<split>[_trainId].json   images, annotations, categories
    <out>/cityscapes_panoptic_<split>[_trainId]/<stem>_gtFine_panoptic.png

The rules (those of the official script): every distinct instance id of an image whose label
(``id // 1000`` from 1000 on, else the id) is not ``ignoreInEval`` is one segment, its id the
instance id and its colour ``(id % 256, id // 256, id // 65536)``; its category is the label id
(or, with ``category_ids="train"``, the train id); ``iscrowd`` is 1 for ids below 1000 of a
label with instances; ``area`` counts its pixels and ``bbox`` is ``[x, y, width, height]`` of
its extent. Pixels of ignored labels are 0 (VOID). Images are listed in the sorted order of the
file paths; ``image_id`` is the file name without ``_gtFine_instanceIds.png``; an image's
``file_name`` keeps the script's ``<stem>_gtFine_leftImg8bit.png``. The JSON text is the same
(``json.dump(..., sort_keys=True, indent=4)``); the PNGs are pixel-equal (not byte-equal:
another encoder).

Differences: each image is one vectorised pass (a lookup table and one histogram) instead of
several full-image passes per segment, on all cores; each finished image leaves a small
sidecar (``<out>/.cityscapes_panoptic_<split>.parts/<stem>.json``, with the BLAKE2 digest of
its source file), so an interrupted run resumes and a re-run converts only images whose
ground truth changed; every file is written atomically and the JSON last.

Panoptic results
----------------
panoptool's panoptic results (``panoptic.json`` + ``panoptic/<stem>_panoptic.png``) already are
the official Cityscapes panoptic prediction format: COCO panoptic, ``image_id`` = stem,
``category_id`` = label id, PNG ids ``R + 256 G + 256^2 B``. Only the names differ: the
official evaluator looks for ``cityscapes_panoptic_<split>.json`` and a PNG folder named like
the JSON without ``.json``. :func:`results_to_official` writes that layout (PNGs hard-linked
where possible), optionally with train-id categories (for tools that evaluate against
``cityscapes_panoptic_<split>_trainId.json``); :func:`results_from_coco` reads any COCO panoptic
JSON + PNG folder of Cityscapes images (label- or train-id categories, other file names) into
panoptool's layout, which ``panoptool report`` evaluates.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from panoptool.io import formats
from panoptool.errors import ArrayError, InputError, OutputError
from panoptool.io.cityscapes_panoptic import (  # noqa: F401  (the per-image encoding, re-exported)
    CATEGORY_IDS, gt_to_panoptic, id_tables, panoptic_categories)
from panoptool.io.files import LABEL_PNG_PARAMS, atomic_path, read_json, write_json, write_png, write_text
from panoptool.labels import CITYSCAPES, LabelSpace

PathLike = str | os.PathLike

GT_SUFFIX = "_gtFine_instanceIds.png"


def output_name(split: str, category_ids: str = "label",
                labels: LabelSpace = CITYSCAPES) -> str:
    """Base name of the JSON and PNG folder: ``<labels.name>_panoptic_<split>[_trainId]``
    (``cityscapes_panoptic_...``)."""
    id_tables(category_ids, labels)
    return f"{labels.name}_panoptic_{split}{'_trainId' if category_ids == 'train' else ''}"


# --- the ground truth of a split ---------------------------------------------------------------

@dataclass(frozen=True)
class ConvertSummary:
    """What :func:`convert_panoptic_gt` did."""

    json_path: str
    png_dir: str
    images: int
    converted: int
    skipped: int

    def line(self) -> str:
        return (f"convert panoptic-gt: {self.images} image(s), {self.converted} converted, "
                f"{self.skipped} already done -> {self.json_path}")


def gt_files(root: PathLike, split: str) -> list[str]:
    """``gtFine/<split>/*/*_instanceIds.png`` in the official script's order (sorted paths)."""
    split_dir = Path(root) / "gtFine" / split
    if not split_dir.is_dir():
        raise InputError(split_dir, f"split {split!r} not found")
    files = sorted(glob.glob(os.path.join(str(Path(root) / "gtFine"), split, "*",
                                          "*_instanceIds.png")))
    if not files:
        raise InputError(split_dir, f"no *_instanceIds.png files in split {split!r}")
    return files


def _parts_dir(out: Path, base: str) -> Path:
    return out / f".{base}.parts"


def _convert_one(path: str, *, png_dir: str, parts_dir: str, category_ids: str,
                 labels: LabelSpace = CITYSCAPES) -> str:
    """Convert one ground-truth file (worker): write its PNG, then its sidecar; return the
    sidecar path."""
    from panoptool.io.files import read_png
    from panoptool.evaluation.metrics.gt import file_digest

    digest = file_digest(path)
    inst = read_png(path, channels=1)
    if inst.dtype not in (np.uint8, np.uint16):
        raise InputError(path, f"expected an 8- or 16-bit instance-id PNG, got {inst.dtype}")
    try:
        rgb, segments = gt_to_panoptic(inst, category_ids, labels)
    except ArrayError as exc:
        raise ArrayError(path, exc.problem) from None
    name = os.path.basename(path)
    image_id = name.replace("_gtFine_instanceIds.png", "")
    png_name = name.replace("_instanceIds.png", "_panoptic.png")
    write_png(Path(png_dir) / png_name, rgb, params=LABEL_PNG_PARAMS)
    part = {"source": name, "digest": digest,
            "image": {"id": image_id, "width": int(inst.shape[1]), "height": int(inst.shape[0]),
                      "file_name": name.replace("_instanceIds.png", "_leftImg8bit.png")},
            "annotation": {"image_id": image_id, "file_name": png_name,
                           "segments_info": segments}}
    part_path = Path(parts_dir) / f"{image_id}.json"
    write_json(part_path, part, indent=None)
    return str(part_path)


def _part_is_current(part_path: Path, png_dir: Path, source: str) -> bool:
    from panoptool.evaluation.metrics.gt import file_digest

    if not part_path.is_file():
        return False
    try:
        part = read_json(part_path)
    except InputError:
        return False
    if not isinstance(part, dict) or part.get("digest") != file_digest(source):
        return False
    ann = part.get("annotation")
    return isinstance(ann, dict) and (png_dir / str(ann.get("file_name"))).is_file()


def _image_ids(files: list[str]) -> list[str]:
    """The image id (stem) of each ground-truth file; refuses two files with one id."""
    stems = [os.path.basename(f).replace("_gtFine_instanceIds.png", "") for f in files]
    seen: dict[str, str] = {}
    for stem, f in zip(stems, files):
        if stem in seen:
            raise InputError(f, f"same image id {stem!r} as {seen[stem]} (another city "
                                f"folder); the COCO files would overwrite each other")
        seen[stem] = f
    return stems


def _make_folders(out: Path, png_dir: Path, parts_dir: Path) -> None:
    try:
        png_dir.mkdir(parents=True, exist_ok=True)
        parts_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot create folders ({exc.strerror})") from exc


def convert_panoptic_gt(root: PathLike, split: str, out: PathLike | None = None, *,
                        category_ids: str = "label", workers: int = 0, overwrite: bool = False,
                        show_progress: bool = True,
                        labels: LabelSpace = CITYSCAPES) -> ConvertSummary:
    """Cityscapes ground truth of a split -> COCO panoptic JSON + PNGs, as createPanopticImgs.

    Parameters
    ----------
    root : dataset root (holds ``gtFine/``).
    split : split folder below ``gtFine/``.
    out : output folder; default ``<root>/gtFine`` (where the official script writes and
        detectron2 / the official evaluator look).
    category_ids : ``label`` (default, as the official script) or ``train`` (its
        ``--use-train-id``; names get ``_trainId``).
    workers : worker processes, 0 = all cores.
    overwrite : convert every image again instead of resuming.
    labels : the label space.

    Returns
    -------
    ConvertSummary
    """
    from panoptool.io.cityscapes import resolve_root
    from panoptool.runtime.pool import run_parallel

    root = resolve_root(root)
    files = gt_files(root, split)
    base = output_name(split, category_ids, labels)
    out = Path(out) if out is not None else root / "gtFine"
    png_dir, parts_dir = out / base, _parts_dir(out, base)
    stems = _image_ids(files)
    parts = [parts_dir / f"{stem}.json" for stem in stems]
    todo = [f for f, p in zip(files, parts)
            if overwrite or not _part_is_current(p, png_dir, f)]
    _make_folders(out, png_dir, parts_dir)
    if todo:
        from panoptool.io import segment_kernels  # noqa: F401  imported (and compiled) before the
        gt_to_panoptic(np.zeros((1, 1), np.uint16), category_ids, labels)  # fork: once
    func = partial(_convert_one, png_dir=str(png_dir), parts_dir=str(parts_dir),
                   category_ids=category_ids, labels=labels)
    chunksize = max(1, min(8, len(todo) // (4 * max(1, workers or 2))))
    for _ in run_parallel(func, todo, workers=workers, description="convert panoptic-gt",
                          chunksize=chunksize, show_progress=show_progress):
        pass
    images, annotations = [], []
    for p in parts:
        part = read_json(p)
        images.append(part["image"])
        annotations.append(part["annotation"])
    data = {"images": images, "annotations": annotations,
            "categories": panoptic_categories(category_ids, labels)}
    json_path = out / f"{base}.json"
    write_text(json_path, json.dumps(data, sort_keys=True, indent=4))
    return ConvertSummary(json_path=str(json_path), png_dir=str(png_dir), images=len(files),
                          converted=len(todo), skipped=len(files) - len(todo))


# --- panoptic results between layouts ----------------------------------------------------------

def _label_to_train_id(labels: LabelSpace) -> dict[int, int]:
    """Label id -> train id of the evaluated classes."""
    return {c.id: c.train_id for c in labels.categories if not c.ignore_in_eval}


def _train_to_label_id(labels: LabelSpace) -> dict[int, int]:
    """Train id -> label id of the evaluated classes."""
    return {c.train_id: c.id for c in labels.categories if not c.ignore_in_eval}


@dataclass(frozen=True)
class ResultsSummary:
    """What a results conversion wrote."""

    json_path: str
    png_dir: str
    images: int
    segments: int

    def line(self) -> str:
        return (f"convert panoptic-results: {self.images} image(s), {self.segments} "
                f"segment(s) -> {self.json_path}")


def _place_file(source: Path, target: Path) -> None:
    """Hard-link ``source`` to ``target`` (a copy across file systems), atomically."""
    with atomic_path(target) as tmp:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)


def _coco_panoptic(json_path: Path) -> dict:
    data = read_json(json_path)
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise InputError(json_path, "expected a COCO panoptic object with an 'annotations' "
                                    "list")
    return data


def detect_category_ids(data: dict, json_path: PathLike,
                        labels: LabelSpace = CITYSCAPES) -> str:
    """``label`` or ``train``: how a COCO panoptic JSON of Cityscapes encodes categories,
    read from its ``categories`` (matched by name)."""
    by_name = {c.name: c for c in labels.categories if not c.ignore_in_eval}
    cats = data.get("categories")
    if not isinstance(cats, list) or not cats:
        raise InputError(json_path, "no 'categories' list to tell label ids from train ids; "
                                    "pass --category-ids label or train")
    found = set()
    for cat in cats:
        lab = by_name.get(cat.get("name")) if isinstance(cat, dict) else None
        if lab is None:
            raise InputError(json_path, f"category {cat!r} is not an evaluated class of the "
                                        f"{labels.name} label space")
        if cat.get("id") == lab.id:
            found.add("label")
        elif cat.get("id") == lab.train_id:
            found.add("train")
        else:
            raise InputError(json_path, f"category {lab.name!r} has id {cat.get('id')!r}: "
                                        f"neither its label id {lab.id} nor its train id "
                                        f"{lab.train_id}")
    if len(found) != 1:
        raise InputError(json_path, "categories mix label ids and train ids")
    return found.pop()


def _segments(ann: dict, json_path: Path, mapping: dict[int, int] | None,
              labels: LabelSpace) -> list[dict]:
    """An annotation's ``segments_info`` with category ids mapped (None = kept: then label
    ids of ``labels``' evaluated classes), checked."""
    image_id = ann.get("image_id")
    segments = ann.get("segments_info")
    if not isinstance(segments, list):
        raise InputError(json_path, f"image {image_id}: no 'segments_info' list")
    allowed = set(labels.evaluated_label_ids) if mapping is None else set(mapping)
    out = []
    for seg in segments:
        try:
            seg_id, cat = int(seg["id"]), int(seg["category_id"])
        except (KeyError, TypeError, ValueError):
            raise InputError(json_path, f"image {image_id}: a segment lacks an integer id or "
                                        f"category_id") from None
        if cat not in allowed:
            raise InputError(json_path, f"image {image_id}: segment {seg_id} has unknown "
                                        f"category_id {cat}")
        seg = dict(seg, id=seg_id, category_id=cat if mapping is None else mapping[cat])
        out.append(seg)
    return out


def results_to_official(results_dir: PathLike, out: PathLike, split: str = "val", *,
                        category_ids: str = "label",
                        labels: LabelSpace = CITYSCAPES) -> ResultsSummary:
    """panoptool panoptic results -> the layout of the official evaluator's defaults.

    Writes ``<out>/cityscapes_panoptic_<split>[_trainId].json`` and the PNGs (hard links, or
    copies across file systems) in ``<out>/cityscapes_panoptic_<split>[_trainId]/``, so that
    ``CITYSCAPES_RESULTS=<out> csEvalPanopticSemanticLabeling`` (or panopticapi / hotcoco
    against the ``_trainId`` ground truth) reads them as they are. Category ids become train
    ids with ``category_ids="train"``; everything else is unchanged. The JSON is written
    last.
    """
    results_dir = Path(results_dir)
    json_path = formats.panoptic_json_path(results_dir)
    data = _coco_panoptic(json_path)
    base = output_name(split, category_ids, labels)
    out = Path(out)
    png_dir = out / base
    mapping = _label_to_train_id(labels) if category_ids == "train" else None
    annotations, n_segments = [], 0
    for ann in data["annotations"]:
        if not isinstance(ann, dict) or "image_id" not in ann:
            raise InputError(json_path, "an annotation lacks image_id")
        segments = _segments(ann, json_path, mapping, labels)
        file_name = str(ann.get("file_name") or f"{ann['image_id']}_panoptic.png")
        source = _safe_png(results_dir / formats.PANOPTIC_DIR, file_name, json_path,
                           ann["image_id"])
        _place_file(source, png_dir / os.path.basename(file_name))
        annotations.append(dict(ann, file_name=os.path.basename(file_name),
                                segments_info=segments))
        n_segments += len(segments)
    official = {"images": data.get("images", []), "annotations": annotations,
                "categories": panoptic_categories(category_ids, labels)}
    json_out = out / f"{base}.json"
    write_json(json_out, official, indent=None)
    return ResultsSummary(json_path=str(json_out), png_dir=str(png_dir),
                          images=len(annotations), segments=n_segments)


def _safe_png(folder: Path, file_name: str, json_path: Path, image_id) -> Path:
    from panoptool.io.files import safe_join

    path = safe_join(folder, file_name, source=json_path)
    if not path.is_file():
        raise InputError(json_path, f"image {image_id}: PNG {file_name!r} not found in "
                                    f"{folder}")
    return path


def _stem_of(ann: dict, images: dict, json_path: Path) -> str:
    image_id = ann.get("image_id")
    if isinstance(image_id, str) and image_id:
        return image_id
    image = images.get(image_id)  # integer ids: the stem from the image's file name
    if isinstance(image, dict) and isinstance(image.get("file_name"), str):
        parts = os.path.basename(image["file_name"]).split("_")
        if len(parts) >= 3:
            return "_".join(parts[:3])
    raise InputError(json_path, f"annotation for image id {image_id!r}: neither a Cityscapes "
                                f"stem nor an image with a Cityscapes file name")


def results_from_coco(json_path: PathLike, out: PathLike, png_dir: PathLike | None = None, *,
                      category_ids: str = "auto",
                      labels: LabelSpace = CITYSCAPES) -> ResultsSummary:
    """Any COCO panoptic results of Cityscapes images -> panoptool's results layout.

    Parameters
    ----------
    json_path : COCO panoptic JSON (``annotations[].image_id`` = stem, or an integer id
        whose ``images`` entry has a Cityscapes file name).
    out : results folder to write: ``panoptic.json`` + ``panoptic/<stem>_panoptic.png``
        (hard links where possible) + ``config.json``; ``panoptool report`` evaluates it.
    png_dir : folder of the PNGs; default the JSON path without ``.json`` (the convention
        of panopticapi and the official evaluator).
    category_ids : ``label``, ``train`` or ``auto`` (read from the JSON's ``categories``).
    labels : the label space.
    """
    json_path = Path(json_path)
    data = _coco_panoptic(json_path)
    if category_ids == "auto":
        category_ids = detect_category_ids(data, json_path, labels)
    id_tables(category_ids, labels)
    png_dir = Path(png_dir) if png_dir is not None else json_path.with_suffix("")
    if not png_dir.is_dir():
        raise InputError(png_dir, "PNG folder not found (pass --png-dir)")
    out = Path(out)
    mapping = _train_to_label_id(labels) if category_ids == "train" else None
    images = {img.get("id"): img for img in data.get("images", []) if isinstance(img, dict)}
    annotations, new_images, seen, n_segments = [], [], {}, 0
    for ann in data["annotations"]:
        if not isinstance(ann, dict):
            raise InputError(json_path, "an annotation is not an object")
        stem = _stem_of(ann, images, json_path)
        if stem in seen:
            raise InputError(json_path, f"image {stem} is annotated twice")
        seen[stem] = True
        segments = _segments(ann, json_path, mapping, labels)
        file_name = str(ann.get("file_name") or f"{stem}.png")
        source = _safe_png(png_dir, file_name, json_path, ann.get("image_id"))
        target = formats.panoptic_png_path(out, stem)
        _place_file(source, target)
        annotations.append({"image_id": stem, "file_name": target.name,
                            "segments_info": segments})
        img = images.get(ann.get("image_id"), {})
        new_images.append({"id": stem, "file_name": f"{stem}_leftImg8bit.png",
                           "width": img.get("width"), "height": img.get("height")})
        n_segments += len(segments)
    write_json(out / formats.CONFIG_JSON, formats.stage_config(
        "convert", {"from": str(json_path), "png_dir": str(png_dir),
                    "category_ids": category_ids}))
    result = {"images": new_images, "annotations": annotations,
              "categories": panoptic_categories("label", labels)}
    write_json(formats.panoptic_json_path(out), result, indent=None)
    return ResultsSummary(json_path=str(formats.panoptic_json_path(out)),
                          png_dir=str(out / formats.PANOPTIC_DIR), images=len(annotations),
                          segments=n_segments)
