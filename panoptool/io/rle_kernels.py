"""Compiled loops of :mod:`panoptool.evaluation.coco` (numba): run-length masks in
pycocotools' layout (column-major runs, zeros first) without full-image arrays.

Imported only where RLE masks are encoded or read, so that commands that do not touch them
(a panoptic-only ``report``) do not pay numba's import. Compiled on first use and cached on
disk like :mod:`panoptool.postprocess.kernels`; :func:`warm_up` loads them in a parent
process so that forked workers inherit them.
"""

from __future__ import annotations

import numpy as np

from panoptool.io.jit import njit


@njit
def scan_runs(box_t, lut, h, x0, y0, values, starts, lengths, fill):
    """One sweep of :func:`object_runs`: the number of runs, and with ``fill`` the runs
    written into ``values`` / ``starts`` / ``lengths``."""
    n_cols, n_rows = box_t.shape
    n_lut = lut.shape[0]
    k = -1
    prev = 0
    last = -2
    for i in range(n_cols):
        base = (x0 + i) * h + y0
        for j in range(n_rows):
            raw = np.int64(box_t[i, j])
            v = lut[raw] if 0 <= raw < n_lut else 0
            if v > 0:
                p = base + j
                if v != prev or p != last + 1:
                    k += 1
                    if fill:
                        values[k] = v
                        starts[k] = p
                        lengths[k] = 0
                if fill:
                    lengths[k] += 1
                last = p
            prev = v
    return k + 1


@njit
def object_runs(box_t, lut, h, x0, y0):
    """Runs of the objects ``lut[value]`` > 0 in column-major order of an image of height
    ``h``, read from the transpose ``box_t`` (bw, bh) of its box at column x0, row y0:
    (object, start, length) int64 each; values outside ``lut`` are no object."""
    empty = np.empty(0, np.int64)
    n = scan_runs(box_t, lut, h, x0, y0, empty, empty, empty, False)
    values = np.empty(n, np.int64)
    starts = np.empty(n, np.int64)
    lengths = np.empty(n, np.int64)
    scan_runs(box_t, lut, h, x0, y0, values, starts, lengths, True)
    return values, starts, lengths


@njit
def counts_from_string(chars):
    """Run lengths of a pycocotools compressed RLE string (uint8 bytes)."""
    counts = np.empty(len(chars) + 1, np.int64)
    m = 0
    p = 0
    n = len(chars)
    while p < n:
        x = 0
        k = 0
        more = True
        while more:
            if p >= n:
                return counts[:0], False
            c = np.int64(chars[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = (c & 0x20) != 0
            p += 1
            k += 1
            if not more and (c & 0x10) != 0:
                x |= np.int64(-1) << (5 * k)
        if m > 2:
            x += counts[m - 2]
        counts[m] = x
        m += 1
    return counts[:m], True


@njit
def runs_segment_overlap(runs, segment_index, n_segments):
    """Pixels of the mask given by ``runs`` (column-major, zeros first) on each value of
    ``segment_index`` (H, W): int64 (n_segments,)."""
    h = segment_index.shape[0]
    out = np.zeros(n_segments, np.int64)
    pos = 0
    for r in range(runs.shape[0]):
        length = runs[r]
        if r % 2 == 1:
            col = pos // h
            row = pos - col * h
            for _ in range(length):
                out[segment_index[row, col]] += 1
                row += 1
                if row == h:
                    row = 0
                    col += 1
        pos += length
    return out


def warm_up() -> None:
    """Compile (or load from the cache) the loops for the array types ``report`` uses."""
    counts_from_string(np.frombuffer(b"01", dtype=np.uint8))
    runs = np.array([0, 1], dtype=np.int64)
    runs_segment_overlap(runs, np.zeros((1, 1), np.uint16), 1)
    lut = np.zeros(2, np.int64)
    for dtype in (np.uint16, np.int32):
        object_runs(np.zeros((1, 1), dtype), lut, 1, 0, 0)
