"""File names and encodings that tie panoptool's stages together (format version 1).

This module is the contract between stages: every stage finds its inputs and names its
outputs through these functions, so a file layout lives in exactly one place.

Layout
------
::

    targets/<split>/<city>/<stem>_semantic.png   uint8 trainIds, 255 = ignore
    targets/<split>/<city>/<stem>_contour.png    uint8 0/1, dilated instance contours
    targets/<split>/<city>/<stem>_offset.npz     centre offsets, factored (see below)
    targets/config.json                          TargetConfig + format version
    maps/<NAME>/<split>/<city>/<stem>_maps.npz   network prediction maps (MAPS_KEYS)
    results/<NAME>/semantic/<stem>_pred_labelIds.png
    results/<NAME>/instance/<stem>_pred.txt      lines "masks/<stem>_<k>.png <labelId> <conf>"
    results/<NAME>/instance/masks/<stem>_<k>.png uint8 0/255
    results/<NAME>/panoptic/<stem>_panoptic.png  RGB, id = R + 256 G + 256^2 B
    results/<NAME>/panoptic.json                 COCO panoptic annotations
    results/<NAME>/config.json                   settings that made the results

The ``<stem>`` is Cityscapes' ``<city>_<sequence>_<frame>``, e.g. ``frankfurt_000000_000294``;
a stem without a city (COCO's ``000000142238``: fewer than two underscores) has no
``<city>/`` folder (:func:`city_of`).

Offset targets are stored factored, which is exact and about 100x smaller and faster than a
per-pixel float map: ``instance_index`` (uint8 (H, W), or uint16 from 256 instances on;
0 = no offset target, k = k-th non-crowd thing instance; read back as uint16) and
``centers_yx`` (float32 (K, 2), centroid row/column of instance k at row k-1).
:func:`decode_offsets` expands them to the (2, H, W) map.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from panoptool.errors import InputError
from panoptool.io.files import LABEL_PNG_PARAMS, load_npz, read_png, save_npz, write_png

PathLike = str | os.PathLike

TARGET_SUFFIXES = {"semantic": "_semantic.png", "contour": "_contour.png",
                   "offset": "_offset.npz"}
MAPS_SUFFIX = "_maps.npz"
#: Arrays in a ``_maps.npz``: train_ids uint8 (H, W); confidence float16/32 (H, W) in [0, 1];
#: contour_prob float16/32 (H, W) in [0, 1]; offset_yx float16/32 (2, H, W), (dy, dx) in pixels
#: from the pixel to its predicted instance centre.
MAPS_KEYS = ("train_ids", "confidence", "contour_prob", "offset_yx")

SEMANTIC_DIR, INSTANCE_DIR, PANOPTIC_DIR = "semantic", "instance", "panoptic"
PANOPTIC_JSON = "panoptic.json"
MASKS_SUBDIR = "masks"


def city_of(stem: str) -> str:
    """City of a Cityscapes stem (the output sub-folder): ``'frankfurt_000000_000294' ->
    'frankfurt'``; ``''`` for a stem with fewer than two underscores (a COCO image: its files
    lie directly under ``<out>/<split>/``).

    >>> city_of("frankfurt_000000_000294"), city_of("000000142238"), city_of("a_b")
    ('frankfurt', '', '')
    """
    parts = stem.rsplit("_", 2)
    return parts[0] if len(parts) == 3 else ""


# --- targets -------------------------------------------------------------------------------

def target_paths(targets_root: PathLike, split: str, stem: str) -> dict[str, Path]:
    """Paths of the three target files of one image, keyed semantic/contour/offset."""
    folder = Path(targets_root) / split / city_of(stem)
    return {key: folder / f"{stem}{suffix}" for key, suffix in TARGET_SUFFIXES.items()}


def write_targets(targets_root: PathLike, split: str, stem: str, *, train_ids: np.ndarray,
                  contour: np.ndarray, instance_index: np.ndarray,
                  centers_yx: np.ndarray) -> None:
    """Write the targets of one image (each file atomically; the offsets file last, so its
    presence marks the image as done for resuming)."""
    paths = target_paths(targets_root, split, stem)
    write_png(paths["semantic"], train_ids.astype(np.uint8, copy=False), params=LABEL_PNG_PARAMS)
    write_png(paths["contour"], contour.astype(np.uint8, copy=False), params=LABEL_PNG_PARAMS)
    # uint8 while the image has fewer than 256 instances: half the bytes to deflate (the
    # offsets file was the slowest of the three to write)
    index_dtype = np.uint8 if int(instance_index.max(initial=0)) < 256 else np.uint16
    save_npz(paths["offset"], compressed=True, compresslevel=1,
             instance_index=instance_index.astype(index_dtype, copy=False),
             centers_yx=np.asarray(centers_yx, dtype=np.float32).reshape(-1, 2))


def read_targets(targets_root: PathLike, split: str, stem: str) -> dict[str, np.ndarray]:
    """Read the targets of one image.

    Returns
    -------
    dict with ``train_ids`` uint8 (H, W), ``contour`` uint8 (H, W) 0/1, ``instance_index``
    uint16 (H, W), ``centers_yx`` float32 (K, 2), ``offset_yx`` float32 (2, H, W) and
    ``offset_valid`` bool (H, W).
    """
    paths = target_paths(targets_root, split, stem)
    train_ids = read_png(paths["semantic"], dtype=np.uint8, channels=1)
    contour = read_png(paths["contour"], dtype=np.uint8, channels=1)
    off = load_npz(paths["offset"], keys=("instance_index", "centers_yx"))
    if off["instance_index"].dtype not in (np.uint8, np.uint16):
        raise InputError(paths["offset"], f"instance_index must be uint8 or uint16, got "
                                          f"{off['instance_index'].dtype}")
    off["instance_index"] = off["instance_index"].astype(np.uint16, copy=False)
    for key, arr in (("contour", contour), ("offset", off["instance_index"])):
        if arr.shape != train_ids.shape:
            raise InputError(paths[key], f"size {arr.shape} differs from the semantic target "
                                         f"{train_ids.shape}")
    if off["instance_index"].max(initial=0) > len(off["centers_yx"]):
        raise InputError(paths["offset"], "instance_index refers to more centres than stored")
    offset_yx, valid = decode_offsets(off["instance_index"], off["centers_yx"])
    return {"train_ids": train_ids, "contour": contour,
            "instance_index": off["instance_index"], "centers_yx": off["centers_yx"],
            "offset_yx": offset_yx, "offset_valid": valid}


def decode_offsets(instance_index: np.ndarray,
                   centers_yx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expand factored offset targets to a per-pixel map.

    Parameters
    ----------
    instance_index : uint16 (H, W); 0 = no target, k = instance k.
    centers_yx : float32 (K, 2); centre (row, column) of instance k at row k-1.

    Returns
    -------
    offset_yx : float32 (2, H, W), (dy, dx) from each pixel to its instance centre; 0 where
        invalid.
    valid : bool (H, W), True on pixels with an offset target.

    Examples
    --------
    >>> idx = np.array([[0, 1], [1, 1]], dtype=np.uint16)
    >>> off, valid = decode_offsets(idx, np.array([[0.5, 1.0]], dtype=np.float32))
    >>> off[0].tolist(), off[1].tolist()
    ([[0.0, 0.5], [-0.5, -0.5]], [[0.0, 0.0], [1.0, 0.0]])
    """
    h, w = instance_index.shape
    table = np.zeros((len(centers_yx) + 1, 2), dtype=np.float32)
    table[1:] = centers_yx
    centre = table[instance_index]  # (H, W, 2)
    valid = instance_index > 0
    offset_yx = np.empty((2, h, w), dtype=np.float32)
    offset_yx[0] = centre[..., 0] - np.arange(h, dtype=np.float32)[:, None]
    offset_yx[1] = centre[..., 1] - np.arange(w, dtype=np.float32)[None, :]
    offset_yx[:, ~valid] = 0.0
    return offset_yx, valid


