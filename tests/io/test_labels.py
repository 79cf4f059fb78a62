"""The label table must be the official one; label spaces are data."""

import dataclasses
import json

import numpy as np
import pytest
from cityscapesscripts.helpers.labels import id2label, labels as cs_labels, trainId2label

from panoptool import labels as L
from panoptool.errors import ConfigError


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


def test_cityscapes_label_space_is_the_official_table_field_by_field():
    rows = [lab for lab in cs_labels if lab.id >= 0]  # 'license plate' (id -1) has no id
    assert len(L.CITYSCAPES.categories) == len(rows)
    for cat, lab in zip(L.CITYSCAPES.categories, rows):
        assert (cat.id, cat.name, cat.train_id, cat.supercategory, cat.supercategory_id,
                cat.has_instances, cat.ignore_in_eval, cat.color) == (
            lab.id, lab.name, lab.trainId, lab.category, lab.categoryId, lab.hasInstances,
            lab.ignoreInEval, lab.color), lab.name
        assert cat.isthing == (lab.hasInstances and not lab.ignoreInEval)
    assert L.LabelSpace.cityscapes() == L.CITYSCAPES and L.CITYSCAPES.ignore == 255
    assert L.CITYSCAPES.num_classes == L.NUM_CLASSES == 19 and L.CITYSCAPES.n_labels == 34


def test_module_names_are_the_fields_of_cityscapes():
    C = L.CITYSCAPES
    assert L.LABEL_TO_TRAIN is C.label_to_train and L.TRAIN_TO_LABEL is C.train_to_label
    assert L.IS_THING_TRAIN is C.is_thing_train and L.KNOWN_LABEL_ID is C.known_label
    assert L.CLASS_NAMES is C.class_names and L.CLASS_COLORS is C.class_colors
    assert L.THING_TRAIN_IDS is C.thing_train_ids and L.THING_LABEL_IDS is C.thing_label_ids
    assert L.IGNORE == C.ignore
    with pytest.raises(ValueError):  # the shared tables are read-only
        L.LABEL_TO_TRAIN[0] = 3


def test_label_space_round_trips_through_json():
    for space in (L.CITYSCAPES, L.LabelSpace("two", (
            L.Category(3, "ground", 1, "flat", 0, False, False, (1, 2, 3)),
            L.Category(200, "cow", 0, "animal", 0, True, False, (4, 5, 6)),
            L.Category(9, "void", 255, "void", 0, False, True, (0, 0, 0))))):
        data = json.loads(json.dumps(space.to_dict()))
        back = L.LabelSpace.from_dict(data)
        assert back == space and back.to_dict() == space.to_dict()
        assert np.array_equal(back.label_to_train, space.label_to_train)


@pytest.mark.parametrize("change, message", [
    (dict(id=7), "distinct"),  # two classes with id 7
    (dict(train_id=5), "0..K-1"),  # train ids 0..17 and 5 twice
    (dict(train_id=255), "if and only if"),  # an evaluated class without a train id
    (dict(color=(0, 0, 300)), "colour"),
])
def test_label_space_validation(change, message):
    cats = list(L.CITYSCAPES.categories)
    cats[8] = dataclasses.replace(cats[8], **change)  # sidewalk
    with pytest.raises(ConfigError, match=message):
        L.LabelSpace("bad", tuple(cats))


def test_from_dict_names_what_is_missing():
    data = L.CITYSCAPES.to_dict()
    del data["categories"][0]["train_id"]
    with pytest.raises(ConfigError, match="train_id"):
        L.LabelSpace.from_dict(data)
