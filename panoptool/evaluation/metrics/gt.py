"""Ground truth reduced to segments, its on-disk cache, and what every metric shares
(:func:`segment_prediction_counts`, :func:`nanmean`).

Every Cityscapes metric depends on the ground truth only through the pair of values a pixel has
in ``*_gtFine_labelIds.png`` and ``*_gtFine_instanceIds.png``. An image has few distinct pairs
(tens to a few hundred), so the ground truth of an image is stored as

* ``segment_index`` uint16 (H, W): index of the pixel's pair in the table below, and
* ``label_ids`` uint8 (S,) and ``instance_ids`` int32 (S,): the pair of segment s.

All metrics then work on small (S, ...) count tables. The cache stores the index map as its
runs, in raster order and in column-major order (a few hundred kB for a 1024x2048 image), far
faster to read than the two PNGs; the semantic and panoptic counts are taken over runs
(:func:`segment_runs`), the overlaps of COCO RLE masks over the column-major runs
(:func:`panoptool.io.rle.masks_segment_overlap`), and the full map is only expanded for what
needs pixels (PNG masks, boundaries). A cache entry is keyed by the BLAKE2 hash of both
ground-truth files' bytes, so editing a ground-truth file always invalidates it (unlike
cityscapesscripts' ``gtInstances.json``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np

from panoptool.errors import ArrayError, InputError, PanoptoolError
from panoptool.io.files import load_arrays, save_arrays
from panoptool.io.rle import column_runs, flat_runs, neighbour_change

PathLike = str | os.PathLike

#: Bump when the cached representation changes; older entries are then recomputed.
#: 2: the index map's runs in raster and in column-major order (COCO's), with their starts,
#: in a :func:`~panoptool.io.files.save_arrays` file (``.arrays``; version 1 was an ``.npz``).
CACHE_VERSION = 2
CACHE_DIRNAME = ".panoptool_cache"


class GroundTruth:
    """The ground truth of one image, reduced to segments (distinct label/instance pairs).

    Attributes
    ----------
    segment_index : uint16 (H, W), index into ``label_ids`` / ``instance_ids``.
    label_ids : uint8 (S,), value of ``*_gtFine_labelIds.png`` on segment s.
    instance_ids : int32 (S,), value of ``*_gtFine_instanceIds.png`` on segment s.
    areas : int64 (S,), pixels of segment s.

    The index map can also be given as its runs in raster order (``row_runs``, as the cache
    stores it, with ``shape``): the full map is then only built when something asks for
    ``segment_index``; the counts of the semantic and panoptic parts work on runs alone
    (:func:`segment_runs`). ``row_runs``, ``row_run_starts`` and ``column_runs`` are
    computed once each, on first use, unless given (the cache gives both run orders).
    """

    def __init__(self, segment_index: np.ndarray | None = None,
                 label_ids: np.ndarray | None = None, instance_ids: np.ndarray | None = None,
                 areas: np.ndarray | None = None, *,
                 row_runs: tuple[np.ndarray, np.ndarray] | None = None,
                 column_runs: tuple[np.ndarray, np.ndarray] | None = None,
                 shape: tuple[int, int] | None = None) -> None:
        if segment_index is None and (row_runs is None or shape is None):
            raise ValueError("GroundTruth needs segment_index, or row_runs and shape")
        if label_ids is None or instance_ids is None or areas is None:
            raise ValueError("GroundTruth needs label_ids, instance_ids and areas")
        self.label_ids = label_ids
        self.instance_ids = instance_ids
        self.areas = areas
        given = {"segment_index": segment_index, "row_runs": row_runs,
                 "column_runs": column_runs}
        for name, value in given.items():
            if value is not None:
                self.__dict__[name] = value  # the slot of the cached_property of that name
        if segment_index is not None:
            shape = segment_index.shape
        self._shape = (int(shape[0]), int(shape[1]))

    def __repr__(self) -> str:
        return f"GroundTruth(shape={self.shape}, segments={self.n_segments})"

    @property
    def shape(self) -> tuple[int, int]:
        return self._shape

    @property
    def n_segments(self) -> int:
        return len(self.label_ids)

    @cached_property
    def segment_index(self) -> np.ndarray:
        starts, values = self.row_runs
        return np.repeat(values, np.diff(starts)).reshape(self._shape)

    @cached_property
    def row_runs(self) -> tuple[np.ndarray, np.ndarray]:
        """The runs of ``segment_index`` in raster order: ``(starts, values)``, starts int64
        (R + 1,) ending with H*W (:func:`panoptool.io.rle.flat_runs`)."""
        return flat_runs(self.segment_index.ravel())

    @cached_property
    def row_run_starts(self) -> np.ndarray:
        """bool (H*W,): True where a run of ``segment_index`` begins (raster order)."""
        mask = np.zeros(self._shape[0] * self._shape[1], dtype=bool)
        mask[self.row_runs[0][:-1]] = True
        return mask

    @cached_property
    def column_runs(self) -> tuple[np.ndarray, np.ndarray]:
        """The runs of ``segment_index`` in column-major order (COCO's RLE order):
        :func:`panoptool.io.rle.column_runs`, computed once (and kept in the cache)."""
        return column_runs(self.segment_index)


def instance_label(instance_ids: np.ndarray) -> np.ndarray:
    """Label id encoded in instance ids: ``id // 1000`` for ids >= 1000, else the id itself.

    >>> instance_label(np.array([7, 26, 26001, 33012])).tolist()
    [7, 26, 26, 33]
    """
    instance_ids = np.asarray(instance_ids)
    return np.where(instance_ids >= 1000, instance_ids // 1000, instance_ids)


def segment_ground_truth(label_ids: np.ndarray, instance_ids: np.ndarray) -> GroundTruth:
    """Reduce a label-id map and an instance-id map to segments.

    Parameters
    ----------
    label_ids : uint8 (H, W), Cityscapes label ids.
    instance_ids : int (H, W), Cityscapes instance ids (``label * 1000 + k`` or ``label``),
        values below 65536.

    Returns
    -------
    GroundTruth, segments sorted by (instance id, label id).

    Examples
    --------
    >>> gt = segment_ground_truth(np.array([[7, 26, 26]], np.uint8),
    ...                           np.array([[7, 26001, 26001]], np.int32))
    >>> gt.segment_index.tolist(), gt.label_ids.tolist(), gt.instance_ids.tolist()
    ([[0, 1, 1]], [7, 26], [7, 26001])
    """
    if label_ids.shape != instance_ids.shape:
        raise ArrayError(None, f"label_ids {label_ids.shape} and instance_ids "
                               f"{instance_ids.shape} differ in shape")
    shape = label_ids.shape
    if instance_ids.dtype in (np.uint8, np.uint16) and label_ids.dtype == np.uint8:
        # fast path: lookup tables over the 16-bit ids, no per-pixel integer division
        inst = instance_ids.ravel()
        lab = label_ids.ravel()
        if np.array_equal(_DERIVED_LABEL_U16[inst], lab):
            counts = _histogram_u16(inst)
            keys = np.flatnonzero(counts)
            lut = np.zeros(len(counts), dtype=np.uint16)
            lut[keys] = np.arange(len(keys), dtype=np.uint16)
            seg_inst = keys.astype(np.int64)
            return GroundTruth(segment_index=lut[inst].reshape(shape),
                               label_ids=instance_label(seg_inst).astype(np.uint8),
                               instance_ids=seg_inst.astype(np.int32),
                               areas=counts[keys].astype(np.int64))
    # general case: one segment per distinct (instance id, label id) pair
    key = instance_ids.astype(np.int64).ravel() * 256 + label_ids.astype(np.int64).ravel()
    keys, index, areas = np.unique(key, return_inverse=True, return_counts=True)
    if len(keys) > 65535:
        raise ArrayError(None, f"too many distinct ground-truth segments ({len(keys)})")
    return GroundTruth(segment_index=index.astype(np.uint16).reshape(shape),
                       label_ids=(keys % 256).astype(np.uint8),
                       instance_ids=(keys // 256).astype(np.int32),
                       areas=areas.astype(np.int64))


def _histogram_u16(values: np.ndarray) -> np.ndarray:
    """Counts of each value of a flat uint8/uint16 array, int64 (max + 1,)."""
    top = int(values.max(initial=0)) + 1
    if values.size < 1 << 24:  # float32 counts are exact
        hist = cv2.calcHist([values.reshape(1, -1)], [0], None, [top], [0, top])
        return hist.ravel().astype(np.int64)
    return np.bincount(values, minlength=top)


_V = np.arange(1 << 16)
#: uint8 label encoded in each 16-bit instance id (256 where it exceeds 255: never equal).
_DERIVED_LABEL_U16 = np.where(_V >= 1000, _V // 1000, _V).clip(0, 255).astype(np.uint8)
_DERIVED_LABEL_U16[(np.where(_V >= 1000, _V // 1000, _V) > 255)] = 0
del _V


def pair_counts(first: np.ndarray, n_first: int, second: np.ndarray,
                n_second: int) -> np.ndarray:
    """Joint histogram of two label maps of the same shape.

    Parameters
    ----------
    first : uint (H, W), values < ``n_first`` (e.g. a ground-truth segment index).
    second : uint (H, W), values < ``n_second`` (e.g. a prediction).

    Returns
    -------
    int64 (n_first, n_second): pixels per pair of values.

    Small tables use a 16-bit code and OpenCV's histogram (exact in float32 below 2^24
    pixels), about 3x faster than ``np.bincount``.

    >>> pair_counts(np.array([[0, 1, 1]], np.uint16), 2, np.array([[2, 2, 0]], np.uint8), 3)
    array([[0, 0, 1],
           [1, 0, 1]])
    """
    n_bins = n_first * n_second
    if n_bins <= 1 << 16 and first.size < 1 << 24:
        code = first.astype(np.uint16, copy=True)
        code *= n_second
        code += second.astype(np.uint16, copy=False)
        hist = cv2.calcHist([np.ascontiguousarray(code)], [0], None, [n_bins], [0, n_bins])
        return hist.ravel().astype(np.int64).reshape(n_first, n_second)
    code = first.astype(np.int64)
    code *= n_second
    code += second
    return np.bincount(code.ravel(), minlength=n_bins).reshape(n_first, n_second)


def segment_runs(gt: GroundTruth, change: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The runs (raster order) along which both the ground-truth segment and a prediction
    stay the same.

    Parameters
    ----------
    gt : ground truth, shape (H, W).
    change : bool (H*W,), True where the prediction differs from the pixel before; the
        ground truth's run starts are OR-ed into it (it is overwritten).

    Returns
    -------
    starts : int64 (R,), where each run begins; lengths : int64 (R,); segments : the
    ground-truth segment of each run.
    """
    np.logical_or(change, gt.row_run_starts, out=change)
    starts = np.flatnonzero(change)
    lengths = np.diff(starts, append=change.size)
    run_values = gt.row_runs[1]
    segments = run_values[np.cumsum(gt.row_run_starts[starts]) - 1]
    return starts, lengths, segments


