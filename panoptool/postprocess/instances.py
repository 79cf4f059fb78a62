"""Instances from prediction maps: thing mask minus contours -> connected components.

The state of the derivation is kept on the *thing pixels* only (typically 10-30 % of an
image), as flat arrays in raster order (:class:`ThingPixels`); an instance labelling is an
intp array over those pixels, 0 = no instance. Every step is a vectorised pass over these
arrays, never a pass over the full image per instance.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from panoptool.errors import ArrayError
from panoptool.labels import CITYSCAPES, LabelSpace
from panoptool.postprocess import kernels


@dataclass(frozen=True)
class ThingPixels:
    """The pixels of an image whose semantic class is a thing class, in raster order.

    Attributes
    ----------
    shape : (H, W) of the image.
    index : intp (n,), flat index ``y * W + x``, ascending.
    centre_y, centre_x : float64 (n,), predicted instance centre (pixel + offset).
    contour : bool (n,), contour probability above the threshold.
    train_ids : uint8 (H * W,), the semantic map, raveled (pixel p's class:
        ``train_ids[index[p]]``, a thing class of ``labels``).
    confidence : float (H * W,), the confidence map, raveled.
    labels : the label space (which train ids are thing classes).
    """

    shape: tuple[int, int]
    index: np.ndarray
    centre_y: np.ndarray
    centre_x: np.ndarray
    contour: np.ndarray
    train_ids: np.ndarray
    confidence: np.ndarray
    labels: LabelSpace = CITYSCAPES

    def __len__(self) -> int:
        return len(self.index)


def check_maps(train_ids: np.ndarray, confidence: np.ndarray, contour_prob: np.ndarray,
               offset_yx: np.ndarray) -> None:
    """Raise :class:`~panoptool.errors.ArrayError` naming the argument if the maps do not
    fit together.

    ``train_ids`` uint8 (H, W); ``confidence``, ``contour_prob`` float (H, W);
    ``offset_yx`` float (2, H, W). Values are not checked here (see ``formats.read_maps``).
    """
    if train_ids.ndim != 2 or train_ids.dtype != np.uint8:
        raise ArrayError(None, f"train_ids must be uint8 (H, W), got {train_ids.dtype} "
                               f"{train_ids.shape}")
    h, w = train_ids.shape
    for name, arr, shape in (("confidence", confidence, (h, w)),
                             ("contour_prob", contour_prob, (h, w)),
                             ("offset_yx", offset_yx, (2, h, w))):
        if arr.shape != shape:
            raise ArrayError(None, f"{name} must have shape {shape} like train_ids, got "
                                   f"{arr.shape}")
        if not np.issubdtype(arr.dtype, np.floating):
            raise ArrayError(None, f"{name} must be a float array, got {arr.dtype}")


def _kernel_float(a: np.ndarray) -> np.ndarray:
    """A C-contiguous float32 or float64 array for the compiled loops, which have no
    float16 (float16 -> float32 is exact; other float types -> float64)."""
    a = np.ascontiguousarray(a)
    if a.dtype == np.float16:
        return a.astype(np.float32)
    return a if a.dtype in (np.float32, np.float64) else a.astype(np.float64)


def _threshold(contour_prob: np.ndarray, threshold: float, kernel_map: np.ndarray):
    """The threshold rounded to the map's float type, in ``kernel_map``'s type: the loops'
    ``contour_prob > threshold`` then decides as numpy does on the original map (a float32
    map against a float32 threshold)."""
    return kernel_map.dtype.type(np.asarray(contour_prob).dtype.type(threshold))


def thing_components(train_ids: np.ndarray, contour_prob: np.ndarray, threshold: float,
                     connectivity: int = 4, labels: LabelSpace = CITYSCAPES
                     ) -> tuple[np.ndarray, int, np.ndarray]:
    """Connected components of the thing mask minus the contour pixels.

    Parameters
    ----------
    train_ids : uint8 (H, W), semantic argmax.
    contour_prob : float (H, W), contour probability.
    threshold : contour pixels have ``contour_prob > threshold``.
    connectivity : 4 or 8.
    labels : the label space (which train ids are thing classes).

    Returns
    -------
    components : int32 (H, W), 0 on non-thing and contour pixels, 1..n otherwise, numbered
        in raster order of their first pixel.
    n : number of components.
    class_areas : int64 (256,), pixels per train id (measured on the way).

    Examples
    --------
    Two cars (13) side by side, separated by a contour column:

    >>> tid = np.full((3, 5), 13, np.uint8); tid[:, 0] = 0
    >>> prob = np.zeros((3, 5), np.float32); prob[:, 2] = 1
    >>> comps, n, areas = thing_components(tid, prob, 0.5)
    >>> n, comps[0].tolist(), int(areas[13])
    (2, [0, 1, 0, 2, 2], 12)
    """
    prob = _kernel_float(contour_prob)
    foreground, class_areas = kernels.thing_foreground(
        np.ascontiguousarray(train_ids), prob, _threshold(contour_prob, threshold, prob),
        labels.is_thing_train)
    # same labelling as cv2.connectedComponents; for 4-connectivity Wu's SAUF runs ~25 %
    # faster on one core than the default (Spaghetti)
    algorithm = cv2.CCL_SAUF if connectivity == 4 else cv2.CCL_DEFAULT
    n_labels, components = cv2.connectedComponentsWithAlgorithm(foreground, connectivity,
                                                                cv2.CV_32S, algorithm)
    return components, n_labels - 1, class_areas


def gather_instances(components: np.ndarray, n: int, train_ids: np.ndarray,
                     confidence: np.ndarray, contour_prob: np.ndarray, threshold: float,
                     offset_yx: np.ndarray, n_thing_pixels: int,
                     labels: LabelSpace = CITYSCAPES
                     ) -> tuple[ThingPixels, np.ndarray, "InstanceSums"]:
    """The thing pixels' centres, their component labels and the components' statistics,
    in one pass over the image (a compiled loop).

    Parameters
    ----------
    components : int32 (H, W), labels 0..n (:func:`thing_components`).
    n : number of components.
    train_ids : uint8 (H, W); confidence, contour_prob : float (H, W);
    threshold : contour pixels have ``contour_prob > threshold``;
    offset_yx : float (2, H, W);
    n_thing_pixels : how many pixels have a thing class;
    labels : the label space.

    Returns
    -------
    pixels : :class:`ThingPixels`; labels : intp (m,), the component of each thing pixel
    (0 on contour pixels); sums : :class:`InstanceSums` of ``labels``.
    """
    space = labels
    train_ids, confidence = np.ascontiguousarray(train_ids), _kernel_float(confidence)
    prob = _kernel_float(contour_prob)
    (index, labels, centre_y, centre_x, on_contour, counts, conf_sum, sum_y,
     sum_x) = kernels.gather_measure(np.ascontiguousarray(components), train_ids, confidence,
                                     _kernel_float(offset_yx[0]), _kernel_float(offset_yx[1]),
                                     prob, _threshold(contour_prob, threshold, prob),
                                     space.thing_index_of_train, len(space.thing_train_ids),
                                     n_thing_pixels, n)
    pixels = ThingPixels(shape=train_ids.shape, index=index, centre_y=centre_y,
                         centre_x=centre_x, contour=on_contour,
                         train_ids=train_ids.reshape(-1), confidence=confidence.reshape(-1),
                         labels=space)
    return pixels, labels, InstanceSums(counts, conf_sum, sum_y, sum_x, space)


def _pixels_of_classes(train_ids: list[int]) -> ThingPixels:
    """Thing pixels in a row with the given classes, confidence 1 (for examples)."""
    n = len(train_ids)
    index = np.arange(n)
    return ThingPixels(shape=(1, n), index=index, centre_y=np.zeros(n),
                       centre_x=index * 1.0, contour=np.zeros(n, bool),
                       train_ids=np.asarray(train_ids, dtype=np.uint8),
                       confidence=np.ones(n))


@dataclass(frozen=True)
class InstanceSums:
    """Per-instance sums over the pixels of the derivation's instances: measured once, then
    updated row by row (not :class:`panoptool.evaluation.metrics.instance.InstanceStats`,
    the AP statistics).

    Row ``k`` describes instance label ``k`` (row 0: pixels without an instance). Every
    field is a sum over the instance's pixels, so the statistics of a union of instances
    are the sum of their rows, and moving pixels between instances changes only the rows
    of those instances (:meth:`add_pixels`, :meth:`combine`). Area, mean predicted centre,
    majority class and score follow from the sums.

    Attributes
    ----------
    counts : int64 (L + 1, T), pixels of each thing class per instance (column j: the
        train id ``labels.thing_train_ids[j]``; Cityscapes: train id - 11, T = 8).
    conf : float64 (L + 1, T), sum of ``confidence`` over those pixels.
    sum_y, sum_x : float64 (L + 1,), sums of the predicted centres.
    labels : the label space.
    """

    counts: np.ndarray
    conf: np.ndarray
    sum_y: np.ndarray
    sum_x: np.ndarray
    labels: LabelSpace = CITYSCAPES

    def __len__(self) -> int:
        return len(self.counts)

    @classmethod
    def measure(cls, labels: np.ndarray, pixels: ThingPixels, n: int,
                positions: np.ndarray | None = None) -> "InstanceSums":
        """Statistics of labels 0..n over the thing pixels (or only those at ``positions``,
        intp (m,) positions into ``pixels`` with ``labels`` their labels, ascending)."""
        labels = np.asarray(labels, dtype=np.intp)
        if positions is None:
            positions = np.arange(len(labels))
        return cls(*kernels.measure(labels, np.asarray(positions, dtype=np.intp),
                                    pixels.index, pixels.train_ids, pixels.confidence,
                                    pixels.centre_y, pixels.centre_x,
                                    pixels.labels.thing_index_of_train,
                                    len(pixels.labels.thing_train_ids), n), pixels.labels)

    @property
    def area(self) -> np.ndarray:
        """int64 (L + 1,), pixels per instance."""
        return self.counts.sum(axis=1)

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean predicted centre (y, x) per instance, float64 (L + 1,); 0 for empty rows."""
        safe = np.maximum(self.area, 1)
        return self.sum_y / safe, self.sum_x / safe

    def classes(self) -> np.ndarray:
        """uint8 (L + 1,), majority class (train id; ties: the lower one); 255 for row 0
        and empty rows.

        >>> labels, pixels = np.array([2, 2, 0]), _pixels_of_classes([11, 11, 14])
        >>> InstanceSums.measure(labels, pixels, 2).classes().tolist()
        [255, 255, 11]
        """
        things = np.array(self.labels.thing_train_ids, dtype=np.uint8)
        classes = things[self.counts.argmax(axis=1)]
        classes[self.counts.sum(axis=1) == 0] = self.labels.ignore
        classes[0] = self.labels.ignore
        return classes

    def scores(self) -> np.ndarray:
        """float64 (L + 1,), mean confidence over each instance's pixels of its majority
        class (0 for row 0 and empty rows)."""
        rows = np.arange(len(self))
        best = self.counts.argmax(axis=1)
        count = self.counts[rows, best]
        count[0] = 0
        return np.divide(self.conf[rows, best], count, out=np.zeros(len(self)),
                         where=count > 0)

    def extended(self, n: int) -> "InstanceSums":
        """A copy with rows 0..n (new rows empty, rows beyond n dropped)."""
        def grow(a):
            out = np.zeros((n + 1,) + a.shape[1:], dtype=a.dtype)
            m = min(len(a), n + 1)
            out[:m] = a[:m]
            return out
        return InstanceSums(grow(self.counts), grow(self.conf), grow(self.sum_y),
                            grow(self.sum_x), self.labels)

    def replace_rows(self, rows: np.ndarray, other: "InstanceSums") -> "InstanceSums":
        """A copy whose ``rows`` are taken from ``other`` (same length)."""
        out = self.extended(len(self) - 1)
        for mine, theirs in ((out.counts, other.counts), (out.conf, other.conf),
                             (out.sum_y, other.sum_y), (out.sum_x, other.sum_x)):
            mine[rows] = theirs[rows]
        return out

    def cleared(self, rows: np.ndarray) -> "InstanceSums":
        """A copy with ``rows`` (bool (L + 1,) or indices) emptied."""
        out = self.extended(len(self) - 1)
        for a in (out.counts, out.conf, out.sum_y, out.sum_x):
            a[rows] = 0
        return out

    def compacted(self, labels: np.ndarray) -> tuple[np.ndarray, "InstanceSums"]:
        """Renumber the non-empty rows 1..n in order (0 stays 0): the new labelling of
        ``labels`` and its statistics.

        >>> labels, pixels = np.array([0, 5, 9, 5]), _pixels_of_classes([11, 13, 13, 13])
        >>> new, stats = InstanceSums.measure(labels, pixels, 9).compacted(labels)
        >>> new.tolist(), len(stats), stats.area.tolist()
        ([0, 1, 2, 1], 3, [1, 2, 1])
        """
        present = self.area > 0
        present[0] = False
        if present.sum() == len(self) - 1:
            return labels, self
        lut = np.cumsum(present, dtype=np.intp)
        lut[~present] = 0
        present[0] = True
        return np.take(lut, labels), InstanceSums(self.counts[present], self.conf[present],
                                                  self.sum_y[present], self.sum_x[present],
                                                  self.labels)

    def combine(self, lut: np.ndarray, n: int) -> "InstanceSums":
        """Statistics after relabelling every pixel of label k as ``lut[k]`` (0..n): rows
        that map to the same label are summed."""
        counts = np.zeros((n + 1, self.counts.shape[1]), dtype=np.int64)
        conf = np.zeros((n + 1, self.counts.shape[1]))
        np.add.at(counts, lut, self.counts)
        np.add.at(conf, lut, self.conf)
        return InstanceSums(counts, conf, np.bincount(lut, self.sum_y, minlength=n + 1),
                            np.bincount(lut, self.sum_x, minlength=n + 1), self.labels)

    def add_pixels(self, pixels: ThingPixels, positions: np.ndarray, old: np.ndarray,
                   new: np.ndarray) -> "InstanceSums":
        """Statistics after the pixels at ``positions`` (intp (m,)) moved from labels
        ``old`` to labels ``new`` (intp (m,), within the rows)."""
        n = len(self) - 1
        moved_out = InstanceSums.measure(old, pixels, n, positions)
        moved_in = InstanceSums.measure(new, pixels, n, positions)
        return InstanceSums(self.counts - moved_out.counts + moved_in.counts,
                            self.conf - moved_out.conf + moved_in.conf,
                            self.sum_y - moved_out.sum_y + moved_in.sum_y,
                            self.sum_x - moved_out.sum_x + moved_in.sum_x, self.labels)


