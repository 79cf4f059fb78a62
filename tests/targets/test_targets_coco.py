"""make-targets on a COCO-panoptic dataset: the real two-image sample (43 thing segments, 3
of them crowd), a copy of it whose instance ids exceed 16 bits, the label space in
config.json and the refusal to mix label spaces in one targets folder."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from coco_helpers import describe_sample, sample_json
from panoptool.errors import ConfigError
from panoptool.io.datasets import open_dataset
from panoptool.io.formats import read_targets, target_paths
from panoptool.io.coco_panoptic import label_space, parse_categories
from panoptool.labels import CITYSCAPES, labels_of_config
from panoptool.targets.core import (TargetConfig, _instance_index_wide, compute_targets,
                                   instance_index_map, make_targets)
from panoptool_cli.main import cli


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """(description, targets folder) of the real sample, targets made through the CLI."""
    folder = tmp_path_factory.mktemp("coco_sample")
    desc = describe_sample(folder / "data")
    out = folder / "targets"
    result = CliRunner().invoke(cli, ["make-targets", "--root", str(desc), "--split", "val",
                                      "--out", str(out), "--workers", "1"])
    assert result.exit_code == 0, result.output
    return desc, out


def test_targets_of_the_real_sample(sample):
    desc, out = sample
    dataset = open_dataset(desc)
    labels = dataset.label_space("val")
    assert labels.num_classes == 133 and len(labels.thing_train_ids) == 80
    n_instances = n_crowd = 0
    for s in dataset.samples("val"):
        # no city: the files lie directly in <out>/val/
        assert target_paths(out, "val", s.stem)["offset"].parent == out / "val"
        t = read_targets(out, "val", s.stem)
        label_ids, _ = s.read_ground_truth()
        np.testing.assert_array_equal(t["train_ids"], labels.label_to_train[label_ids])
        ids = s.read_ids()
        things = [seg for seg in s.image.segments if labels.is_thing_label[seg.category_id]]
        instances = [seg for seg in things if not seg.iscrowd]
        crowd = [seg for seg in things if seg.iscrowd]
        assert len(t["centers_yx"]) == len(instances)
        index = t["instance_index"]
        seen = set()
        for seg in instances:  # each non-crowd thing segment is exactly one instance
            mask = ids == seg.id
            values = np.unique(index[mask])
            assert len(values) == 1 and values[0] > 0 and values[0] not in seen
            seen.add(int(values[0]))
            np.testing.assert_array_equal(index == values[0], mask)
            ys, xs = np.nonzero(mask)
            np.testing.assert_allclose(t["centers_yx"][values[0] - 1],
                                       [ys.mean(), xs.mean()], atol=1e-3)
        # crowd: its class, but no instance, no offset and no contour of its own (at
        # dilation 2 the contours of the instances beside it reach 1 px into it)
        thin = compute_targets(label_ids, s.read_ground_truth()[1], TargetConfig(dilation=1),
                               labels)["contour"]
        near = cv2.dilate((index > 0).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        for seg in crowd:
            mask = ids == seg.id
            assert mask.sum() > 400
            assert (mask & ~near).any() and not thin[mask].any()
            assert not t["contour"][mask & ~near].any()
            assert not index[mask].any() and not t["offset_valid"][mask].any()
            assert (t["train_ids"][mask] == labels.label_to_train[seg.category_id]).all()
        assert t["contour"].any()
        n_instances += len(instances)
        n_crowd += len(crowd)
    assert (n_instances, n_crowd) == (40, 3)  # 43 thing segments, 3 of them crowd


def test_config_records_the_label_space_and_the_dataset(sample):
    desc, out = sample
    dataset = open_dataset(desc)
    config = json.loads((out / "config.json").read_text())
    settings = config["settings"]
    assert settings["labels"] == dataset.label_space("val").to_dict()
    assert labels_of_config(config) == dataset.label_space("val")
    assert settings["dataset"] == dataset.describe()
    assert settings["dataset"]["format"] == "coco-panoptic"
    assert settings["root"] == str(desc.resolve())


def test_another_label_space_into_the_same_folder_is_refused(sample, synth_root, tmp_path):
    desc, out = sample
    before = (out / "config.json").read_text()
    # a Cityscapes dataset into COCO targets
    with pytest.raises(ConfigError) as info:
        make_targets(synth_root, "val", out, workers=1, show_progress=False)
    message = str(info.value)
    assert "label spaces differ" in message and str(out / "config.json") in message
    assert str(synth_root) in message and "\n" not in message
    # the sample with one category left out of evaluation: another label space
    other = describe_sample(tmp_path / "other", ignore_categories=[193])
    result = CliRunner().invoke(cli, ["make-targets", "--root", str(other), "--split", "val",
                                      "--out", str(out), "--workers", "1"])
    assert result.exit_code == 1
    line = result.output.strip()
    assert len(line.splitlines()) == 1 and "label spaces differ" in line
    assert str(out / "config.json") in line and str(other) in line
    assert (out / "config.json").read_text() == before
    # the same dataset resumes (nothing to do)
    again = make_targets(desc, "val", out, workers=1, show_progress=False)
    assert (again.done, again.skipped) == (0, 2)
    # an explicit label space is the one recorded and checked
    with pytest.raises(ConfigError, match="label space given"):
        make_targets(desc, "val", out, workers=1, show_progress=False, labels=CITYSCAPES)


def test_instance_ids_beyond_16_bits(sample, tmp_path):
    """Every person (category 1) relabelled toothbrush (90): instance ids 90000.. and the
    same instances, contours and centres as the original."""
    desc, out = sample
    data = sample_json()
    for ann in data["annotations"]:
        for seg in ann["segments_info"]:
            if seg["category_id"] == 1:
                seg["category_id"] = 90
    wide = describe_sample(tmp_path / "wide", data=data)
    dataset = open_dataset(wide)
    assert max(int(s.read_ground_truth()[1].max()) for s in dataset.samples("val")) > 65535
    out_wide = tmp_path / "targets"
    summary = make_targets(wide, "val", out_wide, workers=1, show_progress=False)
    assert summary.instances == 40
    labels = dataset.label_space("val")
    for s in dataset.samples("val"):
        a, b = read_targets(out, "val", s.stem), read_targets(out_wide, "val", s.stem)
        np.testing.assert_array_equal(a["contour"], b["contour"])
        np.testing.assert_array_equal(a["offset_valid"], b["offset_valid"])
        np.testing.assert_array_equal(np.sort(a["centers_yx"], axis=0),
                                      np.sort(b["centers_yx"], axis=0))
        label_ids, _ = s.read_ground_truth()
        np.testing.assert_array_equal(b["train_ids"], labels.label_to_train[label_ids])
        assert (label_ids == 90).any()


def test_wide_ids_by_hand_and_equal_to_the_16_bit_path():
    labels = label_space(parse_categories(sample_json()["categories"], "sample.json"))
    ids = np.array([[90001, 90001, 90, 200, 1000],
                    [90000, 0, 90, 200, 1000]], dtype=np.int32)  # 90: a toothbrush crowd
    index, present, areas = instance_index_map(ids, labels)
    assert index.tolist() == [[3, 3, 0, 0, 1], [2, 0, 0, 0, 1]]
    assert present.tolist() == [1000, 90000, 90001] and areas.tolist() == [2, 1, 2]
    # the general path gives what the histogram gives, on ids that fit 16 bits
    rng = np.random.default_rng(0)
    for space in (labels, CITYSCAPES):
        pool = np.array([0, 7, 24, 26, 90, 184, 1000, 1001, 24000, 24005, 26001, 33001,
                         37000, 64999, 65000, 65535])
        ids = rng.choice(pool, size=(40, 50)).astype(np.int32)
        fast = instance_index_map(ids.astype(np.uint16), space)
        general = _instance_index_wide(ids, space)
        for x, y in zip(fast, general):
            np.testing.assert_array_equal(x, y)
