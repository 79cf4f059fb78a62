"""Figures like the paper's: colour maps of every stage's output and training curves.

The first part holds pure drawing functions on arrays (no files, no printing): semantic maps
in the colours of a label space (Cityscapes' by default; a COCO-panoptic dataset's
categories), contour probabilities as a heat map, centre offsets on a colour
wheel (direction = hue, length = brightness), instances and panoptic segments with outlines,
and a panel that puts titled tiles on a grid, ground truth beside prediction. The second part
is the thin runner behind ``panoptool visualize``: it reads one image's ground truth and
whatever predictions exist (result files through :mod:`panoptool.io.results`, the parsers
``report`` uses) and writes one PNG panel per image, in parallel.

Every image is RGB uint8 (H, W, 3).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from panoptool.io import formats
from panoptool.targets import core as _targets
from panoptool.errors import ConfigError, InputError
from panoptool.io.files import write_png
from panoptool.io.results import (PanopticAnnotation, read_instance_list, read_mask,
                                  read_panoptic_json, read_panoptic_rgb, read_semantic_result)
from panoptool.labels import CITYSCAPES, IGNORE, LabelSpace

PathLike = str | os.PathLike

#: Colour of ignored / void pixels and of the background of instance maps.
VOID_COLOR = (0, 0, 0)
#: Colour of outlines drawn around instances and thing segments.
OUTLINE_COLOR = (255, 255, 255)
#: Background of a tile whose data is not available.
MISSING_COLOR = (96, 96, 96)

_LUTS: dict[LabelSpace, np.ndarray] = {}


def train_color_lut(labels: LabelSpace = CITYSCAPES) -> np.ndarray:
    """uint8 (256, 3): the colour of each train id of ``labels`` (:data:`VOID_COLOR` for
    the others), made once per label space."""
    if labels not in _LUTS:
        lut = np.zeros((256, 3), dtype=np.uint8)
        lut[:] = VOID_COLOR
        lut[:labels.num_classes] = labels.class_colors
        lut.flags.writeable = False
        _LUTS[labels] = lut
    return _LUTS[labels]


# --- colour maps ---------------------------------------------------------------------------

def colorize_train_ids(train_ids: np.ndarray, labels: LabelSpace = CITYSCAPES) -> np.ndarray:
    """Semantic map in the colours of ``labels`` (default Cityscapes').

    Parameters
    ----------
    train_ids : uint8 (H, W), 0..K-1 (Cityscapes: 0..18); 255 (ignore) and any other value
        are drawn black.
    labels : the label space (the colour of each class).

    Returns
    -------
    uint8 (H, W, 3) RGB.

    Examples
    --------
    >>> colorize_train_ids(np.array([[0, 13, 255]], dtype=np.uint8)).tolist()
    [[[128, 64, 128], [0, 0, 142], [0, 0, 0]]]
    """
    return train_color_lut(labels)[np.asarray(train_ids, dtype=np.uint8)]


def colorize_label_ids(label_ids: np.ndarray, labels: LabelSpace = CITYSCAPES) -> np.ndarray:
    """Semantic map of label ids, drawn through their train ids (void = black)."""
    return colorize_train_ids(labels.label_to_train[np.asarray(label_ids, dtype=np.uint8)],
                              labels)


def heatmap(values: np.ndarray, *, vmin: float = 0.0, vmax: float = 1.0,
            cmap: str = "magma") -> np.ndarray:
    """A scalar map (e.g. ``contour_prob``) through a matplotlib colour map.

    Parameters
    ----------
    values : float (H, W); clipped to [vmin, vmax]; NaN is drawn as ``vmin``.
    vmin, vmax : the value range mapped to the ends of the colour map.
    cmap : name of a matplotlib colour map.

    Returns
    -------
    uint8 (H, W, 3) RGB.
    """
    if not vmax > vmin:
        raise ConfigError(f"heatmap needs vmax > vmin, got vmin={vmin}, vmax={vmax}")
    from matplotlib import colormaps

    lut = (colormaps[cmap](np.linspace(0.0, 1.0, 256))[:, :3] * 255 + 0.5).astype(np.uint8)
    scaled = (np.nan_to_num(np.asarray(values, dtype=np.float32), nan=vmin) - vmin) / (vmax - vmin)
    index = np.clip(scaled * 255 + 0.5, 0, 255).astype(np.uint8)
    return lut[index]


def offsets_to_rgb(offset_yx: np.ndarray, valid: np.ndarray | None = None, *,
                   max_norm: float | None = None) -> np.ndarray:
    """Centre offsets on a colour wheel: direction = hue, length = brightness.

    Parameters
    ----------
    offset_yx : float (2, H, W), (dy, dx) in pixels from each pixel to its instance centre.
    valid : bool (H, W) or None; pixels outside are black.
    max_norm : offset length drawn at full brightness; longer ones saturate. ``None``: the
        99th percentile of the valid lengths (at least 1 pixel).

    Returns
    -------
    uint8 (H, W, 3) RGB. Hue 0 (red) = pointing right (+x), 90 degrees = pointing down (+y),
    as in :func:`color_wheel`.
    """
    offset_yx = np.asarray(offset_yx, dtype=np.float32)
    if offset_yx.ndim != 3 or offset_yx.shape[0] != 2:
        raise ConfigError(f"offset_yx must have shape (2, H, W), got {offset_yx.shape}")
    dy, dx = np.nan_to_num(offset_yx[0]), np.nan_to_num(offset_yx[1])
    norm = np.hypot(dy, dx)
    if valid is None:
        valid = np.ones(norm.shape, dtype=bool)
    if max_norm is None:
        max_norm = float(np.percentile(norm[valid], 99)) if valid.any() else 1.0
    max_norm = max(float(max_norm), 1.0)
    hsv = np.empty((*norm.shape, 3), dtype=np.float32)
    hsv[..., 0] = np.degrees(np.arctan2(dy, dx)) % 360.0
    hsv[..., 1] = 1.0
    hsv[..., 2] = np.where(valid, np.minimum(norm / max_norm, 1.0), 0.0)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return (np.clip(rgb, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def color_wheel(size: int = 64) -> np.ndarray:
    """The legend of :func:`offsets_to_rgb`: each pixel drawn as the offset from the centre
    to it, full brightness at the rim; black outside the disc. uint8 (size, size, 3)."""
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    offset = np.stack([yy - c, xx - c])
    inside = np.hypot(offset[0], offset[1]) <= c
    return offsets_to_rgb(offset, inside, max_norm=max(c, 1.0))


def instance_boundaries(ids: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour of another id (both sides of every border), bool (H, W).

    The image border is not a boundary.

    >>> instance_boundaries(np.array([[1, 1, 2]])).astype(int).tolist()
    [[0, 1, 1]]
    """
    ids = np.asarray(ids)
    edge = np.zeros(ids.shape, dtype=bool)
    dv = ids[1:, :] != ids[:-1, :]
    dh = ids[:, 1:] != ids[:, :-1]
    edge[1:, :] |= dv
    edge[:-1, :] |= dv
    edge[:, 1:] |= dh
    edge[:, :-1] |= dh
    return edge


def _hash_colors(ids: np.ndarray) -> np.ndarray:
    """A bright, well-spread colour per id (deterministic), uint8 (N, 3)."""
    ids = np.asarray(ids, dtype=np.uint64)
    h = (ids * np.uint64(2654435761)) % np.uint64(2**32)
    hue = (h % np.uint64(360)).astype(np.float32)
    sat = 0.55 + 0.45 * ((h >> np.uint64(9)) % np.uint64(64)).astype(np.float32) / 63
    val = 0.70 + 0.30 * ((h >> np.uint64(17)) % np.uint64(64)).astype(np.float32) / 63
    hsv = np.stack([hue, sat, val], axis=-1)[None]
    return (cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0] * 255 + 0.5).astype(np.uint8)


