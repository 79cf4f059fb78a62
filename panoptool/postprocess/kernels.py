"""Compiled per-pixel loops of the post-processing (numba).

Each kernel replaces a chain of numpy passes over the ~10^5..10^6 thing pixels of an image
by one loop, and gives exactly the numbers the numpy formulation gives: sums are taken in
the same (raster) order, in float64, with the same operations (no ``fastmath``). They are
compiled on first use and the machine code is cached next to this file (``cache=True``; in
numba's user cache folder if this one is read-only), so only the first run on a machine
pays the compilation (a few seconds).
"""

from __future__ import annotations

import numpy as np

from panoptool.io.jit import njit

# one kernel for the segments' extent, shared with io's COCO panoptic encoding
from panoptool.io.segment_kernels import bounding_boxes  # noqa: F401


@njit
def thing_foreground(train_ids, contour_prob, threshold, is_thing):
    """The thing mask minus the contour pixels, and the histogram of the classes.

    Returns ``foreground`` uint8 (H, W), 1 where ``is_thing[train_ids]`` and not
    ``contour_prob > threshold`` (a NaN probability is no contour, as in numpy), and
    ``hist`` int64 (256,), pixels per train id.
    """
    h, w = train_ids.shape
    foreground = np.empty((h, w), np.uint8)
    hist = np.zeros(256, np.int64)
    for i in range(h):
        for j in range(w):
            t = train_ids[i, j]
            hist[t] += 1
            foreground[i, j] = is_thing[t] and not contour_prob[i, j] > threshold
    return foreground, hist


@njit(inline=True)
def _zero_sums(n, n_things):
    """Empty sums of :class:`InstanceSums` for labels 0..n: counts, conf_sum, sum_y,
    sum_x."""
    return (np.zeros((n + 1, n_things), np.int64), np.zeros((n + 1, n_things), np.float64),
            np.zeros(n + 1, np.float64), np.zeros(n + 1, np.float64))


@njit(inline=True)
def _add_pixel(counts, conf_sum, sum_y, sum_x, label, c, confidence, cy, cx):
    """Add one pixel (class index c, its confidence and predicted centre) to a label's
    sums."""
    counts[label, c] += 1
    conf_sum[label, c] += np.float64(confidence)
    sum_y[label] += cy
    sum_x[label] += cx


@njit
def gather_measure(components, train_ids, confidence, offset_y, offset_x, contour_prob,
                   threshold, thing_index, n_things, m, n):
    """The thing pixels' centres and the per-component sums, in one pass over the image.

    Parameters
    ----------
    components : int32 (H, W), component labels 0..n.
    train_ids : uint8 (H, W); the ``m`` thing pixels have ``thing_index[id] >= 0``.
    thing_index : intp (256,), column of each thing class in the sums (0..n_things-1),
        -1 for the other train ids.
    confidence, offset_y, offset_x, contour_prob : float (H, W).

    Returns
    -------
    index, labels : intp (m,), flat index and component of each thing pixel.
    centre_y, centre_x : float64 (m,), pixel + offset.
    on_contour : bool (m,), ``contour_prob > threshold``.
    counts : int64 (n + 1, n_things); conf_sum : float64 (n + 1, n_things);
    sum_y, sum_x : float64 (n + 1,): the sums of :class:`InstanceSums`.
    """
    h, w = train_ids.shape
    index = np.empty(m, np.intp)
    labels = np.empty(m, np.intp)
    centre_y = np.empty(m, np.float64)
    centre_x = np.empty(m, np.float64)
    on_contour = np.empty(m, np.bool_)
    counts, conf_sum, sum_y, sum_x = _zero_sums(n, n_things)
    k = 0
    for i in range(h):
        for j in range(w):
            c = thing_index[train_ids[i, j]]
            if c < 0:
                continue
            lab = np.intp(components[i, j])
            cy = np.float64(offset_y[i, j]) + np.float64(i)
            cx = np.float64(offset_x[i, j]) + np.float64(j)
            index[k] = i * w + j
            labels[k] = lab
            centre_y[k] = cy
            centre_x[k] = cx
            on_contour[k] = contour_prob[i, j] > threshold
            _add_pixel(counts, conf_sum, sum_y, sum_x, lab, c, confidence[i, j], cy, cx)
            k += 1
    return index, labels, centre_y, centre_x, on_contour, counts, conf_sum, sum_y, sum_x


