"""Readers of the official result formats, as cityscapesscripts reads them.

One parser per format, used by every stage that reads results (``report``, ``visualize``,
``convert``), so that a file means the same and a bad one gives the same one-line
:class:`~panoptool.errors.InputError` everywhere::

    semantic/<stem>*.png        uint8 label ids             read_semantic_result
    instance/<stem>*.txt        "<mask png> <labelId> <conf>" read_instance_list, read_mask
    panoptic.json               COCO panoptic annotations   read_panoptic_json
    panoptic/<file_name>        RGB, id = R + 256 G + 256^2 B read_panoptic_rgb

Every PNG goes through :func:`read_result_png`, which decodes it the way the official code
(PIL) sees it, with the fastest decoder. :func:`index_results` finds the result files of a
folder by stem, with the official scripts' rule. The file names panoptool itself writes are in
:mod:`panoptool.io.formats`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection
from pathlib import Path
from typing import NamedTuple

import numpy as np

from panoptool.errors import InputError
from panoptool.io import formats
from panoptool.io.coco import match_stem
from panoptool.io.files import PNG_SIGNATURE, check_png_size, decode_png, read_json, safe_join
from panoptool.labels import CITYSCAPES, IGNORE, LABEL_TO_TRAIN, LabelSpace

PathLike = str | os.PathLike

#: Boolean table over label ids 0..255: the categories a ``panoptic.json`` segment may have
#: (the 19 evaluated labels, those with a train id; the same set as
#: :data:`panoptool.evaluation.metrics.panoptic.CATEGORY_IDS`).
IS_PANOPTIC_CATEGORY = LABEL_TO_TRAIN != IGNORE
#: Segments one panoptic image may list (ids of the prediction index are uint16, 0 = VOID).
MAX_SEGMENTS = 65534


# --- finding result files -----------------------------------------------------------------

def index_results(folder: Path, pattern: str, stems: set[str], what: str) -> dict[str, Path]:
    """The result file of each stem below ``folder``, found as the official scripts do.

    Parameters
    ----------
    folder : a part's folder (``<results>/semantic``, ``<results>/instance``).
    pattern : file pattern, searched in every subfolder (``*.png``, ``*.txt``).
    stems : the images of the split; a file belongs to the stem its name starts with
        (:func:`panoptool.io.coco.match_stem`).
    what : the part's name, for messages.

    Returns
    -------
    dict stem -> path, for the stems that have a file (hidden files are skipped).

    Raises
    ------
    InputError
        If a file belongs to no stem, a stem has two files, or a symbolic link leaves the
        results folder (``folder``'s parent).
    """
    found: dict[str, Path] = {}
    inside = folder.parent.resolve()  # the results folder
    for path in sorted(folder.rglob(pattern)):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.is_symlink():  # as masks and panoptic PNGs: links must stay inside
            target = path.resolve()
            if inside not in target.parents:
                raise InputError(path, f"symbolic link to {target}, outside the results "
                                       f"folder {inside}")
        stem = match_stem(path.name, stems)
        if stem is None:
            raise InputError(path, f"{what} result for an image that has no ground truth in "
                                   f"this split")
        if stem in found:
            raise InputError(path, f"second {what} result for image {stem} (first: "
                                   f"{found[stem]})")
        found[stem] = path
    return found


# --- PNGs ---------------------------------------------------------------------------------

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


def check_result_size(path: PathLike, array: np.ndarray, shape: tuple[int, int]) -> None:
    """:class:`InputError` naming ``path`` unless ``array`` is (H, W[, C]) of ``shape``."""
    if array.shape[:2] != shape:
        raise InputError(path, f"size {array.shape[1]}x{array.shape[0]} differs from the "
                               f"ground truth ({shape[1]}x{shape[0]})")


def read_semantic_result(path: PathLike, shape: tuple[int, int]) -> np.ndarray:
    """A ``*_pred_labelIds.png`` as uint8 label ids (H, W).

    16-bit PNGs are accepted when every value fits in 8 bits. Whether the ids are known
    label ids is left to the caller (the evaluation checks it from its counts).

    Raises
    ------
    InputError
        On a missing or undecodable file, several channels, another size or a value > 255.
    """
    pred = read_result_png(path, "semantic", shape)
    if pred.ndim != 2:
        raise InputError(path, f"expected a single-channel label-id PNG, got {pred.shape[2]} "
                               f"channels")
    check_result_size(path, pred, shape)
    if pred.dtype != np.uint8:
        if pred.dtype != np.uint16:
            raise InputError(path, f"expected a uint8 label-id PNG, got dtype {pred.dtype}")
        if pred.max(initial=0) > 255:
            bad = np.unique(pred[pred > 255])[:5].tolist()
            raise InputError(path, f"unknown label id(s) {bad}")
        pred = pred.astype(np.uint8)
    return pred


def read_mask(path: PathLike, shape: tuple[int, int]) -> np.ndarray:
    """An instance mask PNG as the official code sees it: (H, W), non-zero = in the mask.

    Colour masks become PIL's ``convert("L")`` (ITU-R 601-2 luma, rounded), so a dark
    colour can be outside the mask, as in cityscapesscripts.
    """
    mask = read_result_png(path, "mask", shape)
    check_result_size(path, mask, shape)
    if mask.ndim == 3:
        if mask.shape[2] >= 3:  # as PIL's convert("L"): ITU-R 601-2 luma, rounded
            rgb = mask[..., :3].astype(np.uint32)
            mask = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471
                    + 0x8000) >> 16
        else:
            mask = mask[..., 0]
    return mask


def read_panoptic_rgb(path: PathLike, shape: tuple[int, int]) -> np.ndarray:
    """A panoptic PNG as uint8 (H, W, 3 or 4) RGB(A); ids are ``R + 256 G + 256^2 B``
    (:func:`panoptool.io.formats.rgb_to_panoptic_id`).

    Raises
    ------
    InputError
        On a missing or undecodable file, a palette, grey or 16-bit PNG, or another size.
    """
    rgb = read_result_png(path, "panoptic", shape)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4) or rgb.dtype != np.uint8:
        raise InputError(path, f"expected an 8-bit RGB PNG, got shape {rgb.shape} "
                               f"dtype {rgb.dtype}")
    check_result_size(path, rgb, shape)
    return rgb


# --- instance lists -----------------------------------------------------------------------

def read_instance_list(txt_path: PathLike, results_dir: PathLike,
                       labels: LabelSpace = CITYSCAPES) -> list[tuple[Path, int, float]]:
    """Parse a ``_pred.txt``: ``(mask path, label id, confidence)`` per instance.

    Mask paths are relative to the file's folder and must stay inside ``results_dir``. A mask
    listed twice counts once, with the values of its last line (as in cityscapesscripts).
    Blank lines are skipped. Label ids must be ids of ``labels``.
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
        mask = _mask_path(tokens[0], n, txt_path, results_dir, rel_dir, folders)
        label_id, conf = _label_and_confidence(tokens, n, txt_path, labels.known_label)
        entries[mask] = (label_id, conf)
    return [(path, lab, conf) for path, (lab, conf) in entries.items()]


def _mask_path(token: str, n: int, txt_path: Path, results_dir: Path, rel_dir: str,
               folders: dict[str, Path]) -> Path:
    """The mask named on line ``n``, checked to stay inside ``results_dir``; ``folders``
    caches each resolved folder (masks usually share one)."""
    if os.path.isabs(token):
        raise InputError(txt_path, f"line {n}: mask path {token!r} is absolute; it "
                                   f"must be relative to {txt_path.parent}")
    rel = os.path.normpath(os.path.join(rel_dir, token))
    head, name = os.path.split(rel)
    if name in ("", ".", "..") or os.path.islink(results_dir / rel):
        return safe_join(results_dir, rel, source=txt_path)
    if head not in folders:
        try:
            folders[head] = safe_join(results_dir, head or ".", source=txt_path)
        except InputError:
            safe_join(results_dir, rel, source=txt_path)  # the message names rel
            raise
    return folders[head] / name


def _label_and_confidence(tokens: list[str], n: int, txt_path: Path,
                          known: np.ndarray) -> tuple[int, float]:
    try:
        label_id = int(float(tokens[1]))
        conf = float(tokens[2])
    except ValueError:
        raise InputError(txt_path, f"line {n}: label id and confidence must be numbers, "
                                   f"got {tokens[1]!r} {tokens[2]!r}") from None
    if not (0 <= label_id < 256 and known[label_id]):
        raise InputError(txt_path, f"line {n}: unknown label id {label_id}")
    if not math.isfinite(conf):
        raise InputError(txt_path, f"line {n}: confidence must be finite, got {tokens[2]}")
    return label_id, conf


# --- panoptic.json ------------------------------------------------------------------------

class PanopticAnnotation(NamedTuple):
    """One image of a ``panoptic.json``.

    png : its PNG, ``<results>/panoptic/<file_name>`` (default ``<image_id>_panoptic.png``).
    ids : the listed segment ids (24-bit RGB ids), in file order.
    categories : their category (label) ids, in the same order.
    """

    png: Path
    ids: tuple[int, ...]
    categories: tuple[int, ...]

    def segments(self) -> dict[int, int]:
        """segment id -> category id."""
        return dict(zip(self.ids, self.categories))


def read_panoptic_json(results_dir: PathLike, stems: Collection[str] | None = None, *,
                       is_category: np.ndarray = IS_PANOPTIC_CATEGORY
                       ) -> dict[str, PanopticAnnotation]:
    """The annotations of a results folder's ``panoptic.json``, validated, by image id.

    Parameters
    ----------
    results_dir : the results folder.
    stems : the images of the split, or None. If given, an annotation of another image and
        an image without an annotation are refused.
    is_category : bool (256,) over label ids, the allowed ``category_id`` values.

    Returns
    -------
    dict image id (the stem) -> :class:`PanopticAnnotation`, in file order.

    Raises
    ------
    InputError
        Naming ``panoptic.json``, on the first bad entry: no ``annotations`` list, an
        annotation without ``image_id`` / ``segments_info``, an image annotated twice, a
        ``file_name`` that is no string or leaves ``panoptic/``, a segment whose ``id`` or
        ``category_id`` is no integer, an unknown category, an id outside 24 bits, an id
        listed twice, more than :data:`MAX_SEGMENTS` segments.

    Examples
    --------
    >>> import json, tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "panoptic.json").write_text(json.dumps({"annotations": [{"image_id": "a",
    ...     "segments_info": [{"id": 26000, "category_id": 26}]}]}))
    >>> ann = read_panoptic_json(d)["a"]
    >>> ann.png.name, ann.segments()
    ('a_panoptic.png', {26000: 26})
    """
    results_dir = Path(results_dir)
    json_path = formats.panoptic_json_path(results_dir)
    data = read_json(json_path)
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise InputError(json_path, "expected a COCO panoptic object with 'annotations'")
    stem_set = None if stems is None else set(stems)
    png_dir = results_dir / formats.PANOPTIC_DIR
    out: dict[str, PanopticAnnotation] = {}
    for ann in data["annotations"]:
        image_id = str(ann.get("image_id")) if isinstance(ann, dict) else None
        if image_id is None or not isinstance(ann.get("segments_info"), list):
            raise InputError(json_path, "an annotation lacks image_id or segments_info")
        if stem_set is not None and image_id not in stem_set:
            raise InputError(json_path, f"annotation for image {image_id!r}, which has no "
                                        f"ground truth in this split")
        if image_id in out:
            raise InputError(json_path, f"image {image_id} is annotated twice")
        out[image_id] = _annotation(ann, image_id, json_path, png_dir, is_category)
    if stems is not None:
        missing = [s for s in stems if s not in out]
        if missing:
            raise InputError(json_path, f"no annotation for image {missing[0]}"
                                        + (f" and {len(missing) - 1} more" if len(missing) > 1
                                           else ""))
    return out


def _annotation(ann: dict, image_id: str, json_path: Path, png_dir: Path,
                is_category: np.ndarray) -> PanopticAnnotation:
    """One annotation of ``panoptic.json``, checked (see :func:`read_panoptic_json`)."""
    file_name = ann.get("file_name") or f"{image_id}_panoptic.png"
    if not isinstance(file_name, str):
        raise InputError(json_path, f"image {image_id}: file_name must be a string, got "
                                    f"{type(file_name).__name__}")
    png = safe_join(png_dir, str(file_name), source=json_path)
    ids, cats = [], []
    for seg in ann["segments_info"]:
        seg_id, cat = _segment(seg, image_id, json_path, is_category)
        ids.append(seg_id)
        cats.append(cat)
    if len(ids) > MAX_SEGMENTS:
        raise InputError(json_path, f"image {image_id}: {len(ids)} segments; at most "
                                    f"{MAX_SEGMENTS} are supported")
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise InputError(json_path, f"image {image_id}: segment id(s) {dup} listed twice")
    return PanopticAnnotation(png, tuple(ids), tuple(cats))


def _segment(seg, image_id: str, json_path: Path, is_category: np.ndarray) -> tuple[int, int]:
    """(id, category_id) of one ``segments_info`` entry, checked."""
    try:
        seg_id, cat = seg["id"], seg["category_id"]
    except (KeyError, TypeError):
        raise InputError(json_path, f"image {image_id}: a segment lacks an integer id "
                                    f"or category_id") from None
    for key, value in (("id", seg_id), ("category_id", cat)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise InputError(json_path, f"image {image_id}: segment {key} must be an "
                                        f"integer, got {type(value).__name__} {value!r}")
    if not (0 <= cat < 256 and is_category[cat]):
        raise InputError(json_path, f"image {image_id}: segment {seg_id} has unknown "
                                    f"category_id {cat}")
    if not 0 <= seg_id < 1 << 24:
        raise InputError(json_path, f"image {image_id}: segment id {seg_id} is not a "
                                    f"24-bit RGB id")
    return seg_id, cat
