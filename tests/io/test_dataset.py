"""The Cityscapes data layer: roots, splits, reading, and clear errors on bad input."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from panoptool.io import cityscapes as dataset
from panoptool.io.cityscapes import (list_samples, read_ground_truth, read_image, read_instance_ids,
                               read_label_ids, resolve_root)
from panoptool.errors import InputError
from panoptool.targets.core import compute_targets, make_targets

from conftest import FIXTURES

TINY = FIXTURES / "tiny_cityscapes"


@pytest.fixture
def root_copy(synth_root, tmp_path):
    """A private, writable copy of the small synthetic dataset."""
    return shutil.copytree(synth_root, tmp_path / "data")


def test_resolve_root_from_argument_and_environment(synth_root, monkeypatch):
    assert resolve_root(synth_root) == synth_root
    monkeypatch.setenv(dataset.ENV_ROOT, str(synth_root))
    assert resolve_root(None) == synth_root
    monkeypatch.delenv(dataset.ENV_ROOT)
    with pytest.raises(InputError, match="--root"):
        resolve_root(None)


def test_root_without_gtfine_is_rejected_naming_it(tmp_path):
    (tmp_path / "leftImg8bit").mkdir()
    with pytest.raises(InputError) as err:
        list_samples(tmp_path, "val")
    assert str(tmp_path) in str(err.value) and "gtFine" in str(err.value)
    with pytest.raises(InputError, match="not found"):
        list_samples(tmp_path / "missing", "val")


def test_missing_or_empty_split_is_rejected(root_copy):
    with pytest.raises(InputError, match="split 'train' not found"):
        list_samples(root_copy, "train")
    (root_copy / "gtFine" / "empty").mkdir()
    with pytest.raises(InputError, match="no \\*_gtFine_labelIds.png"):
        list_samples(root_copy, "empty")


def test_missing_image_is_named(root_copy):
    sample = list_samples(root_copy, "val")[1]
    sample.image_path.unlink()
    list_samples(root_copy, "val")  # ground truth alone is fine
    with pytest.raises(InputError) as err:
        list_samples(root_copy, "val", need_images=True)
    assert sample.image_path.name in str(err.value)


def test_corrupt_png_is_rejected_naming_the_file(root_copy):
    sample = list_samples(root_copy, "val")[0]
    data = sample.label_ids_path.read_bytes()
    sample.label_ids_path.write_bytes(data[: len(data) // 3])  # truncated
    with pytest.raises(InputError) as err:
        read_ground_truth(sample)
    message = str(err.value)
    assert sample.label_ids_path.name in message and "cannot decode" in message
    assert "\n" not in message
    sample.instance_ids_path.write_bytes(b"not a png at all")
    with pytest.raises(InputError, match=sample.instance_ids_path.name):
        read_instance_ids(sample.instance_ids_path)


def test_size_mismatch_between_label_and_instance_ids_is_rejected(root_copy):
    sample = list_samples(root_copy, "val")[0]
    inst = cv2.imread(str(sample.instance_ids_path), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(sample.instance_ids_path), inst[:, :-8])
    with pytest.raises(InputError) as err:
        read_ground_truth(sample)
    message = str(err.value)
    assert sample.instance_ids_path.name in message and "differs" in message
    assert f"{inst.shape[1] - 8}x{inst.shape[0]}" in message


def test_unknown_label_and_instance_ids_are_rejected(root_copy):
    sample = list_samples(root_copy, "val")[0]
    label_ids = cv2.imread(str(sample.label_ids_path), cv2.IMREAD_UNCHANGED)
    label_ids[0, 0] = 200
    cv2.imwrite(str(sample.label_ids_path), label_ids)
    with pytest.raises(InputError, match=r"unknown label id\(s\) \[200\]"):
        read_label_ids(sample.label_ids_path)
    inst = cv2.imread(str(sample.instance_ids_path), cv2.IMREAD_UNCHANGED)
    inst[0, 0] = 60001  # label 60 does not exist
    cv2.imwrite(str(sample.instance_ids_path), inst)
    with pytest.raises(InputError, match="60001"):
        read_instance_ids(sample.instance_ids_path)


def test_wrong_dtype_or_channels_are_rejected(root_copy):
    sample = list_samples(root_copy, "val")[0]
    label_ids = cv2.imread(str(sample.label_ids_path), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(sample.label_ids_path), cv2.merge([label_ids] * 3))
    with pytest.raises(InputError, match="expected 1 channel"):
        read_label_ids(sample.label_ids_path)
    cv2.imwrite(str(sample.label_ids_path), label_ids.astype(np.uint16))
    with pytest.raises(InputError, match="expected dtype uint8"):
        read_label_ids(sample.label_ids_path)


def test_make_targets_reports_a_bad_file_by_name(root_copy, tmp_path):
    sample = list_samples(root_copy, "val")[2]
    sample.instance_ids_path.write_bytes(b"\x89PNG garbage")
    with pytest.raises(InputError, match=sample.instance_ids_path.name):
        make_targets(root_copy, "val", tmp_path / "targets", workers=1)


# --- the small Cityscapes-format images kept in fixtures/ ------------------------------

def test_fixture_dataset_reads_and_gives_consistent_targets():
    samples = list_samples(TINY, "val", need_images=True)
    assert [s.stem for s in samples] == ["synthcity_000000_000000", "synthtown_000000_000001"]
    for sample in samples:
        image = read_image(sample)
        label_ids, instance_ids = read_ground_truth(sample)
        assert image.shape == (64, 128, 3) and label_ids.shape == (64, 128)
        assert instance_ids.dtype == np.int32
        targets = compute_targets(label_ids, instance_ids)
        things = instance_ids >= 1000
        np.testing.assert_array_equal(targets["instance_index"] > 0,
                                      things & np.isin(instance_ids // 1000,
                                                       [24, 25, 26, 27, 28, 31, 32, 33]))
        assert len(targets["centers_yx"]) >= 5
        assert targets["contour"][targets["train_ids"] == 10].sum() < 10  # barely any in sky


def test_fixture_dataset_through_make_targets(tmp_path):
    summary = make_targets(TINY, "val", tmp_path / "targets", workers=1)
    assert summary.done == 2 and summary.instances >= 10
