"""Refinement of contour instances by their predicted centres: split, merge, min-area.

All functions take and return an instance labelling of the thing pixels (intp (n,),
0 = none; see :class:`~panoptool.postprocess.instances.ThingPixels`) and never modify their
inputs.

Splitting clusters the predicted centres of an instance with DBSCAN. Per-pixel DBSCAN is far
too slow for instances of 10^4..10^5 pixels, so the centres are first counted on a grid of
``cell`` pixels (a vote histogram over a window around the instance) and DBSCAN runs on the
weighted cells: a cell is a core cell if the votes in cells whose centres are within ``eps``
reach ``min_samples``; core cells closer than ``eps`` join one cluster; every other pixel
goes to the cluster of the nearest core cell. :func:`dbscan_clusters` is the plain
per-pixel version (scikit-learn), kept as the reference the bench and tests compare with.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
from scipy.spatial import cKDTree

from panoptool.postprocess import kernels
from panoptool.postprocess.instances import InstanceSums, ThingPixels


@functools.lru_cache(maxsize=64)
def _disc(radius: float) -> np.ndarray:
    """uint8 (2r+1, 2r+1) disc: 1 where the cell centre is within ``radius`` cells."""
    r = int(np.floor(radius))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return ((yy * yy + xx * xx) <= radius * radius + 1e-9).astype(np.uint8)


#: Above this many edges :func:`pair_components` hands the graph to scipy: label propagation
#: needs as many rounds as the longest chain, and a badly trained network's scattered centres
#: make graphs of 10^4 cells and 10^6 edges (propagation 369 ms, scipy 46 ms); below ~2*10^5
#: edges scipy's fixed cost (~0.5 ms) loses (graphs of a good prediction: up to ~10^4 edges).
_SPARSE_PAIRS = 100_000


def pair_components(n: int, pairs: np.ndarray) -> tuple[int, np.ndarray]:
    """Connected components of the graph on nodes 0..n-1 with edges ``pairs`` (int (e, 2)).

    Same result as ``scipy.sparse.csgraph.connected_components`` (components numbered in
    order of their smallest node), without its sparse-matrix overhead on the small graphs
    of a well-predicted image (min-label propagation with pointer jumping); large graphs go
    to scipy.

    Returns
    -------
    k : number of components; component : intp (n,), 0..k-1.

    >>> pair_components(5, np.array([[3, 1], [4, 0]]))[1].tolist()
    [0, 1, 2, 1, 0]
    """
    if len(pairs) > _SPARSE_PAIRS:  # large graphs (noisy centres): scipy's linear-time search
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components
        graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])),
                           shape=(n, n))
        k, component = connected_components(graph, directed=False)
        return int(k), component.astype(np.intp)
    root = np.arange(n, dtype=np.intp)
    if len(pairs):
        a = np.asarray(pairs[:, 0], dtype=np.intp)
        b = np.asarray(pairs[:, 1], dtype=np.intp)
        while True:
            low = np.minimum(root[a], root[b])
            before = root.copy()
            np.minimum.at(root, a, low)
            np.minimum.at(root, b, low)
            while True:  # pointer jumping: every node points at its root
                jumped = root[root]
                if np.array_equal(jumped, root):
                    break
                root = jumped
            if np.array_equal(root, before):
                break
    first = root == np.arange(n)
    number = np.cumsum(first) - 1
    return int(first.sum()), number[root]


def _order_by_size(clusters: np.ndarray, k: int) -> np.ndarray:
    """Renumber clusters 0..k-1 by decreasing size (ties: lower old number first)."""
    sizes = np.bincount(clusters, minlength=k)
    rank = np.empty(k, dtype=np.int32)
    rank[np.lexsort((np.arange(k), -sizes))] = np.arange(k, dtype=np.int32)
    return rank[clusters]


def grid_clusters(centre_y: np.ndarray, centre_x: np.ndarray,
                  window: tuple[float, float, float, float], *, eps: float,
                  min_samples: int, cell: float) -> tuple[np.ndarray, int]:
    """Cluster predicted centres with DBSCAN on a vote grid (the fast path).

    Parameters
    ----------
    centre_y, centre_x : float (m,), predicted centres of one instance's pixels.
    window : (y0, x0, y1, x1), the region where centres are counted, in pixels; centres
        outside it vote for nothing (they cannot form a cluster) but still join the nearest
        cluster.
    eps : DBSCAN radius in pixels.
    min_samples : votes a core cell needs within ``eps`` (its own included).
    cell : grid cell side in pixels.

    Returns
    -------
    clusters : int32 (m,), cluster of each centre, 0..k-1 by decreasing size.
    k : number of clusters (1 when there is no core cell: nothing to split).

    Examples
    --------
    Two tight groups of 300 centres, 60 px apart, and a few strays:

    >>> rng = np.random.default_rng(0)
    >>> cy = np.r_[rng.normal(50, 2, 300), rng.normal(50, 2, 300), [80, 20]]
    >>> cx = np.r_[rng.normal(40, 2, 300), rng.normal(100, 2, 300), [40, 101]]
    >>> cl, k = grid_clusters(cy, cx, (0, 0, 120, 160), eps=20, min_samples=100, cell=4)
    >>> k, len(set(cl[:300])), len(set(cl[300:600])), bool(cl[600] == cl[0]), bool(cl[601] == cl[300])
    (2, 1, 1, True, True)
    """
    m = len(centre_y)
    if m == 0:
        return np.zeros(0, dtype=np.int32), 1
    y0, x0, y1, x1 = window
    gh = int(np.floor((y1 - y0) / cell)) + 1
    gw = int(np.floor((x1 - x0) / cell)) + 1
    fy = np.floor((np.asarray(centre_y, dtype=np.float64) - y0) / cell)
    fx = np.floor((np.asarray(centre_x, dtype=np.float64) - x0) / cell)
    inside = (fy >= 0) & (fy < gh) & (fx >= 0) & (fx < gw)
    gy = np.clip(fy, 0, gh - 1).astype(np.int64)
    gx = np.clip(fx, 0, gw - 1).astype(np.int64)
    key = gy * gw + gx
    votes = np.bincount(key[inside], minlength=gh * gw).astype(np.float32).reshape(gh, gw)
    radius = eps / cell
    density = cv2.filter2D(votes, cv2.CV_32F, _disc(radius).astype(np.float32),
                           borderType=cv2.BORDER_CONSTANT)
    core = (votes > 0) & (density >= min_samples - 0.5)
    n_core = int(np.count_nonzero(core))
    if n_core == 0:
        return np.zeros(m, dtype=np.int32), 1
    # core cells within eps of each other form one cluster
    core_yx = np.argwhere(core)
    if n_core == 1:
        core_cluster = np.zeros(1, dtype=np.int32)
        k = 1
    else:
        pairs = cKDTree(core_yx).query_pairs(radius + 1e-9, output_type="ndarray")
        k, core_cluster = pair_components(n_core, pairs)
    if k == 1:
        return np.zeros(m, dtype=np.int32), 1
    # every cell joins the cluster of its nearest core cell (core cells in raster order)
    _, nearest = cv2.distanceTransformWithLabels((~core).view(np.uint8), cv2.DIST_L2, 5,
                                                 labelType=cv2.DIST_LABEL_PIXEL)
    cell_cluster = core_cluster.astype(np.int32)[nearest.ravel() - 1]
    clusters = cell_cluster[key]
    return _order_by_size(clusters, k), k


def dbscan_clusters(centre_y: np.ndarray, centre_x: np.ndarray, *, eps: float,
                    min_samples: int) -> tuple[np.ndarray, int]:
    """Reference: per-pixel scikit-learn DBSCAN of the predicted centres.

    Noise points join the cluster of the nearest core point, as in :func:`grid_clusters`.
    Memory and time grow with the square of the density; use on small instances only.

    Returns
    -------
    clusters : int32 (m,), 0..k-1 by decreasing size; k : number of clusters (>= 1).
    """
    from sklearn.cluster import DBSCAN

    points = np.stack([centre_y, centre_x], axis=1).astype(np.float64)
    m = len(points)
    if m == 0:
        return np.zeros(0, dtype=np.int32), 1
    model = DBSCAN(eps=eps, min_samples=min_samples).fit(points)
    labels = model.labels_
    k = int(labels.max()) + 1
    if k <= 1:
        return np.zeros(m, dtype=np.int32), 1
    core = model.core_sample_indices_
    _, nearest = cKDTree(points[core]).query(points)
    clusters = labels[core][nearest].astype(np.int32)
    return _order_by_size(clusters, k), k


def _instance_ranges(labels: np.ndarray, chosen: np.ndarray):
    """Yield (label, pixel positions ascending) for the labels where ``chosen`` is True."""
    order, start = kernels.group_by_label(labels, chosen)
    for k in np.flatnonzero(start[1:] > start[:-1]):
        yield int(k), order[start[k]:start[k + 1]]


def split_instances(labels: np.ndarray, pixels: ThingPixels, stats: InstanceSums, *,
                    eps: float, min_samples: int, cell: float
                    ) -> tuple[np.ndarray, InstanceSums]:
    """Split every instance whose predicted centres form several DBSCAN clusters.

    An instance whose centres all lie within ``eps / 2`` of their mean cannot hold two
    clusters and is skipped without clustering; so is one with fewer than ``min_samples``
    pixels. The largest cluster keeps the instance's label, the others get new labels
    (above the current maximum, in order).

    Parameters
    ----------
    labels : intp (n,), labelling of the thing pixels (0..L).
    pixels : the thing pixels.
    stats : statistics of ``labels`` (L + 1 rows).

    Returns
    -------
    labels : intp (n,), the new labelling.
    stats : its statistics (the rows of split instances re-measured on their pixels).
    """
    labels = np.asarray(labels, dtype=np.intp)
    n = len(stats) - 1
    if n == 0:
        return labels.copy(), stats
    cy, cx = stats.centres()
    candidate = kernels.far_labels(labels, pixels.centre_y, pixels.centre_x, cy, cx,
                                   (eps / 2.0) ** 2)
    candidate &= stats.area >= min_samples
    candidate[0] = False
    out = labels.copy()
    next_label = n + 1
    touched = []
    for k, pos in _instance_ranges(labels, candidate):
        y, x = np.divmod(pixels.index[pos], pixels.shape[1])
        window = (float(y.min()) - eps, float(x.min()) - eps,
                  float(y.max()) + eps, float(x.max()) + eps)
        clusters, n_clusters = grid_clusters(pixels.centre_y[pos], pixels.centre_x[pos],
                                             window, eps=eps, min_samples=min_samples,
                                             cell=cell)
        if n_clusters > 1:
            moved = clusters > 0
            out[pos[moved]] = next_label + clusters[moved] - 1
            next_label += n_clusters - 1
            touched.append(pos)
    if not touched:
        return out, stats
    # re-measure the split instances and their new parts on their own pixels
    pos = np.sort(np.concatenate(touched))
    new_n = next_label - 1
    part = InstanceSums.measure(out[pos], pixels, new_n, pos)
    rows = np.flatnonzero(part.area)
    return out, stats.extended(new_n).replace_rows(rows, part)


def merge_instances(labels: np.ndarray, stats: InstanceSums, *, eps: float,
                    first_new: int = 0) -> tuple[np.ndarray, InstanceSums]:
    """Join instances of the same class whose mean predicted centres are closer than eps.

    Joining is transitive (single linkage); a group takes its smallest label. The class of
    an instance is its majority class (:meth:`InstanceSums.classes`).

    With ``first_new`` only pairs with an instance from ``first_new`` on are joined; pairs of
    two older instances are left alone (they were merged before). The seeded derivation uses
    this for the contour-band regions that no instance took: a piece of an object cut off by
    another object lying across it points to the same centre as the object's body and joins
    it; a small object of its own points elsewhere and stays.

    Parameters
    ----------
    labels : intp (n,) labelling (0..L).
    stats : its statistics (L + 1 rows).
    eps : distance in pixels.
    first_new : the first label that takes part (0 = all).

    Returns
    -------
    labels : intp (n,), the new labelling (joined labels leave empty rows).
    stats : its statistics (rows of a group summed into its first label).
    """
    labels = np.asarray(labels, dtype=np.intp)
    n = len(stats) - 1
    area = stats.area
    cy, cx = stats.centres()
    classes = stats.classes()
    ids = np.flatnonzero((area > 0) & (np.arange(n + 1) > 0))
    if ids.size < 2 or ids[-1] < first_new:
        return labels.copy(), stats
    # the class as a third coordinate, far apart: only same-class pairs can be within eps
    points = np.column_stack([cy[ids], cx[ids], classes[ids].astype(np.float64) * 1e7])
    pairs = cKDTree(points).query_pairs(eps, p=2.0, output_type="ndarray")
    if first_new > 0 and len(pairs):
        pairs = pairs[np.maximum(ids[pairs[:, 0]], ids[pairs[:, 1]]) >= first_new]
    if len(pairs) == 0:
        return labels.copy(), stats
    d = np.hypot(*(points[pairs[:, 0], :2] - points[pairs[:, 1], :2]).T)
    pairs = pairs[d < eps]  # strictly closer than eps
    if len(pairs) == 0:
        return labels.copy(), stats
    _, group = pair_components(ids.size, pairs)
    first = np.full(group.max() + 1, np.iinfo(np.int32).max, dtype=np.int64)
    np.minimum.at(first, group, ids)
    lut = np.arange(n + 1, dtype=np.intp)
    lut[ids] = first[group]
    return np.take(lut, labels), stats.combine(lut, n)


def remove_small(labels: np.ndarray, pixels: ThingPixels, stats: InstanceSums, *,
                 min_area: int, eps: float | None = None) -> tuple[np.ndarray, InstanceSums]:
    """Remove instances smaller than ``min_area``; give their pixels to the instance whose
    mean predicted centre is nearest each pixel's predicted centre, among the kept
    instances of the same class.

    A pixel goes to that instance only if its predicted centre lies closer than ``eps`` to
    the instance's centre (the pixel says it belongs to that object: a fragment cut off by
    a spurious contour); otherwise, and where no kept instance of the class exists, it loses
    its label (void). So the pixels of a genuine small object are never handed to some
    far-away instance of its class. ``eps=None`` gives every pixel to the nearest one.

    Returns
    -------
    labels : intp (n,), the new labelling; stats : its statistics.
    """
    labels = np.asarray(labels, dtype=np.intp)
    area = stats.area
    classes = stats.classes()
    cy, cx = stats.centres()
    small = (area > 0) & (area < min_area)
    small[0] = False
    if not small.any():
        return labels.copy(), stats
    kept = (area >= min_area)
    kept[0] = False
    out = labels.copy()
    pos = np.flatnonzero(small[labels])
    out[pos] = 0
    pix_class = classes[labels[pos]]
    limit = np.inf if eps is None else float(eps)
    for cls in np.unique(pix_class):
        targets = np.flatnonzero(kept & (classes == cls))
        if targets.size == 0:
            continue
        here = pos[pix_class == cls]
        query = np.column_stack([pixels.centre_y[here], pixels.centre_x[here]])
        dist, nearest = cKDTree(np.column_stack([cy[targets], cx[targets]])).query(
            query, distance_upper_bound=limit)
        near = dist < limit
        out[here[near]] = targets[nearest[near]]
    # the small rows empty; the targets gain the pixels they received
    return out, stats.cleared(small).add_pixels(pixels, pos, np.zeros(len(pos), dtype=np.intp),
                                                out[pos])