def colorize_instances(instance_map: np.ndarray, *, background: np.ndarray | None = None,
                       outline: bool = True) -> np.ndarray:
    """Instances in distinct colours with outlines.

    Parameters
    ----------
    instance_map : int (H, W); 0 = no instance, any other value = one instance.
    background : uint8 (H, W, 3) or None; shown dimmed where there is no instance
        (``None``: black).
    outline : draw each instance's border in white.

    Returns
    -------
    uint8 (H, W, 3) RGB.
    """
    instance_map = np.asarray(instance_map)
    uniq, inverse = np.unique(instance_map, return_inverse=True)
    colors = _hash_colors(uniq)
    out = colors[inverse.reshape(instance_map.shape)]
    none = instance_map == 0
    if background is not None:
        out[none] = (np.asarray(background)[none] // 3).astype(np.uint8)
    else:
        out[none] = VOID_COLOR
    if outline:
        out[instance_boundaries(instance_map) & ~none] = OUTLINE_COLOR
    return out


def colorize_panoptic(train_ids: np.ndarray, segment_ids: np.ndarray, *,
                      outline: bool = True, labels: LabelSpace = CITYSCAPES) -> np.ndarray:
    """Panoptic segmentation: class colours, each thing segment shaded a little differently.

    Parameters
    ----------
    train_ids : uint8 (H, W), the class of every pixel (255 = void, black).
    segment_ids : int (H, W), a segment id per pixel; thing pixels whose segment id is 0 or
        below 1000 (crowd regions in Cityscapes' instanceIds) keep the plain class colour.
    outline : outline thing segments in white.
    labels : the label space (class colours, thing classes).

    Returns
    -------
    uint8 (H, W, 3) RGB.
    """
    train_ids = np.asarray(train_ids, dtype=np.uint8)
    segment_ids = np.asarray(segment_ids, dtype=np.int64)
    out = colorize_train_ids(train_ids, labels).astype(np.int16)
    thing = labels.is_thing_train[train_ids] & (segment_ids >= 1000)
    if thing.any():
        uniq, inverse = np.unique(segment_ids[thing], return_inverse=True)
        h = (uniq.astype(np.uint64) * np.uint64(2654435761)) % np.uint64(2**32)
        bits = np.array([0, 8, 16], dtype=np.uint64)
        shift = ((h[:, None] >> bits) % np.uint64(81)).astype(np.int16) - 40  # (N, 3)
        out[thing] += shift[inverse]
        if outline:
            ids = np.where(thing, segment_ids, -1)
            out[instance_boundaries(ids) & thing] = OUTLINE_COLOR
    return np.clip(out, 0, 255).astype(np.uint8)


def blend(image: np.ndarray, overlay: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``(1 - alpha) * image + alpha * overlay``, both uint8 (H, W, 3)."""
    return cv2.addWeighted(np.asarray(image, np.uint8), 1.0 - alpha,
                           np.asarray(overlay, np.uint8), alpha, 0.0)


# --- ground truth in the forms the network predicts -----------------------------------------

def thing_instance_ids(label_ids: np.ndarray, instance_ids: np.ndarray,
                       labels: LabelSpace = CITYSCAPES) -> np.ndarray:
    """Instance ids restricted to non-crowd thing instances of ``labels`` (else 0), int64
    (H, W).

    The definition of a thing instance is the targets' (by the id's label,
    :func:`panoptool.targets.core.thing_instance_ids`); ``label_ids`` is not needed and
    kept for the callers.

    Parameters
    ----------
    label_ids : uint8 (H, W). instance_ids : int (H, W), ``label_id * 1000 + k``.
    """
    return _targets.thing_instance_ids(instance_ids, labels)


def gt_contour(instances: np.ndarray) -> np.ndarray:
    """1-pixel inner boundaries of the instances (a pixel with a 4-neighbour outside its
    instance; image border excluded), uint8 (H, W) 0/1: the contour target at dilation 1
    (:func:`panoptool.targets.core.boundary_of_instances`)."""
    return _targets.boundary_of_instances(np.asarray(instances)).astype(np.uint8)


def gt_offsets(instances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Offsets from every instance pixel to its instance's mask centroid
    (:func:`panoptool.targets.core.instance_centroids`), taken in float64.

    Parameters
    ----------
    instances : int (H, W), 0 = no instance, any other value = one instance.

    Returns
    -------
    offset_yx : float32 (2, H, W). valid : bool (H, W).
    """
    instances = np.asarray(instances)
    uniq, inverse = np.unique(instances, return_inverse=True)
    offset = 0 if uniq.size and uniq[0] == 0 else 1  # index 0 = no instance
    index = inverse.reshape(instances.shape) + offset
    n = len(uniq) - 1 + offset
    centre = np.zeros((n + 1, 2))
    centre[1:] = _targets.instance_centroids(index, n)
    h, w = instances.shape
    valid = instances != 0
    offset_yx = np.stack([centre[index, 0] - np.arange(h)[:, None],
                          centre[index, 1] - np.arange(w)[None, :]]).astype(np.float32)
    offset_yx[:, ~valid] = 0.0
    return offset_yx, valid


# --- panels --------------------------------------------------------------------------------

Tile = tuple[str, "np.ndarray | None"]


def _put_text(canvas: np.ndarray, text: str, x: int, y: int, scale: float,
              color: tuple[int, int, int]) -> None:
    cv2.putText(canvas, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[1] == width and image.shape[0] == height:
        return image
    interp = cv2.INTER_AREA if image.shape[1] > width else cv2.INTER_NEAREST
    return cv2.resize(image, (width, height), interpolation=interp)


def compose_panel(rows: Sequence[Sequence[Tile]], *, tile_width: int = 512,
                  title: str = "", gap: int = 4) -> np.ndarray:
    """Put titled tiles on a grid, one list of tiles per row.

    Parameters
    ----------
    rows : each a sequence of ``(title, image)``; ``image`` uint8 (h, w, 3) or (h, w), or
        None for data that is not available (drawn as a grey "not available" tile).
        Tiles are scaled to ``tile_width`` keeping the first image's aspect ratio.
    tile_width : width of every tile in pixels.
    title : a line above the grid (e.g. the image's stem).
    gap : pixels between tiles.

    Returns
    -------
    uint8 (H, W, 3) RGB on a white background.
    """
    images = [img for row in rows for _, img in row if img is not None]
    if not images:
        raise ConfigError("compose_panel needs at least one image")
    h0, w0 = images[0].shape[:2]
    tile_h = max(1, round(tile_width * h0 / w0))
    n_cols = max(len(row) for row in rows)
    label_h = 22
    title_h = 30 if title else 0
    width = n_cols * tile_width + (n_cols + 1) * gap
    height = title_h + len(rows) * (label_h + tile_h + gap) + gap
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    if title:
        _put_text(canvas, title, gap, 21, 0.6, (0, 0, 0))
    for r, row in enumerate(rows):
        y = title_h + r * (label_h + tile_h + gap) + gap
        for c, (name, img) in enumerate(row):
            x = gap + c * (tile_width + gap)
            _put_text(canvas, name, x + 2, y + 16, 0.5, (0, 0, 0))
            ty = y + label_h
            if img is None:
                canvas[ty:ty + tile_h, x:x + tile_width] = MISSING_COLOR
                _put_text(canvas, "not available", x + 8, ty + tile_h // 2, 0.5,
                          (230, 230, 230))
                continue
            if img.ndim == 2:
                img = np.repeat(img[..., None], 3, axis=2)
            canvas[ty:ty + tile_h, x:x + tile_width] = _resize(img.astype(np.uint8),
                                                              tile_width, tile_h)
    return canvas


def inset(image: np.ndarray, small: np.ndarray, margin: int = 4) -> np.ndarray:
    """A copy of ``image`` with ``small`` pasted into its top-right corner (if it fits)."""
    out = np.array(image, copy=True)
    h, w = small.shape[:2]
    if h + margin > out.shape[0] or w + margin > out.shape[1]:
        return out
    out[margin:margin + h, -margin - w:-margin] = small
    return out


# --- training curves -----------------------------------------------------------------------

_X_COLUMNS = ("iter", "iteration", "step", "epoch")


def training_curve(metrics, *, title: str = "", smooth: int = 0,
                   size: tuple[float, float] = (9.0, 4.5), dpi: int = 100) -> np.ndarray:
    """Plot a training run's ``metrics.csv`` (loss terms per iteration) to an image.

    Parameters
    ----------
    metrics : pandas.DataFrame with an iteration column (``iter``, ``iteration``, ``step`` or
        ``epoch``; else the row number) and numeric columns. Columns whose name contains
        ``loss`` go on the left plot (log scale); other numeric columns (learning rate,
        validation metrics, ...) on the right one. Columns that are entirely NaN are skipped.
    title : figure title.
    smooth : rolling-mean window over rows (0: about 1/50 of the rows, at least 1).
    size, dpi : figure size in inches and resolution.

    Returns
    -------
    uint8 (H, W, 3) RGB.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    df = metrics.copy()
    if df.empty:
        raise ConfigError("training_curve: metrics table is empty")
    xcol, losses, others = _curve_columns(df)
    x = df[xcol].to_numpy() if xcol else np.arange(len(df))
    window = smooth or max(1, len(df) // 50)

    fig = Figure(figsize=size, dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2 if others else 1, squeeze=False)[0]
    _plot_losses(axes[0], df, x, xcol, losses, window)
    if others:
        _plot_others(axes[1], df, x, xcol, others)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return np.ascontiguousarray(rgba[..., :3])


def _curve_columns(df) -> tuple[str | None, list[str], list[str]]:
    """(iteration column or None, loss columns, other numeric columns) of a metrics table;
    columns that are entirely NaN and timing columns are left out."""
    xcol = next((c for c in _X_COLUMNS if c in df.columns), None)
    numeric = [c for c in df.columns if c != xcol
               and np.issubdtype(df[c].dtype, np.number) and df[c].notna().any()
               and c not in ("time", "seconds", "wall_s", "elapsed_s")]
    losses = [c for c in numeric if "loss" in c.lower()]
    others = [c for c in numeric if c not in losses]
    return xcol, losses, others


def _plot_losses(ax, df, x: np.ndarray, xcol: str | None, losses: list[str],
                 window: int) -> None:
    """The loss columns, as rolling means over ``window`` rows (log scale if all > 0)."""
    for c in losses:
        y = df[c].astype(float).rolling(window, min_periods=1).mean().to_numpy()
        ax.plot(x, y, label=c, linewidth=1.4 if c.lower() in ("loss", "loss_total",
                                                                "total_loss") else 1.0)
    if losses:
        positive = df[losses].to_numpy(dtype=float)
        if np.nanmin(positive) > 0:
            ax.set_yscale("log")
        ax.legend(fontsize=8)
    ax.set_xlabel(xcol or "row")
    ax.set_ylabel(f"loss (rolling mean of {window})" if window > 1 else "loss")
    ax.grid(True, alpha=0.3)


def _plot_others(ax, df, x: np.ndarray, xcol: str | None, others: list[str]) -> None:
    """The other numeric columns (learning rate, validation metrics, ...), unsmoothed."""
    for c in others:
        ax.plot(x, df[c].astype(float).to_numpy(), label=c, marker="." if
                df[c].notna().sum() < 50 else None)
    ax.set_xlabel(xcol or "row")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)


# --- runner: one panel per image -------------------------------------------------------------

@dataclass(frozen=True)
class VisualizeConfig:
    """Settings of ``panoptool visualize``."""

    split: str = "val"
    n: int = 8
    tile_width: int = 512

    def __post_init__(self):
        if self.n < 1:
            raise ConfigError(f"--n must be >= 1, got {self.n}")
        if self.tile_width < 64:
            raise ConfigError(f"--tile-width must be >= 64, got {self.tile_width}")


def read_instance_result(results_root: PathLike, stem: str, shape: tuple[int, int],
                         labels: LabelSpace = CITYSCAPES) -> tuple[np.ndarray, np.ndarray]:
    """Predicted instances of one image from the official instance format, read as
    ``report`` reads them (:mod:`panoptool.io.results`).

    Returns
    -------
    instance_map : int32 (H, W), k = k-th line of ``_pred.txt`` (0 = none); where masks
        overlap, the more confident instance is drawn on top.
    label_ids : uint8 (K,), the label id of instance k at index k-1.
    """
    entries = read_instance_list(formats.instance_txt_path(results_root, stem), results_root,
                                 labels)
    instance_map = np.zeros(shape, dtype=np.int32)
    for k in sorted(range(len(entries)), key=lambda k: entries[k][2]):
        instance_map[read_mask(entries[k][0], shape) > 0] = k + 1
    labels = np.array([e[1] for e in entries], dtype=np.uint8)
    return instance_map, labels


def read_panoptic_result(annotation: PanopticAnnotation, shape: tuple[int, int],
                         labels: LabelSpace = CITYSCAPES) -> tuple[np.ndarray, np.ndarray]:
    """Predicted panoptic segmentation of one image.

    Parameters
    ----------
    annotation : this image's entry of ``panoptic.json``
        (:func:`panoptool.io.results.read_panoptic_json`): its PNG and segments.
    shape : (H, W) of the image.
    labels : the label space of its category ids.

    Returns
    -------
    train_ids : uint8 (H, W). segment_ids : int64 (H, W), things renumbered to 1000 + k so
        that :func:`colorize_panoptic` shades them.
    """
    png = annotation.png
    ids = formats.rgb_to_panoptic_id(read_panoptic_rgb(png, shape))
    segments = annotation.segments()
    uniq, inverse = np.unique(ids, return_inverse=True)
    missing = [int(i) for i in uniq if i != 0 and int(i) not in segments]
    if missing:
        raise InputError(png, f"segment id(s) {missing[:5]} are in the PNG but not listed in "
                              f"{formats.PANOPTIC_JSON}")
    label = np.array([segments.get(int(i), 0) for i in uniq], dtype=np.uint8)
    train = labels.label_to_train[label]
    train[uniq == 0] = IGNORE
    seg = np.where(labels.is_thing_train[train], 1000 + np.arange(len(uniq)), 0)
    inverse = inverse.reshape(ids.shape)
    return train[inverse], seg[inverse]


def _has_panoptic(annotation: PanopticAnnotation | None) -> bool:
    return annotation is not None and annotation.png.is_file()


def render_sample(sample, *, maps_root: Path | None, results_root: Path | None,
                  targets_root: Path | None, panoptic: PanopticAnnotation | None,
                  tile_width: int, labels: LabelSpace = CITYSCAPES) -> np.ndarray:
    """The panel of one image: every part whose data exists, ground truth left, prediction
    right.

    Parameters
    ----------
    sample : a sample of :mod:`panoptool.io.datasets` (Cityscapes' or a COCO-panoptic
        dataset's: ``read_image``, ``read_ground_truth``, ``split``, ``stem``).
    maps_root, results_root, targets_root : folders of the predictions / targets, or None.
    panoptic : this image's ``panoptic.json`` entry, or None.
    tile_width : width of each tile.
    labels : the dataset's label space (colours, thing classes).
    """
    image = sample.read_image()
    label_ids, instance_ids = sample.read_ground_truth()
    if image.shape[:2] != label_ids.shape:
        raise InputError(sample.image_path, f"size {image.shape[:2]} differs from the ground "
                                            f"truth {label_ids.shape}")
    shape = label_ids.shape
    gt_train = labels.label_to_train[label_ids]
    gt_inst = thing_instance_ids(label_ids, instance_ids, labels)
    maps = _read_sample_maps(maps_root, sample, shape, labels)
    pred_sem, pred_inst, pred_pan = _read_sample_results(results_root, sample, shape, maps,
                                                         panoptic, labels)
    gt_pan = colorize_panoptic(gt_train, instance_ids, labels=labels)
    rows = _overview_rows(image, gt_train, gt_pan, pred_sem, pred_pan, labels)
    rows.append(_contour_row(sample, targets_root, gt_inst, maps))
    rows.append(_offset_row(gt_inst, maps, shape, labels))
    rows.append([("instances: ground truth", colorize_instances(gt_inst, background=image)),
                 ("instances: prediction", None if pred_inst is None
                  else colorize_instances(pred_inst, background=image))])
    rows.append([("panoptic: ground truth", gt_pan),
                 ("panoptic: prediction", None if pred_pan is None
                  else colorize_panoptic(*pred_pan, labels=labels))])
    return compose_panel(rows, tile_width=tile_width, title=sample.stem)


def _read_sample_maps(maps_root: Path | None, sample, shape: tuple[int, int],
                      labels: LabelSpace = CITYSCAPES) -> dict | None:
    """The image's prediction maps (:func:`panoptool.io.formats.read_maps`), or None."""
    if maps_root is None:
        return None
    path = formats.maps_path(maps_root, sample.split, sample.stem)
    maps = formats.read_maps(path, labels.num_classes)
    if maps["train_ids"].shape != shape:
        raise InputError(path, f"size {maps['train_ids'].shape} differs from the image "
                               f"{shape}")
    return maps


def _read_sample_results(results_root: Path | None, sample, shape: tuple[int, int],
                         maps: dict | None, panoptic: PanopticAnnotation | None,
                         labels: LabelSpace = CITYSCAPES):
    """(semantic train ids, instance map, (train ids, segment ids)) predicted for the image,
    each None where absent; the semantic map comes from the maps when there are any."""
    pred_sem = None
    if maps is not None:
        pred_sem = maps["train_ids"]
    elif results_root is not None and formats.semantic_result_path(results_root,
                                                                   sample.stem).is_file():
        pred_sem = labels.label_to_train[read_semantic_result(
            formats.semantic_result_path(results_root, sample.stem), shape)]
    pred_inst = pred_pan = None
    if results_root is not None:
        if formats.instance_txt_path(results_root, sample.stem).is_file():
            pred_inst, _ = read_instance_result(results_root, sample.stem, shape, labels)
        if _has_panoptic(panoptic):
            pred_pan = read_panoptic_result(panoptic, shape, labels)
    return pred_sem, pred_inst, pred_pan


def _overview_rows(image: np.ndarray, gt_train: np.ndarray, gt_pan: np.ndarray,
                   pred_sem: np.ndarray | None, pred_pan,
                   labels: LabelSpace = CITYSCAPES) -> list[list[Tile]]:
    """The image with the prediction (else the ground truth) blended in; the semantic maps."""
    overlay_src = (colorize_panoptic(*pred_pan, labels=labels) if pred_pan is not None
                   else colorize_train_ids(pred_sem, labels) if pred_sem is not None
                   else gt_pan)
    rows: list[list[Tile]] = [[("image", image),
                               ("image + " + ("prediction" if overlay_src is not gt_pan
                                              else "ground truth"), blend(image, overlay_src))]]
    rows.append([("semantic: ground truth", colorize_train_ids(gt_train, labels)),
                 ("semantic: prediction", None if pred_sem is None
                  else colorize_train_ids(pred_sem, labels))])
    return rows


def _contour_row(sample, targets_root: Path | None, gt_inst: np.ndarray,
                 maps: dict | None) -> list[Tile]:
    """The contour target (or the 1-px ground-truth contour) and the predicted probability."""
    if targets_root is not None:
        target_contour = formats.read_targets(targets_root, sample.split,
                                              sample.stem)["contour"]
        contour_title = "contour: target"
    else:
        target_contour = gt_contour(gt_inst)
        contour_title = "contour: ground truth (1 px)"
    return [(contour_title, heatmap(target_contour.astype(np.float32))),
            ("contour: probability", None if maps is None
             else heatmap(maps["contour_prob"]))]


def _offset_row(gt_inst: np.ndarray, maps: dict | None, shape: tuple[int, int],
                labels: LabelSpace = CITYSCAPES) -> list[Tile]:
    """Ground-truth and predicted centre offsets at one brightness scale, with the wheel."""
    gt_off, gt_valid = gt_offsets(gt_inst)
    norm = float(np.percentile(np.hypot(*gt_off)[gt_valid], 99)) if gt_valid.any() else 1.0
    wheel = color_wheel(max(24, min(72, shape[0] // 5)))
    pred_off = None
    if maps is not None:
        pred_valid = labels.is_thing_train[maps["train_ids"]]
        pred_off = inset(offsets_to_rgb(maps["offset_yx"], pred_valid, max_norm=norm), wheel)
    return [("centre offsets: ground truth", inset(offsets_to_rgb(gt_off, gt_valid,
                                                                  max_norm=norm), wheel)),
            ("centre offsets: prediction", pred_off)]


def panel_path(out: PathLike, stem: str) -> Path:
    """Where the panel of one image is written."""
    return Path(out) / f"{stem}.png"


def _render_and_write(item, *, out: Path, maps_root, results_root, targets_root,
                      tile_width, labels: LabelSpace = CITYSCAPES) -> Path:
    sample, panoptic = item
    panel = render_sample(sample, maps_root=maps_root, results_root=results_root,
                          targets_root=targets_root, panoptic=panoptic,
                          tile_width=tile_width, labels=labels)
    path = panel_path(out, sample.stem)
    write_png(path, panel, compression=3)
    return path


def visualize_dataset(root: PathLike | None, out: PathLike, config: VisualizeConfig, *,
                      maps: PathLike | None = None, results: PathLike | None = None,
                      targets: PathLike | None = None,
                      workers: int | None = None) -> list[Path]:
    """Write one panel PNG per image for the first ``config.n`` images of the split that have
    predictions (all images when only the ground truth is shown).

    ``root``: a Cityscapes root or a COCO-panoptic dataset
    (:func:`panoptool.io.datasets.open_dataset`); its label space gives the colours, and
    maps, results or targets whose ``config.json`` records another one are refused.

    Returns
    -------
    The paths written, in image order.
    """
    from panoptool.io.datasets import open_dataset
    from panoptool.runtime.pool import run_parallel

    dataset = open_dataset(root)
    samples = dataset.samples(config.split, need_images=True)
    labels = dataset.label_space(config.split)
    maps_root = Path(maps) if maps is not None else None
    results_root = Path(results) if results is not None else None
    targets_root = Path(targets) if targets is not None else None
    for name, folder in (("--maps", maps_root), ("--results", results_root),
                         ("--targets", targets_root)):
        if folder is not None and not folder.is_dir():
            raise InputError(folder, f"{name} folder not found")
        if folder is not None:
            _check_labels(labels, folder, f"the dataset {dataset.root}")
    annotations: dict[str, PanopticAnnotation] = {}
    if results_root is not None and formats.panoptic_json_path(results_root).is_file():
        annotations = read_panoptic_json(results_root, is_category=labels.is_evaluated_label)
    if maps_root is not None:
        samples = [s for s in samples
                   if formats.maps_path(maps_root, s.split, s.stem).is_file()]
        if not samples:
            raise InputError(maps_root, f"no prediction maps for split {config.split!r} "
                                        f"(expected <maps>/{config.split}/<city>/<stem>"
                                        f"{formats.MAPS_SUFFIX})")
    elif results_root is not None:
        samples = [s for s in samples
                   if formats.semantic_result_path(results_root, s.stem).is_file()
                   or formats.instance_txt_path(results_root, s.stem).is_file()
                   or _has_panoptic(annotations.get(s.stem))]
        if not samples:
            raise InputError(results_root, f"no results for any image of split "
                                           f"{config.split!r}")
    items = [(s, annotations.get(s.stem)) for s in samples[: config.n]]
    work = partial(_render_and_write, out=Path(out), maps_root=maps_root,
                   results_root=results_root, targets_root=targets_root,
                   tile_width=config.tile_width, labels=labels)
    return list(run_parallel(work, items, workers=workers, description="visualize"))


def _check_labels(labels: LabelSpace, folder: Path, expected_from: str) -> None:
    """Refuse a folder whose ``config.json`` chain records another label space."""
    from panoptool.io.files import read_json
    from panoptool.labels import labels_of_config, require_same

    path = folder / formats.CONFIG_JSON
    recorded = labels_of_config(read_json(path)) if path.is_file() else None
    if recorded is not None:
        require_same(labels, recorded, expected_from, str(path))


def read_metrics_csv(path: PathLike):
    """A run's ``metrics.csv`` as a DataFrame; :class:`InputError` naming it if unreadable."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not a readable CSV ({exc})") from None
    if df.empty:
        raise InputError(path, "no rows yet (has the run logged any iteration?)")
    return df


def write_training_curve(metrics_csv: PathLike, out_png: PathLike, *,
                         title: str = "") -> Path:
    """Plot ``metrics_csv`` to ``out_png``; returns ``out_png``."""
    df = read_metrics_csv(metrics_csv)
    image = training_curve(df, title=title or Path(metrics_csv).parent.name)
    write_png(out_png, image, compression=3)
    return Path(out_png)