# --- prediction maps -----------------------------------------------------------------------

def maps_path(maps_root: PathLike, split: str, stem: str) -> Path:
    """Path of the prediction maps of one image."""
    return Path(maps_root) / split / city_of(stem) / f"{stem}{MAPS_SUFFIX}"


def find_maps(maps_root: PathLike) -> list[Path]:
    """All ``*_maps.npz`` below ``maps_root``, sorted; :class:`InputError` if there are none."""
    root = Path(maps_root)
    if not root.is_dir():
        raise InputError(root, "maps folder not found")
    found = sorted(p for p in root.rglob(f"*{MAPS_SUFFIX}") if not p.name.startswith("."))
    if not found:
        raise InputError(root, f"no *{MAPS_SUFFIX} prediction maps in this folder")
    return found


def stem_of_maps(path: PathLike) -> str:
    """``.../frankfurt_000000_000294_maps.npz -> 'frankfurt_000000_000294'``."""
    return Path(path).name[: -len(MAPS_SUFFIX)]


def write_maps(path: PathLike, *, train_ids: np.ndarray, confidence: np.ndarray,
               contour_prob: np.ndarray, offset_yx: np.ndarray) -> None:
    """Write prediction maps (float maps stored as float16), atomically."""
    save_npz(path, train_ids=train_ids.astype(np.uint8, copy=False),
             confidence=confidence.astype(np.float16),
             contour_prob=contour_prob.astype(np.float16),
             offset_yx=offset_yx.astype(np.float16))


