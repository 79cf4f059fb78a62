"""The synthetic dataset: encodings, hard cases, determinism, layout."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from panoptool.io.cityscapes import list_samples, read_ground_truth, read_image
from panoptool.errors import ConfigError
from panoptool.labels import KNOWN_LABEL_ID, THING_LABEL_IDS
from panoptool.synth.scenes import SynthConfig, make_dataset, make_scene, stem_of

CAR, PERSON, POLE = 26, 24, 17
SCENES = [make_scene(seed, 192, 384) for seed in range(6)]


def touching_pairs(ids: np.ndarray) -> set[tuple[int, int]]:
    """Pairs of distinct instance ids that are 4-neighbours somewhere."""
    pairs = set()
    for a, b in ((ids[:, 1:], ids[:, :-1]), (ids[1:, :], ids[:-1, :])):
        differ = a != b
        for x, y in zip(a[differ].tolist(), b[differ].tolist()):
            pairs.add((min(x, y), max(x, y)))
    return pairs


@pytest.mark.parametrize("kwargs, message", [
    (dict(n=0, height=64, width=64, seed=0), "n must be >= 1"),
    (dict(n=1, height=16, width=64, seed=0), "at least 32x32"),
    (dict(n=1, height=64, width=64, seed=-1), "seed must be >= 0"),
    (dict(n=1.5, height=64, width=64, seed=0), "n must be an integer"),
    (dict(n=1, height=64, width=64, seed=0, split="../x"), "plain folder name"),
])
def test_config_is_validated(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SynthConfig(**kwargs)


def test_encodings_are_the_cityscapes_ones():
    for image, label_ids, instance_ids in SCENES:
        assert image.dtype == np.uint8 and image.shape == (192, 384, 3)
        assert label_ids.dtype == np.uint8 and instance_ids.dtype == np.uint16
        assert KNOWN_LABEL_ID[label_ids].all()
        things = instance_ids >= 1000
        np.testing.assert_array_equal(instance_ids[things] // 1000, label_ids[things])
        np.testing.assert_array_equal(instance_ids[~things], label_ids[~things])
        # instance numbering per class starts at 0 (label*1000 + k)
        assert (instance_ids[things] % 1000).min() == 0


def test_scenes_hold_the_hard_cases():
    classes, crowd, split_by_pole, small, touching_cars = set(), 0, 0, 0, 0
    for _, label_ids, ids in SCENES:
        classes |= {int(c) for c in np.unique(label_ids)}
        is_thing_label = np.isin(label_ids, THING_LABEL_IDS)
        crowd += int((is_thing_label & (ids < 1000)).sum())
        areas = {int(i): int((ids == i).sum()) for i in np.unique(ids[ids >= 1000])}
        small += sum(1 for a in areas.values() if a < 0.0005 * ids.size)
        for inst in areas:
            if inst // 1000 != CAR:
                continue
            n, comp = cv2.connectedComponents((ids == inst).astype(np.uint8), connectivity=8)
            if n - 1 >= 2:  # split in two; by a pole?
                between = cv2.dilate((ids == inst).astype(np.uint8), np.ones((3, 3), np.uint8))
                if ((between > 0) & (label_ids == POLE)).any():
                    split_by_pole += 1
        touching_cars += sum(1 for a, b in touching_pairs(ids)
                             if a // 1000 == b // 1000 == CAR and a >= 1000 and b >= 1000)
    stuff = {7, 8, 11, 17, 21, 23}
    things = {24, 25, 26, 33} | ({27} if 27 in classes else {28})
    void = {1, 3}
    assert stuff | things | void <= classes, sorted(classes)
    assert crowd > 0, "no crowd region"
    assert split_by_pole >= 3, "poles do not cut cars in two"
    assert small >= 3, "no small far objects"
    assert touching_cars >= 6, "no touching same-class instances"


def test_void_border_and_ego_vehicle():
    for _, label_ids, _ in SCENES:
        assert (label_ids[:, 0] == 3).all() and (label_ids[0, :] == 3).all()
        assert (label_ids[-3, 150:230] == 1).all()  # ego vehicle at the bottom centre


def test_touching_instances_look_different():
    """Neighbouring car instances differ in mean colour, so their contour can be seen."""
    diffs = []
    for image, _, ids in SCENES:
        for a, b in touching_pairs(ids):
            if a >= 1000 and b >= 1000 and a // 1000 == b // 1000 == CAR:
                ma, mb = (image[ids == i].reshape(-1, 3).astype(float).mean(0) for i in (a, b))
                diffs.append(np.abs(ma - mb).sum())
    assert diffs and min(diffs) > 3 and np.median(diffs) > 15


def test_classes_are_separable_by_colour():
    """A nearest-class-mean colour classifier already gets most pixels right."""
    image, label_ids, _ = SCENES[0]
    pixels = image.reshape(-1, 3).astype(np.float32)
    labels = label_ids.ravel()
    present = np.unique(labels)
    means = np.stack([pixels[labels == c].mean(0) for c in present])
    image2, label_ids2, _ = SCENES[1]
    p2 = image2.reshape(-1, 3).astype(np.float32)
    guess = present[np.argmin(((p2[:, None, :] - means[None]) ** 2).sum(-1), axis=1)]
    assert (guess == label_ids2.ravel()).mean() > 0.75


def test_scene_is_deterministic_per_seed():
    a = make_scene((3, 1), 64, 128)
    b = make_scene((3, 1), 64, 128)
    c = make_scene((3, 2), 64, 128)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[2], c[2])


def test_dataset_layout_is_readable_by_the_data_layer(make_synth):
    root = make_synth(n=3, height=64, width=128, seed=1, split="train")
    samples = list_samples(root, "train", need_images=True)
    assert [s.stem for s in samples] == sorted(stem_of(i) for i in range(3))
    assert {s.city for s in samples} == {"synthcity", "synthtown"}
    for i, sample in enumerate(sorted(samples, key=lambda s: int(s.stem[-6:]))):
        label_ids, instance_ids = read_ground_truth(sample)
        image = read_image(sample)
        want = make_scene((1, i), 64, 128)
        np.testing.assert_array_equal(image, want[0])
        np.testing.assert_array_equal(label_ids, want[1])
        np.testing.assert_array_equal(instance_ids, want[2])
    config = json.loads((root / "synth-train.json").read_text())
    assert config["stage"] == "synth" and config["settings"]["seed"] == 1


def test_dataset_does_not_depend_on_workers(tmp_path):
    config = SynthConfig(n=4, height=48, width=96, seed=7)
    one = make_dataset(tmp_path / "one", config, workers=1, show_progress=False)
    two = make_dataset(tmp_path / "two", config, workers=2, show_progress=False)
    assert one == two
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.png"))
    assert len(files) == 12
    for rel in files:
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes()