#: Above this share of runs per pixel, counting pixels (a histogram) is faster than runs.
MAX_RUN_SHARE = 0.125


def segment_prediction_counts(gt: GroundTruth, prediction: np.ndarray,
                              n_values: int = 256) -> np.ndarray:
    """Pixels of each ground-truth segment per predicted value.

    Both maps are constant along long runs of the raster order, so the counts are taken
    over the runs of (segment, value) (:func:`segment_runs`, from the ground truth's runs,
    without its full index map); a prediction with too many runs (noise) is counted pixel by
    pixel (:func:`pair_counts`).

    Parameters
    ----------
    gt : ground truth of the image, segments S.
    prediction : uint (H, W), values < ``n_values``: predicted label ids (``n_values``
        256), or a panoptic prediction index (0 = VOID, k = the k-th predicted segment,
        ``n_values`` = P + 1).

    Returns
    -------
    int64 (S, n_values): ``counts[s, v]`` = pixels of segment s predicted as v.

    >>> gt = segment_ground_truth(np.array([[7, 7, 26]], np.uint8),
    ...                           np.array([[7, 7, 26001]], np.int32))
    >>> segment_prediction_counts(gt, np.array([[0, 1, 1]], np.uint8), 2).tolist()
    [[1, 1], [0, 1]]
    """
    flat = prediction.reshape(-1)
    change = neighbour_change(flat)
    n_runs = int(np.count_nonzero(change)) + len(gt.row_runs[1])
    if n_runs > MAX_RUN_SHARE * flat.size:
        return pair_counts(gt.segment_index, gt.n_segments, prediction, n_values)
    starts, lengths, segments = segment_runs(gt, change)
    code = segments.astype(np.int64) * n_values + flat[starts]
    counts = np.bincount(code, weights=lengths, minlength=gt.n_segments * n_values)
    return counts.astype(np.int64).reshape(gt.n_segments, n_values)


