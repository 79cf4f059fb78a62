"""The label table must be the official one."""

import numpy as np
from cityscapesscripts.helpers.labels import id2label, labels as cs_labels, trainId2label

from panoptool import labels as L


def test_train_ids_match_cityscapesscripts():
    for lab in cs_labels:
        if lab.id < 0:
            continue
        expected = lab.trainId if 0 <= lab.trainId < 255 else 255
        assert L.LABEL_TO_TRAIN[lab.id] == expected, lab.name


def test_inverse_mapping_takes_first_label_like_cityscapesscripts():
    for t in range(L.NUM_CLASSES):
        assert L.TRAIN_TO_LABEL[t] == trainId2label[t].id
    assert L.TRAIN_TO_LABEL[255] == 0


def test_thing_classes():
    things = {lab.id for lab in cs_labels if lab.hasInstances and not lab.ignoreInEval}
    assert set(L.THING_LABEL_IDS) == things
    assert [L.CLASS_NAMES[t] for t in L.THING_TRAIN_IDS] == [
        "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"]
    assert len(L.STUFF_TRAIN_IDS) == 11
    assert L.IS_THING_TRAIN[list(L.THING_TRAIN_IDS)].all()
    assert not L.IS_THING_TRAIN[list(L.STUFF_TRAIN_IDS)].any()


def test_colors_and_unknown_ids():
    assert tuple(L.CLASS_COLORS[0]) == id2label[7].color
    assert not L.KNOWN_LABEL_ID[34] and L.KNOWN_LABEL_ID[33]
    assert L.label_ids_to_train_ids(np.array([34, 200], np.uint8)).tolist() == [255, 255]