@njit
def measure(labels, positions, index, train_ids, confidence, centre_y, centre_x,
            thing_index, n_things, n):
    """The sums of :class:`InstanceSums` over the thing pixels at ``positions``, whose
    labels (0..n) are ``labels``; ``train_ids`` and ``confidence`` are the raveled maps
    (pixel p's values at ``index[p]``), ``centre_y`` / ``centre_x`` per thing pixel;
    ``thing_index`` as in :func:`gather_measure`."""
    counts, conf_sum, sum_y, sum_x = _zero_sums(n, n_things)
    for j in range(len(positions)):
        p = positions[j]
        q = index[p]
        _add_pixel(counts, conf_sum, sum_y, sum_x, labels[j], thing_index[train_ids[q]],
                   confidence[q], centre_y[p], centre_x[p])
    return counts, conf_sum, sum_y, sum_x


@njit
def far_labels(labels, centre_y, centre_x, mean_y, mean_x, limit2):
    """bool (L + 1,): labels with a pixel whose predicted centre lies farther than
    ``sqrt(limit2)`` from the label's mean centre (``mean_y``, ``mean_x``)."""
    far = np.zeros(len(mean_y), np.bool_)
    for p in range(len(labels)):
        k = labels[p]
        if far[k]:
            continue
        dy = centre_y[p] - mean_y[k]
        dx = centre_x[p] - mean_x[k]
        if dy * dy + dx * dx > limit2:
            far[k] = True
    return far


@njit
def group_by_label(labels, chosen):
    """The positions of the pixels whose label is ``chosen``, grouped by label.

    Returns ``order`` (intp, positions ascending within each label, labels ascending) and
    ``start`` (intp (L + 2,)): label k's positions are ``order[start[k]:start[k + 1]]``.
    """
    n_rows = len(chosen)
    start = np.zeros(n_rows + 1, np.intp)
    for p in range(len(labels)):
        if chosen[labels[p]]:
            start[labels[p] + 1] += 1
    for k in range(n_rows):
        start[k + 1] += start[k]
    order = np.empty(start[n_rows], np.intp)
    cursor = start[:n_rows].copy()
    for p in range(len(labels)):
        k = labels[p]
        if chosen[k]:
            order[cursor[k]] = p
            cursor[k] += 1
    return order, start


#: Marks of the target pixels in the instance map while :func:`fill_from_neighbours` runs.
_PENDING = -1
_QUEUED = -2


@njit(inline=True)
def _queue(flat, q, candidates, n_cand):
    """Append pixel q to the candidates if it is a pending target not queued yet."""
    if flat[q] == _PENDING:
        flat[q] = _QUEUED
        candidates[n_cand] = q
        n_cand += 1
    return n_cand


@njit(inline=True)
def _neighbour_label(flat, q, want, classes):
    """The label at pixel q if it is an instance of class ``want``, else 0."""
    label = flat[q]
    if label > 0 and classes[label] == want:
        return label
    return 0


@njit
def fill_from_neighbours(flat, width, targets, train_ids, classes):
    """Breadth-first growth of instance labels into ``targets`` (see
    :func:`~panoptool.postprocess.instances.fill_contours`); ``flat`` (int32, the raveled
    instance map, 0 at the targets) is updated in place. Returns the number of pixels that
    got a label.

    While it runs, the targets not labelled yet hold negative marks in ``flat`` itself
    (pending, or queued for the current step), so no image-sized scratch array is needed;
    the targets left unlabelled are set back to 0 at the end.
    """
    size = flat.size
    n_cand = len(targets)
    candidates = np.empty(max(n_cand, 1), np.intp)
    best = np.empty(max(n_cand, 1), np.int32)
    filled = np.empty(max(n_cand, 1), np.intp)
    for i in range(n_cand):
        candidates[i] = targets[i]
        flat[targets[i]] = _QUEUED
    n_filled = 0
    while n_cand > 0:
        # decide every candidate on the labels as they were at the start of the step
        # (marks are negative, so neither pending nor queued pixels count as neighbours)
        for i in range(n_cand):
            p = candidates[i]
            want = train_ids[p]
            col = p % width
            b = 0
            if p >= width:
                b = _neighbour_label(flat, p - width, want, classes)
            if b == 0 and col > 0:
                b = _neighbour_label(flat, p - 1, want, classes)
            if b == 0 and col < width - 1:
                b = _neighbour_label(flat, p + 1, want, classes)
            if b == 0 and p < size - width:
                b = _neighbour_label(flat, p + width, want, classes)
            best[i] = b
        first_new = n_filled
        for i in range(n_cand):
            p = candidates[i]
            if best[i] > 0:
                flat[p] = best[i]
                filled[n_filled] = p
                n_filled += 1
            else:
                flat[p] = _PENDING
        # next candidates: the pending 4-neighbours of the pixels labelled in this step
        n_cand = 0
        for f in range(first_new, n_filled):
            p = filled[f]
            col = p % width
            if p >= width:
                n_cand = _queue(flat, p - width, candidates, n_cand)
            if col > 0:
                n_cand = _queue(flat, p - 1, candidates, n_cand)
            if col < width - 1:
                n_cand = _queue(flat, p + 1, candidates, n_cand)
            if p < size - width:
                n_cand = _queue(flat, p + width, candidates, n_cand)
    for t in targets:
        if flat[t] < 0:
            flat[t] = 0
    return n_filled