def nanmean(values: np.ndarray) -> float:
    """Mean of the values that are not NaN; NaN if there is none.

    >>> nanmean(np.array([0.5, np.nan, 1.0])), nanmean(np.array([np.nan]))
    (0.75, nan)
    """
    valid = values[~np.isnan(values)]
    return float(valid.mean()) if valid.size else float("nan")


# --- cache ------------------------------------------------------------------------------------

def file_digest(path: PathLike) -> str:
    """BLAKE2b digest (hex, 16 bytes) of a file's bytes; InputError if it cannot be read."""
    try:
        with open(path, "rb") as fh:
            return hashlib.blake2b(fh.read(), digest_size=16).hexdigest()
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except OSError as exc:
        raise InputError(path, f"cannot read ({exc.strerror})") from None


def cache_key(label_ids_path: PathLike, instance_ids_path: PathLike) -> str:
    """Key of a cache entry: the digests of both ground-truth files and the cache version."""
    return (f"v{CACHE_VERSION}:{file_digest(label_ids_path)}:"
            f"{file_digest(instance_ids_path)}")


def save_cached(path: PathLike, gt: GroundTruth, key: str) -> bool:
    """Write ``gt`` to the cache file ``path``; False (and nothing written) if not writable."""
    row_starts, row_values = gt.row_runs
    col_starts, col_values = gt.column_runs
    try:
        save_arrays(path, key=np.array(key), shape=np.array(gt.shape, dtype=np.int64),
                    row_starts=row_starts.astype(np.int32), row_values=row_values,
                    col_starts=col_starts.astype(np.int32), col_values=col_values,
                    label_ids=gt.label_ids, instance_ids=gt.instance_ids, areas=gt.areas)
    except (OSError, PanoptoolError):
        return False
    old = Path(path).with_suffix(".npz")  # the entry version 1 wrote for this image
    if old != Path(path):
        with contextlib.suppress(OSError):
            old.unlink(missing_ok=True)
    return True


