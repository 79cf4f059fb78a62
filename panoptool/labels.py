"""The Cityscapes label table, taken from ``cityscapesscripts.helpers.labels``.

Everything here is derived from the official table at import; nothing is a hand copy.

Encodings
---------
label_ids : uint8, the official Cityscapes ids 0..33 (as in ``*_gtFine_labelIds.png``).
train_ids : uint8, 0..18 for the 19 evaluated classes, 255 (``IGNORE``) for everything else.
instance_ids : int32/uint16, ``label_id * 1000 + k`` for thing instances, ``label_id`` for
    stuff and for crowd regions (as in ``*_gtFine_instanceIds.png``).
"""

from __future__ import annotations

import numpy as np
from cityscapesscripts.helpers.labels import labels as _CS_LABELS

IGNORE = 255
NUM_CLASSES = 19

#: Official labels with a valid id (drops 'license plate', id -1).
LABELS = tuple(lab for lab in _CS_LABELS if lab.id >= 0)

#: uint8 lookup table ``label_id -> train_id`` of length 256 (unknown ids -> IGNORE).
LABEL_TO_TRAIN = np.full(256, IGNORE, dtype=np.uint8)
for _lab in LABELS:
    LABEL_TO_TRAIN[_lab.id] = _lab.trainId if 0 <= _lab.trainId < 255 else IGNORE

#: uint8 lookup table ``train_id -> label_id`` of length 256; the first label of a trainId
#: wins, as in cityscapesscripts; IGNORE maps to 0 ('unlabeled').
TRAIN_TO_LABEL = np.zeros(256, dtype=np.uint8)
for _lab in reversed(LABELS):
    if 0 <= _lab.trainId < 255:
        TRAIN_TO_LABEL[_lab.trainId] = _lab.id

#: Boolean table over label ids 0..255: True for the ids of the official label table.
KNOWN_LABEL_ID = np.zeros(256, dtype=bool)
KNOWN_LABEL_ID[[lab.id for lab in LABELS]] = True

_BY_TRAIN = {lab.trainId: lab for lab in reversed(LABELS) if 0 <= lab.trainId < 255}

#: Class names indexed by train id (length 19).
CLASS_NAMES = tuple(_BY_TRAIN[t].name for t in range(NUM_CLASSES))

#: RGB colours indexed by train id, shape (19, 3) uint8.
CLASS_COLORS = np.array([_BY_TRAIN[t].color for t in range(NUM_CLASSES)], dtype=np.uint8)

#: Label ids of thing classes: hasInstances and not ignoreInEval (person ... bicycle).
THING_LABEL_IDS = tuple(lab.id for lab in LABELS if lab.hasInstances and not lab.ignoreInEval)

#: Train ids of thing classes (11..18).
THING_TRAIN_IDS = tuple(int(LABEL_TO_TRAIN[i]) for i in THING_LABEL_IDS)

#: Train ids of stuff classes (0..10).
STUFF_TRAIN_IDS = tuple(t for t in range(NUM_CLASSES) if t not in THING_TRAIN_IDS)

#: Boolean table over train ids 0..255: True for thing classes.
IS_THING_TRAIN = np.zeros(256, dtype=bool)
IS_THING_TRAIN[list(THING_TRAIN_IDS)] = True

#: Boolean table over label ids 0..255: True for labels with instances (incl. caravan,
#: trailer, which are ignored in evaluation).
HAS_INSTANCES_LABEL = np.zeros(256, dtype=bool)
HAS_INSTANCES_LABEL[[lab.id for lab in LABELS if lab.hasInstances]] = True

#: Name of each label id (dict).
LABEL_NAMES = {lab.id: lab.name for lab in LABELS}


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map official label ids to train ids.

    Parameters
    ----------
    label_ids : ndarray of uint8, any shape

    Returns
    -------
    ndarray of uint8, same shape, 0..18 or 255.

    Examples
    --------
    >>> label_ids_to_train_ids(np.array([7, 26, 0, 255], dtype=np.uint8)).tolist()
    [0, 13, 255, 255]
    """
    return LABEL_TO_TRAIN[np.asarray(label_ids, dtype=np.uint8)]


def train_ids_to_label_ids(train_ids: np.ndarray) -> np.ndarray:
    """Map train ids back to official label ids (IGNORE -> 0, 'unlabeled').

    >>> train_ids_to_label_ids(np.array([0, 13, 255], dtype=np.uint8)).tolist()
    [7, 26, 0]
    """
    return TRAIN_TO_LABEL[np.asarray(train_ids, dtype=np.uint8)]