@njit
def scatter(out_flat, index, values):
    """``out_flat[index] = values``."""
    for p in range(len(index)):
        out_flat[index[p]] = values[p]


@njit
def panoptic_ids(instance_ids, train_ids, segment_of, stuff_segment):
    """int32 (H, W): ``segment_of[instance]`` on instance pixels, else
    ``stuff_segment[train id]``."""
    h, w = train_ids.shape
    out = np.empty((h, w), np.int32)
    for i in range(h):
        for j in range(w):
            k = instance_ids[i, j]
            out[i, j] = segment_of[k] if k > 0 else stuff_segment[train_ids[i, j]]
    return out


# --- the seeded derivation: growing the components over the contour band ----------------------

#: The growth's queue orders the targets by the distance between their predicted centre and
#: the instance's mean centre in steps of 1 / GROW_STEPS pixels, up to GROW_BUCKETS - 1 steps
#: (farther: the last step); within a step, first queued first (a bucket queue: O(1) per
#: pixel, where a binary heap cost ~10x more than the rest of the derivation's steps).
GROW_STEPS = 4.0
GROW_BUCKETS = 1024


@njit(inline=True)
def _neighbour4(q, step, width, size):
    """The ``step``-th 4-neighbour of flat pixel ``q`` (0 up, 1 left, 2 right, 3 down, the order
    of every growth loop here), or -1 where it lies off the image."""
    if step == 0:
        return q - width if q >= width else -1
    if step == 1:
        return q - 1 if q % width > 0 else -1
    if step == 2:
        return q + 1 if q % width < width - 1 else -1
    return q + width if q < size - width else -1


@njit
def _target_neighbours(flat, width, targets, train_ids, classes):
    """For each target p and step s (0 up, 1 left, 2 right, 3 down): ``nb[4 p + s]``, the
    position of the neighbour among the targets (-1: no target there), and ``seed[4 p + s]``,
    the neighbour's label if it is an instance pixel of the target's class (else 0); and
    the class of each target. ``targets`` ascending; up/down neighbours found by two
    pointers that only move forward."""
    m = len(targets)
    size = flat.size
    nb = np.full(4 * m, -1, np.intp)
    seed = np.zeros(4 * m, np.int32)
    tclass = np.empty(m, np.uint8)
    up = 0
    down = 0
    for p in range(m):
        q = targets[p]
        want = train_ids[q]
        tclass[p] = want
        for step in range(4):
            r = _neighbour4(q, step, width, size)
            if r < 0:
                continue
            if step == 0:
                while targets[up] < r:
                    up += 1
                k = up
            elif step == 1:
                k = p - 1
            elif step == 2:
                k = p + 1 if p + 1 < m else p
            else:
                while down < m - 1 and targets[down] < r:
                    down += 1
                k = down
            if 0 <= k < m and targets[k] == r:
                nb[4 * p + step] = k
            else:
                label = flat[r]
                if label > 0 and classes[label] == want:
                    seed[4 * p + step] = label
    return nb, seed, tclass


@njit
def _new_groups(got, nb, tclass, n):
    """The targets no instance took (``got`` 0) become new labels n + 1, ...: one per
    4-connected group of one class (``nb``: the targets' neighbour positions, as
    :func:`_target_neighbours` gives them), numbered in target order; returns the number of
    labels after."""
    m = len(got)
    n_new = n
    stack = np.empty(max(m, 1), np.intp)
    for p0 in range(m):
        if got[p0] != 0:
            continue
        n_new += 1
        want = tclass[p0]
        got[p0] = n_new
        stack[0] = p0
        top = 1
        while top > 0:
            top -= 1
            p = stack[top]
            for step in range(4):
                k = nb[4 * p + step]
                if k >= 0 and got[k] == 0 and tclass[k] == want:
                    got[k] = n_new
                    stack[top] = k
                    top += 1
    return n_new