def read_maps(path: PathLike, num_classes: int | None = None) -> dict[str, np.ndarray]:
    """Read and validate prediction maps; float arrays come back as float32.

    ``num_classes``: K of the maps' label space (default Cityscapes' 19).

    Raises
    ------
    InputError
        On a missing key, a wrong shape or dtype, NaN/inf values, probabilities outside
        [0, 1] or train ids that are neither 0..K-1 nor 255.
    """
    from panoptool.io.files import MAX_PIXELS, npz_shapes
    from panoptool.labels import NUM_CLASSES, IGNORE

    k = NUM_CLASSES if num_classes is None else num_classes

    # shapes from the headers first: nothing larger than its train_ids map is ever loaded
    headers = npz_shapes(path)
    if "train_ids" in headers:
        shape = headers["train_ids"][0]
        if len(shape) != 2 or shape[0] * shape[1] > MAX_PIXELS:
            raise InputError(path, f"train_ids must be 2-d (H, W) with at most {MAX_PIXELS} "
                                   f"pixels, got shape {shape}; not loaded")
        h, w = shape
        for key, want in (("confidence", (h, w)), ("contour_prob", (h, w)),
                          ("offset_yx", (2, h, w))):
            if key in headers and headers[key][0] != want:
                raise InputError(path, f"{key} must have shape {want}, got "
                                       f"{headers[key][0]}; not loaded")
        for key, (arr_shape, _) in headers.items():
            if int(np.prod(arr_shape, dtype=np.int64)) > 2 * h * w:
                raise InputError(path, f"array {key} of shape {arr_shape} is larger than the "
                                       f"maps of a {w}x{h} image; not loaded")
    maps = load_npz(path, keys=MAPS_KEYS)
    tid = maps["train_ids"]
    if tid.ndim != 2:
        raise InputError(path, f"train_ids must be 2-d (H, W), got shape {tid.shape}")
    if tid.dtype != np.uint8:
        raise InputError(path, f"train_ids must be uint8, got {tid.dtype}")
    h, w = tid.shape
    expected = {"confidence": (h, w), "contour_prob": (h, w), "offset_yx": (2, h, w)}
    out = {"train_ids": tid}
    for key, shape in expected.items():
        arr = maps[key]
        if arr.shape != shape:
            raise InputError(path, f"{key} must have shape {shape}, got {arr.shape}")
        if arr.dtype not in (np.float16, np.float32, np.float64):
            raise InputError(path, f"{key} must be float16/32, got {arr.dtype}")
        arr = arr.astype(np.float32, copy=False)
        if not np.isfinite(arr).all():
            raise InputError(path, f"{key} has NaN or infinite values")
        if key != "offset_yx" and (arr.min() < 0 or arr.max() > 1):
            raise InputError(path, f"{key} must lie in [0, 1], got range "
                                   f"[{arr.min():.3g}, {arr.max():.3g}]")
        out[key] = arr
    bad = (tid >= k) & (tid != IGNORE)
    if bad.any():
        raise InputError(path, f"unknown train id(s) {sorted(set(np.unique(tid[bad]).tolist()))}"
                               f" (expected 0..{k - 1} or {IGNORE})")
    return out