def fill_contours(instance_map: np.ndarray, targets: np.ndarray, train_ids: np.ndarray,
                  classes: np.ndarray) -> np.ndarray:
    """Give contour pixels to the nearest instance of their class, in place.

    A breadth-first growth through the target pixels: at each step every unlabelled target
    pixel with a 4-neighbour labelled by an instance of its own semantic class takes that
    label (all pixels of a step at once; neighbours in the order up, left, right, down
    break ties), so each pixel joins the instance that is geodesically nearest through
    target pixels. Only the pixels next to those labelled in the previous step are looked
    at, so the cost is linear in the number of targets. Targets that no instance of their
    class reaches stay 0.

    Parameters
    ----------
    instance_map : int32 (H, W), C-contiguous, instance labels (0 = none); updated in
        place.
    targets : intp (m,), flat indices of the pixels to fill (their label must be 0).
    train_ids : uint8 (H, W), semantic class of every pixel.
    classes : uint8 (n + 1,), class of each instance label.

    Returns
    -------
    int, the number of target pixels that received a label.

    Examples
    --------
    >>> m = np.array([[1, 0, 0, 0, 2]], np.int32)
    >>> got = fill_contours(m, np.array([1, 2, 3]), np.full((1, 5), 13, np.uint8),
    ...                     np.array([255, 13, 13], np.uint8))
    >>> m.tolist(), got
    ([[1, 1, 1, 2, 2]], 3)
    """
    if not instance_map.flags.c_contiguous or instance_map.dtype != np.int32:
        raise ArrayError(None, "instance_map must be a C-contiguous int32 array (filled in "
                               "place)")
    classes = np.asarray(classes, dtype=np.uint8)
    return kernels.fill_from_neighbours(instance_map.reshape(-1), instance_map.shape[1],
                                        np.asarray(targets, dtype=np.intp),
                                        np.ascontiguousarray(train_ids).reshape(-1), classes)