@njit
def grow_seeds(flat, width, targets, train_ids, classes, centre_y, centre_x, mean_y, mean_x,
               limit2, n):
    """Seeded region growing of instance labels over the target (contour band) pixels, then
    new labels for the targets no instance reached.

    Parameters
    ----------
    flat : int32 (H * W,), the raveled instance map: labels 1..n on the seeds, 0 at the
        targets and elsewhere; updated in place (the targets get their labels).
    width : W.
    targets : intp (m,), flat indices of the pixels to grow into, ascending.
    train_ids : uint8 (H * W,), semantic class of every pixel.
    classes : uint8 (n + 1,), class of each label.
    centre_y, centre_x : float64 (m,), predicted centre of each target.
    mean_y, mean_x : float64 (n + 1,), mean predicted centre of each label.
    limit2 : a target joins an instance only if its predicted centre lies within
        ``sqrt(limit2)`` of the instance's mean centre (``inf``: always).
    n : the number of labels.

    Returns
    -------
    got : int32 (m,), the label each target ended with (> n: a new instance).
    n_new : the number of labels after the step (n + new instances).

    Growth: every target next to an instance of its class is queued with the distance
    between its predicted centre and the instance's mean centre (in steps of
    1 / :data:`GROW_STEPS` px, see :data:`GROW_BUCKETS`); the target with the smallest
    distance is taken first (ties: first queued), and its own pending
    4-neighbours are queued for the same instance. So a target goes to the instance that
    claims it with the nearest centre among those that reach it through targets (seeded
    region growing, Adams & Bischof 1994, with the predicted centre as the pixel's value).
    The targets left then (reached by no instance of their class within the limit: objects
    that lie wholly in the band) form new instances: one per 4-connected group of targets
    of one class, numbered n + 1, ... in raster order of their first pixel.

    The image-sized arrays are read once, in :func:`_target_neighbours`; the growth then
    works on arrays of the targets alone (a band of 20-30 thousand pixels fits in the
    cache, where following the queue through the 8 MB instance map stalled on memory at
    every step: 18 ms -> a few ms per 1024x2048 image).
    """
    m = len(targets)
    nb, seed, tclass = _target_neighbours(flat, width, targets, train_ids, classes)
    got = np.zeros(m, np.int32)  # 0 = pending
    # the queue: one bucket per distance step, each a linked list of entries (target, label)
    cap = 4 * m + 1
    item = np.empty(cap, np.intp)
    lab = np.empty(cap, np.int32)
    nxt = np.empty(cap, np.intp)
    head = np.full(GROW_BUCKETS, -1, np.intp)
    tail = np.full(GROW_BUCKETS, -1, np.intp)
    offered = np.zeros(m, np.int32)  # the label that last queued each target
    cand_p = np.empty(4, np.intp)
    cand_label = np.empty(4, np.int32)
    cur = GROW_BUCKETS  # the lowest bucket that may hold entries
    counter = 0
    popped = 0
    next_seed = 0
    # One loop, one place that queues (numba passes arrays to helper functions with
    # reference counting, which cost more than the work here): first the seeds (each
    # target's instance neighbours of its class, in target order), then the pops, each
    # offering the popped target's pending neighbours to its new label.
    while True:
        n_cand = 0
        if next_seed < m:
            p = next_seed
            next_seed += 1
            for step in range(4):
                label = seed[4 * p + step]
                if label > 0:
                    cand_p[n_cand] = p
                    cand_label[n_cand] = label
                    n_cand += 1
        elif popped < counter:
            while head[cur] < 0:
                cur += 1
            e = head[cur]
            head[cur] = nxt[e]
            if head[cur] < 0:
                tail[cur] = -1
            popped += 1
            p = item[e]
            label = lab[e]
            if got[p] != 0:
                continue  # taken already
            got[p] = label
            for step in range(4):
                k = nb[4 * p + step]
                if k >= 0:
                    cand_p[n_cand] = k
                    cand_label[n_cand] = label
                    n_cand += 1
        else:
            break
        for c in range(n_cand):
            # queue pending target q for the label if q has the label's class, its predicted
            # centre lies within sqrt(limit2) of the label's mean centre and the label did not
            # just queue it (the same label always gives the same key)
            q = cand_p[c]
            label = cand_label[c]
            if got[q] != 0 or tclass[q] != classes[label] or offered[q] == label:
                continue
            dy = centre_y[q] - mean_y[label]
            dx = centre_x[q] - mean_x[label]
            d2 = dy * dy + dx * dx
            if d2 > limit2:
                continue
            offered[q] = label
            e = counter
            counter += 1
            item[e] = q
            lab[e] = label
            b = np.intp(min(np.sqrt(d2) * GROW_STEPS, GROW_BUCKETS - 1.0))
            nxt[e] = -1
            if tail[b] < 0:
                head[b] = e
            else:
                nxt[tail[b]] = e
            tail[b] = e
            if b < cur:
                cur = b
    n_new = _new_groups(got, nb, tclass, n)
    for p in range(m):
        flat[targets[p]] = got[p]
    return got, n_new
