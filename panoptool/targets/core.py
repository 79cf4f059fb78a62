"""Training targets: semantic trainIds, instance contours and centre offsets.

Pure functions on arrays (:func:`semantic_target`, :func:`contour_target`,
:func:`offset_target`, :func:`compute_targets`) and a thin runner (:func:`make_targets`) that
applies them to every image of a split, in parallel, resuming where it stopped.

Definitions (DESIGN.md)
-----------------------
These are the definitions every stage uses (the visualisation and the contour score too):

- A *thing instance* is a non-crowd instance of a thing class: ``instance_id >= 1000`` and
  ``instance_id // 1000`` in the label space's ``thing_label_ids`` (Cityscapes: caravan,
  trailer and crowd regions, whose instance id is the bare label id, are not thing
  instances); decided by the id alone (:func:`thing_instance_mask`), never by the label map.
  Cityscapes' ids fit 16 bits; a COCO-panoptic dataset's reach 255999 (category ids to 255)
  and come as int32. A crowd region (COCO's ``iscrowd``) has the bare label id, as in
  Cityscapes: it keeps its semantic class and gets no contour and no offset target.
- Boundary: the pixels of an instance with a 4-neighbour, inside the image, that belongs to
  anything else (:func:`boundary_of_instances`).
- Centroid: the mean (row, column) of an instance's pixels (:func:`instance_centroids`).
- Contour: the boundary of every thing instance, united over instances, then dilated
  ``dilation - 1`` times with a 3x3 square kernel.
- Offset: per thing-instance pixel, (dy, dx) from the pixel to the instance's centroid;
  stored factored as ``instance_index`` + ``centers_yx`` (see :mod:`panoptool.io.formats`).
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from panoptool.io import formats
from panoptool.errors import ArrayError, ConfigError, InputError
from panoptool.io.files import read_json, remove_stale_temporaries, write_json
from panoptool.labels import (CITYSCAPES, LABELS_KEY, MAX_INSTANCE_ID, LabelSpace,
                              labels_of_config, require_same)

PathLike = str | os.PathLike

_MAX_ID = MAX_INSTANCE_ID  # instance ids fit in uint16 (Cityscapes stores them so)
#: The largest instance id of any label space: label ids go to 255, so ``255 * 1000 + 999``.
MAX_ANY_INSTANCE_ID = 255 * 1000 + 999
#: Boolean table over instance ids 0..65535: True for ids of non-crowd thing instances
#: (Cityscapes; ``labels.is_thing_instance_id`` of any label space).
IS_THING_INSTANCE = CITYSCAPES.is_thing_instance_id

_KERNEL = np.ones((3, 3), dtype=np.uint8)


@dataclass(frozen=True)
class TargetConfig:
    """Settings of ``make-targets``.

    Parameters
    ----------
    dilation : contour dilation rate d >= 1; the 1-px inner boundary is dilated d - 1 times
        with a 3x3 square kernel (1 = thinnest, 2 = the paper's default, 3 = thicker).
    """

    # metadata["help"]: the help of the `make-targets` option made from the field
    dilation: int = dataclasses.field(default=2, metadata={
        "help": "Contour dilation rate d: the 1-px instance boundary dilated d-1 times with a "
                "3x3 kernel (1 thinnest, 2 the paper's default, 3 thicker)."})

    def __post_init__(self):
        d = self.dilation
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
            raise ConfigError(f"dilation must be an integer >= 1, got {d!r}")


def _value_range(ids: np.ndarray) -> tuple[int, int]:
    """(min, max) of an integer array; OpenCV's single pass where it can."""
    if ids.dtype in (np.int32, np.uint8, np.int16, np.uint16, np.int8):
        lo, hi, _, _ = cv2.minMaxLoc(np.ascontiguousarray(ids))
        return int(lo), int(hi)
    return int(ids.min()), int(ids.max())


def _check_2d(name: str, arr: np.ndarray) -> None:
    if not isinstance(arr, np.ndarray) or arr.ndim != 2:
        raise ArrayError(None, f"{name} must be a 2-d array (H, W), got "
                          f"{getattr(arr, 'shape', type(arr).__name__)}")


def thing_instance_mask(instance_ids: np.ndarray, labels: LabelSpace = CITYSCAPES
                        ) -> np.ndarray:
    """True on pixels of non-crowd thing instances (the module docstring's definition).

    Parameters
    ----------
    instance_ids : integer (H, W), instance ids in 0..255999.
    labels : the label space.

    Returns
    -------
    bool (H, W).

    >>> thing_instance_mask(np.array([[26, 26001, 29000, 24]])).tolist()
    [[False, True, False, False]]
    """
    return instance_index_map(instance_ids, labels)[0] > 0


def thing_instance_ids(instance_ids: np.ndarray, labels: LabelSpace = CITYSCAPES
                       ) -> np.ndarray:
    """The instance ids on the pixels of thing instances, 0 elsewhere: int64 (H, W).

    >>> thing_instance_ids(np.array([[26, 26001, 29000, 24001]])).tolist()
    [[0, 26001, 0, 24001]]
    """
    ids = np.asarray(instance_ids)
    return np.where(thing_instance_mask(ids, labels), ids.astype(np.int64), 0)


def semantic_target(label_ids: np.ndarray, labels: LabelSpace = CITYSCAPES) -> np.ndarray:
    """Semantic target: label ids -> train ids.

    Parameters
    ----------
    label_ids : uint8 (H, W), label ids.
    labels : the label space.

    Returns
    -------
    uint8 (H, W), train ids 0..18, 255 = ignore.

    >>> semantic_target(np.array([[7, 26], [0, 23]], dtype=np.uint8)).tolist()
    [[0, 13], [255, 10]]
    """
    _check_2d("label_ids", label_ids)
    label_ids = np.ascontiguousarray(label_ids, dtype=np.uint8)
    return cv2.LUT(label_ids, labels.label_to_train)


def instance_index_map(instance_ids: np.ndarray, labels: LabelSpace = CITYSCAPES
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Number the non-crowd thing instances 1..K in increasing instance-id order.

    Ids that fit 16 bits (Cityscapes') take a histogram over all 65536 ids; larger ones
    (a COCO-panoptic dataset's, up to 255999) the distinct values of the map.

    Parameters
    ----------
    instance_ids : integer (H, W), instance ids in 0..255999.
    labels : the label space (which ids are thing instances).

    Returns
    -------
    instance_index : uint16 (H, W); 0 off thing instances, k on the k-th instance.
    ids : intp (K,), the instance id of each index k (at position k-1).
    areas : int64 (K,), pixels of each instance.

    >>> index, ids, areas = instance_index_map(np.array([[26001, 7, 24000, 26001, 24]]))
    >>> index.tolist(), ids.tolist(), areas.tolist()
    ([[2, 0, 1, 2, 0]], [24000, 26001], [1, 2])
    """
    _check_2d("instance_ids", instance_ids)
    ids = np.asarray(instance_ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise ArrayError(None, f"instance_ids must be an integer array, got {ids.dtype}")
    if ids.dtype != np.uint16 and ids.size:
        lo, hi = _value_range(ids)
        if lo < 0 or hi > MAX_ANY_INSTANCE_ID:
            raise ArrayError(None, f"instance_ids must lie in 0..{MAX_ANY_INSTANCE_ID}, got "
                                   f"range [{lo}, {hi}]")
        if hi >= _MAX_ID:
            return _instance_index_wide(ids, labels)
    ids16 = np.ascontiguousarray(ids, dtype=np.uint16)
    counts = cv2.calcHist([ids16], [0], None, [_MAX_ID], [0, _MAX_ID]).ravel()
    present = np.flatnonzero((counts > 0) & labels.is_thing_instance_id)
    lut = np.zeros(_MAX_ID, dtype=np.uint16)
    lut[present] = np.arange(1, len(present) + 1, dtype=np.uint16)
    # np.take: 30% faster than lut[ids16], which first widens the 2M indices to intp
    return np.take(lut, ids16), present, counts[present].astype(np.int64)


def _instance_index_wide(ids: np.ndarray, labels: LabelSpace
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`instance_index_map` of ids beyond 16 bits (checked to lie in
    0..:data:`MAX_ANY_INSTANCE_ID`): the same definition, with a histogram and a look-up
    table over all 256000 possible ids instead of a sort of the pixels (9 ms against
    ``np.unique``'s 38 ms on a 1024x2048 map)."""
    counts = np.bincount(ids.ravel(), minlength=MAX_ANY_INSTANCE_ID + 1)
    present = np.flatnonzero((counts > 0) & labels.is_thing_any_instance_id)
    if len(present) >= _MAX_ID:
        raise ArrayError(None, f"{len(present)} thing instances in one image; at most "
                               f"{_MAX_ID - 1} fit the uint16 instance index")
    lut = np.zeros(len(counts), dtype=np.uint16)
    lut[present] = np.arange(1, len(present) + 1, dtype=np.uint16)
    return np.take(lut, ids), present, counts[present].astype(np.int64)


def boundary_of_instances(instance_index: np.ndarray,
                          row_change: np.ndarray | None = None) -> np.ndarray:
    """Inner boundary of every instance of a map, united: the pixels of an instance (value
    not 0) with a 4-neighbour inside the image of another value; bool (H, W).

    Parameters
    ----------
    instance_index : integer (H, W), 0 = no instance, any other value = one instance.
    row_change : optional bool (H, W-1), ``index[:, 1:] != index[:, :-1]``, when already
        computed.

    >>> boundary_of_instances(np.array([[0, 5, 5, 5, 7]])).astype(int).tolist()
    [[0, 1, 0, 1, 1]]
    """
    ii = instance_index
    edge = np.zeros(ii.shape, dtype=bool)
    diff = ii[:, 1:] != ii[:, :-1] if row_change is None else row_change
    edge[:, 1:] |= diff  # horizontal neighbours differ
    edge[:, :-1] |= diff
    diff = ii[1:, :] != ii[:-1, :]  # vertical neighbours differ
    edge[1:, :] |= diff
    edge[:-1, :] |= diff
    edge &= ii > 0
    return edge


def inner_boundary(instance_ids: np.ndarray, labels: LabelSpace = CITYSCAPES) -> np.ndarray:
    """Inner boundary of every non-crowd thing instance, united (no dilation).

    A pixel of a thing instance is a boundary pixel if one of its 4-neighbours inside the
    image has another id (another instance, even of the same class, stuff, crowd, void).
    The image border itself does not make a boundary.

    Parameters
    ----------
    instance_ids : integer (H, W), instance ids.
    labels : the label space.

    Returns
    -------
    bool (H, W).
    """
    return boundary_of_instances(instance_index_map(instance_ids, labels)[0])


def _dilate(edge: np.ndarray, dilation: int) -> np.ndarray:
    edge = np.ascontiguousarray(edge).view(np.uint8)
    if dilation > 1:
        edge = cv2.dilate(edge, _KERNEL, iterations=dilation - 1,
                          borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return edge


def contour_target(instance_ids: np.ndarray, dilation: int = 2,
                   labels: LabelSpace = CITYSCAPES) -> np.ndarray:
    """Contour target: thing-instance boundaries thickened by the dilation rate.

    Parameters
    ----------
    instance_ids : integer (H, W), Cityscapes instance ids (``label*1000+k`` for things,
        the label id for stuff and crowd).
    dilation : d >= 1; the inner boundary is dilated d - 1 times with a 3x3 square kernel.
    labels : the label space.

    Returns
    -------
    uint8 (H, W), 1 on contour pixels, 0 elsewhere.

    Examples
    --------
    Two touching cars (26000, 26001) on road (7); their shared boundary survives:

    >>> ids = np.array([[7, 7,     7,     7,     7,     7,     7],
    ...                 [7, 26000, 26000, 26000, 26001, 26001, 7],
    ...                 [7, 26000, 26000, 26000, 26001, 26001, 7],
    ...                 [7, 26000, 26000, 26000, 26001, 26001, 7],
    ...                 [7, 7,     7,     7,     7,     7,     7]])
    >>> contour_target(ids, dilation=1)
    array([[0, 0, 0, 0, 0, 0, 0],
           [0, 1, 1, 1, 1, 1, 0],
           [0, 1, 0, 1, 1, 1, 0],
           [0, 1, 1, 1, 1, 1, 0],
           [0, 0, 0, 0, 0, 0, 0]], dtype=uint8)
    """
    TargetConfig(dilation=dilation)  # validates
    return _dilate(inner_boundary(instance_ids, labels), dilation)


def instance_centroids(instance_index: np.ndarray, n_instances: int,
                       row_change: np.ndarray | None = None) -> np.ndarray:
    """Mask centroids (row, column) of instances 1..K of an index map; float64 (K, 2).

    Works on the horizontal runs of equal index (few, even at 1024x2048) instead of on
    pixels: a run of length n starting at column c of row r adds n*r to the row sum and
    n*c + n*(n-1)/2 to the column sum. Sums are exact in float64, so the result is the
    exact mean of the pixels' coordinates, correctly rounded.

    Parameters
    ----------
    instance_index : integer (H, W), 0 = no instance, k = instance k (1..K).
    n_instances : K.
    row_change : as in :func:`boundary_of_instances`.

    >>> instance_centroids(np.array([[1, 1, 0], [1, 2, 2]]), 2).tolist()
    [[0.3333333333333333, 0.3333333333333333], [1.0, 1.5]]
    """
    h, w = instance_index.shape
    diff = (instance_index[:, 1:] != instance_index[:, :-1]) if row_change is None \
        else row_change
    run_start = np.empty((h, w), dtype=bool)
    run_start[:, 0] = True  # every row starts a run, so runs never cross rows
    run_start[:, 1:] = diff
    starts = np.flatnonzero(run_start)
    lengths = np.diff(starts, append=h * w).astype(np.float64)
    values = instance_index.ravel()[starts]
    keep = values > 0
    starts, lengths, values = starts[keep], lengths[keep], values[keep]
    rows, cols = np.divmod(starts, w)
    size = n_instances + 1
    area = np.bincount(values, weights=lengths, minlength=size)[1:]
    sum_y = np.bincount(values, weights=rows * lengths, minlength=size)[1:]
    sum_x = np.bincount(values, weights=cols * lengths + lengths * (lengths - 1) / 2,
                        minlength=size)[1:]
    area = np.maximum(area, 1.0)
    return np.stack([sum_y / area, sum_x / area], axis=1).reshape(-1, 2)


def _centroids(instance_index: np.ndarray, n_instances: int,
               row_change: np.ndarray | None = None) -> np.ndarray:
    """:func:`instance_centroids` as stored in the targets, float32 (K, 2)."""
    return instance_centroids(instance_index, n_instances, row_change).astype(np.float32)


def offset_target(instance_ids: np.ndarray, labels: LabelSpace = CITYSCAPES
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Centre-offset target, factored: instance index per pixel and instance centroids.

    Parameters
    ----------
    instance_ids : integer (H, W), instance ids.
    labels : the label space.

    Returns
    -------
    instance_index : uint16 (H, W); 0 off thing instances, k = k-th thing instance in
        increasing instance-id order.
    centers_yx : float32 (K, 2); mask centroid (row, column) of instance k at row k-1.
        :func:`formats.decode_offsets` expands both to the (2, H, W) offset map (dy, dx)
        and its validity mask.

    Examples
    --------
    >>> ids = np.array([[26000, 26000, 7], [26000, 26000, 24001]])
    >>> index, centers = offset_target(ids)
    >>> index.tolist(), centers.tolist()
    ([[2, 2, 0], [2, 2, 1]], [[1.0, 2.0], [0.5, 0.5]])
    """
    instance_index, ids, _ = instance_index_map(instance_ids, labels)
    return instance_index, _centroids(instance_index, len(ids))


def compute_targets(label_ids: np.ndarray, instance_ids: np.ndarray,
                    config: TargetConfig = TargetConfig(),
                    labels: LabelSpace = CITYSCAPES) -> dict[str, np.ndarray]:
    """All targets of one image.

    Parameters
    ----------
    label_ids : uint8 (H, W), label ids.
    instance_ids : integer (H, W), instance ids, same size.
    config : target settings.
    labels : the label space.

    Returns
    -------
    dict with ``train_ids`` uint8 (H, W), ``contour`` uint8 (H, W) 0/1,
    ``instance_index`` uint16 (H, W) and ``centers_yx`` float32 (K, 2): the keyword
    arguments of :func:`formats.write_targets`.
    """
    _check_2d("label_ids", label_ids)
    _check_2d("instance_ids", instance_ids)
    if label_ids.shape != instance_ids.shape:
        raise ArrayError(None, f"label_ids {label_ids.shape} and instance_ids "
                               f"{instance_ids.shape} differ in size")
    instance_index, ids, _ = instance_index_map(instance_ids, labels)
    row_change = instance_index[:, 1:] != instance_index[:, :-1]
    return {"train_ids": semantic_target(label_ids, labels),
            "contour": _dilate(boundary_of_instances(instance_index, row_change),
                               config.dilation),
            "instance_index": instance_index,
            "centers_yx": _centroids(instance_index, len(ids), row_change)}


# --- runner --------------------------------------------------------------------------------

@dataclass
class TargetSummary:
    """What :func:`make_targets` did.

    ``instances``, ``contour_pixels`` and ``pixels`` count the images processed in this run
    (not the skipped ones).
    """

    out: str
    split: str
    images: int = 0
    done: int = 0
    skipped: int = 0
    instances: int = 0
    contour_pixels: int = 0
    pixels: int = 0
    seconds: float = 0.0

    @property
    def contour_fraction(self) -> float:
        """Fraction of processed pixels on a contour (NaN if nothing was processed)."""
        return self.contour_pixels / self.pixels if self.pixels else float("nan")

    def rows(self) -> list[dict]:
        """The summary as (quantity, value) rows for a table."""
        frac = self.contour_fraction
        return [{"quantity": "images in split", "value": self.images},
                {"quantity": "images done now", "value": self.done},
                {"quantity": "images skipped (already done)", "value": self.skipped},
                {"quantity": "thing instances (done now)", "value": self.instances},
                {"quantity": "contour pixels (%)",
                 "value": "-" if np.isnan(frac) else f"{100 * frac:.2f}"},
                {"quantity": "seconds", "value": f"{self.seconds:.1f}"},
                {"quantity": "output", "value": self.out}]


def is_done(out: PathLike, split: str, stem: str) -> bool:
    """Whether the targets of an image exist (the offsets file is written last)."""
    return formats.target_paths(out, split, stem)["offset"].is_file()


def _process(sample, *, out: str, config: TargetConfig, labels: LabelSpace = CITYSCAPES,
             instance_dtype=np.uint16) -> tuple[int, int, int]:
    """Compute and write the targets of one sample (a dataset's sample:
    :mod:`panoptool.io.datasets`); ``(instances, contour px, pixels)``."""
    # Cityscapes: uint16 as stored, so compute_targets needs no range check and no
    # conversion; COCO panoptic: int32 (ids reach 200999)
    label_ids, instance_ids = sample.read_ground_truth(instance_dtype=instance_dtype)
    targets = compute_targets(label_ids, instance_ids, config, labels)
    formats.write_targets(out, sample.split, sample.stem, **targets)
    contour = targets["contour"]
    return len(targets["centers_yx"]), int(np.count_nonzero(contour)), contour.size


def _check_previous_config(config_path: Path, config: TargetConfig, overwrite: bool,
                           labels: LabelSpace = CITYSCAPES, source: str = "the dataset"
                           ) -> dict:
    """Settings of an earlier run in the same folder (or {}); refuse mixing settings or
    label spaces (``source`` names where ``labels`` come from)."""
    if not config_path.is_file():
        return {}
    previous = read_json(config_path)
    settings = previous.get("settings", {}) if isinstance(previous, dict) else {}
    if not isinstance(settings, dict):
        raise InputError(config_path, "has no 'settings' object; not a make-targets config")
    if overwrite:
        return settings
    try:  # targets of panoptool before label spaces were recorded are Cityscapes'
        old = labels_of_config(previous, default=CITYSCAPES)
    except ConfigError as exc:
        raise InputError(config_path, f"its labels are unreadable ({exc})") from None
    try:
        require_same(old, labels, f"the existing targets ({config_path})", source)
    except ConfigError as exc:
        raise ConfigError(f"{exc}; use --overwrite to redo them or choose another --out") \
            from None
    for field in dataclasses.fields(TargetConfig):
        old, new = settings.get(field.name), getattr(config, field.name)
        if old is not None and old != new:
            raise ConfigError(f"{config_path}: existing targets were made with {field.name}="
                              f"{old}, this run asks for {field.name}={new}; use --overwrite "
                              f"to redo them or choose another --out")
    return settings


def make_targets(root, split: str, out: PathLike,
                 config: TargetConfig = TargetConfig(), *, workers: int | None = 0,
                 overwrite: bool = False, show_progress: bool = True,
                 labels: LabelSpace | None = None) -> TargetSummary:
    """Write the targets of every image of a split below ``out``.

    Parameters
    ----------
    root : the dataset: anything :func:`panoptool.io.datasets.open_dataset` accepts (a
        Cityscapes root, a COCO-panoptic folder or description, a Dataset; ``None``:
        ``$CITYSCAPES_DATASET``).
    split : the split (Cityscapes: a folder below ``gtFine/``).
    out : targets folder; files go to ``out/<split>/<city>/`` (:func:`formats.target_paths`;
        no ``<city>/`` for a COCO stem) and the settings, the label space and the dataset's
        description to ``out/config.json``.
    config : target settings.
    workers : worker processes, 0 or None = all cores.
    overwrite : redo images whose targets exist (default: skip them, i.e. resume).
    show_progress : show a progress bar on stderr.
    labels : the label space; None = the dataset's (``dataset.label_space(split)``).

    Returns
    -------
    TargetSummary

    Raises
    ------
    InputError
        On a missing root/split or an unreadable/mis-sized ground-truth file (named).
    ConfigError
        If ``out`` holds targets made with other settings or another label space and
        ``overwrite`` is False.
    """
    from panoptool.io.datasets import open_dataset
    from panoptool.runtime.guard import output_lock
    from panoptool.runtime.pool import run_parallel
    from panoptool.synth.scenes import config_filename

    start = time.perf_counter()
    dataset = open_dataset(root)
    samples = dataset.samples(split)
    source = "the label space given"
    if labels is None:
        labels, source = dataset.label_space(split), f"the dataset {dataset.root}"
    out = Path(out)
    config_path = out / formats.CONFIG_JSON
    upstream_path = dataset.folder / config_filename(split)
    upstream = read_json(upstream_path) if upstream_path.is_file() else None
    with output_lock(out, "make-targets"):  # held from the check of config.json on
        previous = _check_previous_config(config_path, config, overwrite, labels, source)
        splits = sorted(set(previous.get("splits", [])) | {split}) if not overwrite \
            else [split]
        settings = {**dataclasses.asdict(config), "root": str(dataset.root.resolve()),
                    "split": split, "splits": splits, LABELS_KEY: labels.to_dict(),
                    "dataset": dataset.describe()}
        write_json(config_path, formats.stage_config("make-targets", settings, upstream))
        remove_stale_temporaries(out)  # debris of a killed run, at the top of out and below

        todo = [s for s in samples if overwrite or not is_done(out, split, s.stem)]
        summary = TargetSummary(out=str(out), split=split, images=len(samples),
                                skipped=len(samples) - len(todo))
        func = partial(_process, out=str(out), config=config, labels=labels,
                       instance_dtype=np.uint16 if dataset.kind == "cityscapes" else np.int32)
        for n_inst, n_contour, n_pixels in run_parallel(func, todo, workers=workers,
                                                        description=f"make-targets {split}",
                                                        show_progress=show_progress):
            summary.done += 1
            summary.instances += n_inst
            summary.contour_pixels += n_contour
            summary.pixels += n_pixels
    summary.seconds = time.perf_counter() - start
    return summary
