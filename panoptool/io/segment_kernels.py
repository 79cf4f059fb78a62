"""Compiled loops over segment-id maps (numba), shared by the COCO panoptic encoding of
Cityscapes ground truth (:mod:`panoptool.io.cityscapes_panoptic`) and the panoptic output of
the post-processing (:mod:`panoptool.postprocess.panoptic`).

Imported only where segments' boxes are computed, so that commands that do not need them do
not pay numba's import; compiled on first use and cached on disk like
:mod:`panoptool.postprocess.kernels`.
"""

from __future__ import annotations

import numpy as np

from panoptool.io.jit import njit


@njit
def bounding_boxes(ids, slot, k):
    """int64 (k, 4) (y0, x0, y1, x1) inclusive extent of each segment: pixel value v belongs
    to segment ``slot[v]`` (-1: none); rows of absent segments keep y0 > y1."""
    h, w = ids.shape
    box = np.empty((k, 4), np.int64)
    for s in range(k):
        box[s, 0] = h
        box[s, 1] = w
        box[s, 2] = -1
        box[s, 3] = -1
    for i in range(h):
        for j in range(w):
            s = slot[ids[i, j]]
            if s < 0:
                continue
            if i < box[s, 0]:
                box[s, 0] = i
            if j < box[s, 1]:
                box[s, 1] = j
            if i > box[s, 2]:
                box[s, 2] = i
            if j > box[s, 3]:
                box[s, 3] = j
    return box