# --- results (official Cityscapes formats) -------------------------------------------------

def semantic_result_path(results_root: PathLike, stem: str) -> Path:
    return Path(results_root) / SEMANTIC_DIR / f"{stem}_pred_labelIds.png"


def instance_txt_path(results_root: PathLike, stem: str) -> Path:
    return Path(results_root) / INSTANCE_DIR / f"{stem}_pred.txt"


def sanitized_name(name: str) -> str:
    """``name`` without whitespace, for file names written into ``_pred.txt`` (whose fields
    are separated by whitespace): every whitespace character and ``%`` become ``%XX``
    (their UTF-8 bytes in hex), so different names stay different and the text is readable.

    >>> sanitized_name("são paulo_000000_000000")
    'são%20paulo_000000_000000'
    >>> sanitized_name("frankfurt_000000_000294")
    'frankfurt_000000_000294'
    """
    return "".join("".join(f"%{b:02X}" for b in ch.encode("utf-8"))
                   if ch.isspace() or ch == "%" else ch for ch in name)


def instance_mask_relpath(stem: str, k: int) -> str:
    """Mask path as written in ``_pred.txt``, relative to the ``instance/`` folder; never
    contains whitespace (:func:`sanitized_name`), so the official parser reads it."""
    return f"{MASKS_SUBDIR}/{sanitized_name(stem)}_{k:03d}.png"


def panoptic_png_path(results_root: PathLike, stem: str) -> Path:
    return Path(results_root) / PANOPTIC_DIR / f"{stem}_panoptic.png"


def panoptic_json_path(results_root: PathLike) -> Path:
    return Path(results_root) / PANOPTIC_JSON


def rgb_to_panoptic_id(rgb: np.ndarray) -> np.ndarray:
    """COCO panoptic colour -> id: ``R + 256 G + 256^2 B``; (H, W, 3) uint8 -> int32 (H, W)."""
    rgb = rgb.astype(np.int32)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def panoptic_id_to_rgb(ids: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_panoptic_id`; int (H, W) -> uint8 (H, W, 3)."""
    ids = ids.astype(np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536 % 256], axis=-1).astype(np.uint8)


# --- provenance: every stage's config.json carries the configs of the stages before it -----

CONFIG_JSON = "config.json"


def stage_config(stage: str, settings: dict, upstream: dict | None = None) -> dict:
    """The ``config.json`` of a stage's output folder.

    ``{"stage": stage, "format_version": 1, "settings": settings, "upstream": upstream}``, where
    ``upstream`` is the ``config.json`` of the stage whose files this one read (targets ->
    train -> infer -> postprocess), so a result always says how it was made, end to end.
    """
    from panoptool import FORMAT_VERSION, __version__
    return {"stage": stage, "format_version": FORMAT_VERSION, "panoptool_version": __version__,
            "settings": settings, "upstream": upstream}


def flatten_config(config: dict | None) -> dict[str, object]:
    """Flatten a chain of :func:`stage_config` dicts to ``{"<stage>.<setting>": value}``.

    Nested settings become dotted keys; lists become comma-joined strings, so values compare
    and print well in ablation tables.

    >>> t = stage_config("make-targets", {"dilation": 2})
    >>> p = stage_config("postprocess", {"min_area": 300, "steps": ["split", "merge"]}, t)
    >>> flatten_config(p)
    {'postprocess.min_area': 300, 'postprocess.steps': 'split,merge', 'make-targets.dilation': 2}
    """
    flat: dict[str, object] = {}

    def put(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                put(f"{prefix}.{k}", v)
        elif isinstance(value, (list, tuple)):
            flat[prefix] = ",".join(str(v) for v in value)
        else:
            flat[prefix] = value

    while config:
        put(config.get("stage", "unknown"), config.get("settings", {}))
        config = config.get("upstream")
    return flat