def load_cached(path: PathLike, key: str) -> GroundTruth | None:
    """The cached ground truth at ``path`` if it exists and its key equals ``key``, else None."""
    if not os.path.isfile(path):
        return None
    try:
        data = load_arrays(path, keys=("key", "shape", "row_starts", "row_values",
                                       "col_starts", "col_values", "label_ids",
                                       "instance_ids", "areas"))
    except InputError:
        return None  # unreadable entry: recompute and overwrite
    if str(data["key"]) != key:
        return None
    shape = tuple(int(v) for v in data["shape"])
    n = shape[0] * shape[1] if len(shape) == 2 else -1
    n_segments = len(data["label_ids"])
    if (len(data["instance_ids"]) != n_segments or len(data["areas"]) != n_segments
            or int(data["areas"].sum()) != n):
        return None  # not an entry this version wrote: recompute and overwrite
    runs = {}
    for order in ("row", "col"):
        starts = data[f"{order}_starts"].astype(np.int64)
        values = data[f"{order}_values"]
        if (values.dtype.kind not in "iu" or len(starts) != len(values) + 1
                or starts[0] != 0 or starts[-1] != n or (np.diff(starts) <= 0).any()
                or (len(values) and (int(values.min()) < 0
                                     or int(values.max()) >= n_segments))):
            return None
        runs[order] = (starts, values)
    return GroundTruth(label_ids=data["label_ids"], instance_ids=data["instance_ids"],
                       areas=data["areas"], row_runs=runs["row"], column_runs=runs["col"],
                       shape=shape)


def cached_ground_truth(cache_file: PathLike | None, key, compute) -> GroundTruth:
    """``compute()``, or the entry of ``cache_file`` where its key equals ``key()`` (called
    only when there is a cache file); a computed result is written there (skipped where the
    cache cannot be written). ``cache_file`` None: no cache."""
    if cache_file is None:
        return compute()
    entry_key = key()
    cached = load_cached(cache_file, entry_key)
    if cached is not None:
        return cached
    gt = compute()
    save_cached(cache_file, gt, entry_key)
    return gt


def cache_path(cache_dir: PathLike, split: str, stem: str) -> Path:
    """File of the cache entry of one image."""
    return Path(cache_dir) / "gt" / split / f"{stem}.arrays"
