"""Reading pycocotools run-length masks with numpy alone (no compiled kernels).

``report`` reads the RLE masks of a COCO results file with these: a compressed counts string
is decoded with a handful of vectorised operations, and a mask's overlap with the
ground-truth segments is counted from its runs, without a full-image mask. Loading numba and
its cached kernels costs about 0.75 s per process, more than decoding every mask of 100
Cityscapes images, so the evaluator does not use :mod:`panoptool.io.rle_kernels` (encoding,
in ``postprocess``, still does).

pycocotools' string format: each count is written in 5-bit groups, low bits first, one
character (``48 + group``) per group, bit 0x20 set on every character but a count's last, bit
0x10 of the last one the sign; counts after the third are stored as the difference to the
count two places before.
"""

from __future__ import annotations

import numpy as np


def counts_from_string(chars: np.ndarray | bytes) -> tuple[np.ndarray, bool]:
    """Run lengths of a pycocotools compressed RLE string.

    Parameters
    ----------
    chars : the string's bytes (uint8 array or ``bytes``).

    Returns
    -------
    counts : int64 (M,); ok : False if the string ends inside a count (then ``counts`` is
    empty).

    >>> counts_from_string(b"13")[0].tolist(), counts_from_string(b"PdV<1")[0].tolist()
    ([1, 3], [400000, 1])
    >>> counts_from_string(b"0P")
    (array([], dtype=int64), False)
    """
    c = np.frombuffer(chars, dtype=np.uint8) if isinstance(chars, bytes) else chars
    c = c.astype(np.int64) - 48
    n = len(c)
    if n == 0:
        return np.zeros(0, np.int64), True
    last = (c & 0x20) == 0  # a count's last character
    if not last[-1]:
        return np.zeros(0, np.int64), False
    ends = np.flatnonzero(last)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    group = np.repeat(np.arange(len(ends)), ends - starts + 1)
    k = np.arange(n) - starts[group]  # position of the character within its count
    x = np.add.reduceat((c & 0x1F) << (5 * k), starts)
    negative = (c[ends] & 0x10) != 0
    x[negative] |= np.int64(-1) << (5 * (k[ends[negative]] + 1))
    # counts[m] = x[m] + counts[m - 2] for m > 2: two running sums, one per parity, from m = 1, 2
    counts = x.copy()
    counts[1::2] = np.cumsum(x[1::2])
    counts[2::2] = np.cumsum(x[2::2])
    return counts, True


def runs_segment_overlap(runs: np.ndarray, segment_index: np.ndarray,
                         n_segments: int) -> np.ndarray:
    """Pixels of the mask given by ``runs`` on each value of ``segment_index``.

    Parameters
    ----------
    runs : int (M,), run lengths in column-major order, zeros first (pycocotools' counts).
    segment_index : int (H, W), values below ``n_segments``.

    Returns
    -------
    int64 (n_segments,).

    >>> seg = np.array([[0, 1], [2, 1]])        # column-major: 0, 2, 1, 1
    >>> runs_segment_overlap(np.array([1, 2, 1]), seg, 3).tolist()   # pixels 1 and 2
    [0, 1, 1]
    """
    runs = np.asarray(runs, dtype=np.int64)
    h = segment_index.shape[0]
    ends = np.cumsum(runs)
    lengths = runs[1::2]
    starts = (ends - runs)[1::2]
    keep = lengths > 0
    lengths, starts = lengths[keep], starts[keep]
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(n_segments, np.int64)
    first = np.cumsum(lengths) - lengths  # where each run begins among the mask's pixels
    pos = np.arange(total, dtype=np.int64) + np.repeat(starts - first, lengths)
    col, row = np.divmod(pos, h)
    return np.bincount(segment_index[row, col], minlength=n_segments).astype(np.int64)
