"""Training targets: semantic trainIds, instance contours, centre offsets, the runner."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from cityscapesscripts.helpers.labels import id2label
from scipy import ndimage

from panoptool.io import formats
from panoptool.targets import core as targets
from panoptool.io.cityscapes import list_samples, read_ground_truth
from panoptool.errors import ArrayError, ConfigError
from panoptool.labels import THING_LABEL_IDS
from panoptool.synth.scenes import make_scene
from panoptool.targets.core import (TargetConfig, compute_targets, contour_target, make_targets,
                               offset_target, semantic_target)

ROAD, SIDEWALK, POLE, PERSON, CAR, CARAVAN = 7, 8, 17, 24, 26, 29


def reference_boundary(instance_ids: np.ndarray) -> np.ndarray:
    """Plain per-instance implementation: mask minus its 4-connected erosion, where the
    erosion replicates the image border (so the border is not a boundary)."""
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    out = np.zeros(instance_ids.shape, dtype=bool)
    for inst in np.unique(instance_ids):
        if inst < 1000 or inst // 1000 not in THING_LABEL_IDS:
            continue
        mask = (instance_ids == inst).astype(np.uint8)
        eroded = cv2.erode(mask, cross, borderType=cv2.BORDER_REPLICATE)
        out |= (mask > 0) & (eroded == 0)
    return out


def reference_contour(instance_ids: np.ndarray, dilation: int) -> np.ndarray:
    edge = reference_boundary(instance_ids).astype(np.uint8)
    for _ in range(dilation - 1):  # one 3x3 dilation at a time, written out
        padded = np.pad(edge, 1)
        edge = np.max([padded[dy:dy + edge.shape[0], dx:dx + edge.shape[1]]
                       for dy in range(3) for dx in range(3)], axis=0)
    return edge


# --- semantic --------------------------------------------------------------------------

def test_semantic_target_matches_cityscapesscripts_mapping(synth_root):
    label_ids, _ = read_ground_truth(list_samples(synth_root, "val")[0])
    official = np.full(256, 255, dtype=np.uint8)
    for label_id, label in id2label.items():
        if label_id >= 0:
            official[label_id] = label.trainId if 0 <= label.trainId < 255 else 255
    expected = official[label_ids]
    got = semantic_target(label_ids)
    assert got.dtype == np.uint8 and got.shape == label_ids.shape
    np.testing.assert_array_equal(got, expected)
    assert len(np.unique(got)) >= 10  # the comparison covered many classes


# --- contours --------------------------------------------------------------------------

def test_contour_of_known_mask_equals_hand_checked_array():
    # road; a car 26000 (4x3) touching a car 26001 (3x3) on its right; a person crowd (24)
    ids = np.array([
        [7, 7, 7, 7, 7, 7, 7, 7, 7],
        [7, 26000, 26000, 26000, 26000, 26001, 26001, 26001, 7],
        [7, 26000, 26000, 26000, 26000, 26001, 26001, 26001, 7],
        [7, 26000, 26000, 26000, 26000, 26001, 26001, 26001, 7],
        [7, 26000, 26000, 26000, 26000, 7, 24, 24, 7],
        [7, 7, 7, 7, 7, 7, 24, 24, 7],
    ])
    expected_d1 = np.array([
        [0, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 1, 1, 1, 1, 1, 1, 1, 0],
        [0, 1, 0, 0, 1, 1, 0, 1, 0],
        [0, 1, 0, 0, 1, 1, 1, 1, 0],
        [0, 1, 1, 1, 1, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 0],
    ], dtype=np.uint8)
    np.testing.assert_array_equal(contour_target(ids, dilation=1), expected_d1)
    expected_d2 = np.array([
        [1, 1, 1, 1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1, 0, 0, 0],
    ], dtype=np.uint8)
    np.testing.assert_array_equal(contour_target(ids, dilation=2), expected_d2)


def test_touching_instances_of_one_class_are_separated():
    ids = np.full((40, 60), ROAD)
    ids[10:30, 5:30] = 26000
    ids[10:30, 30:55] = 26001  # touches 26000 along column 29/30
    contour = contour_target(ids, dilation=2)
    # the shared boundary is on the contour, on both sides
    assert contour[12:28, 29].all() and contour[12:28, 30].all()
    # removing contour pixels leaves the two instances as two separate components
    n, comp = cv2.connectedComponents(((ids >= 1000) & (contour == 0)).astype(np.uint8),
                                      connectivity=8)
    assert n - 1 == 2
    assert len(np.unique(comp[ids == 26000])) == 2 and len(np.unique(comp[ids == 26001])) == 2


def test_contour_width_grows_with_dilation():
    _, _, ids = make_scene(4, 128, 256)
    maps = [contour_target(ids, d) for d in (1, 2, 3, 4)]
    counts = [int(m.sum()) for m in maps]
    assert counts == sorted(counts) and len(set(counts)) == 4, counts
    for thinner, thicker in zip(maps, maps[1:]):
        assert (thicker >= thinner).all()  # each one contains the thinner one
    # across a long vertical boundary the band is 2d pixels wide (d on each side)
    ids = np.full((30, 40), ROAD)
    ids[:, 20:] = 26000
    # d=1: only the instance's own column 20; d=2: columns 19..21; d=3: 18..22
    np.testing.assert_array_equal(np.flatnonzero(contour_target(ids, 1)[15]), [20])
    np.testing.assert_array_equal(np.flatnonzero(contour_target(ids, 2)[15]), [19, 20, 21])
    np.testing.assert_array_equal(np.flatnonzero(contour_target(ids, 3)[15]),
                                  [18, 19, 20, 21, 22])


def test_no_contour_in_stuff_or_around_crowd_or_non_evaluated_things():
    ids = np.full((50, 70), ROAD)
    ids[5:20, 5:30] = SIDEWALK  # stuff next to stuff
    ids[25:45, 10:30] = PERSON  # a crowd region: label id only
    ids[25:45, 40:60] = CARAVAN * 1000 + 1  # caravan: has instances, not evaluated
    ids[10:15, 50:52] = POLE
    assert contour_target(ids, 1).sum() == 0
    assert contour_target(ids, 3).sum() == 0
    index, centers = offset_target(ids)
    assert index.max() == 0 and centers.shape == (0, 2)


def test_crowd_touching_an_instance_only_outlines_the_instance():
    ids = np.full((30, 40), ROAD)
    ids[5:25, 5:20] = PERSON  # crowd
    ids[5:25, 20:35] = PERSON * 1000  # an instance touching the crowd
    contour = contour_target(ids, 1)
    assert contour[:, :20].sum() == 0  # nothing inside or around the crowd itself
    assert contour[10:20, 20].all()  # the instance's side facing the crowd is a boundary


def test_image_border_is_not_a_boundary():
    ids = np.full((20, 30), 26000)  # one car filling the image
    assert contour_target(ids, 1).sum() == 0
    ids[:, 15:] = 26001
    np.testing.assert_array_equal(np.flatnonzero(contour_target(ids, 1)[0]), [14, 15])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dilation", [1, 2, 3])
def test_vectorised_contour_equals_plain_per_instance_version(seed, dilation):
    _, _, ids = make_scene(seed, 96, 192)
    np.testing.assert_array_equal(contour_target(ids, dilation), reference_contour(ids, dilation))


def test_contour_stays_near_thing_instances():
    _, label_ids, ids = make_scene(7, 128, 256)
    thing = offset_target(ids)[0] > 0
    for d in (1, 2, 3):
        contour = contour_target(ids, d).astype(bool)
        near = cv2.dilate(thing.astype(np.uint8), np.ones((3, 3), np.uint8),
                          iterations=d - 1) > 0
        assert not (contour & ~near).any()
        if d == 1:
            assert not (contour & ~thing).any()


# --- offsets ---------------------------------------------------------------------------

def test_offsets_of_a_rectangle_point_exactly_to_its_centroid():
    ids = np.full((40, 50), ROAD, dtype=np.int32)
    ids[10:21, 7:30] = 26003  # rows 10..20, columns 7..29 -> centroid (15, 18)
    ids[30:34, 40:44] = PERSON  # crowd: no offsets
    ids[0:5, 0:5] = SIDEWALK
    index, centers = offset_target(ids)
    assert index.dtype == np.uint16 and centers.dtype == np.float32
    np.testing.assert_array_equal(centers, [[15.0, 18.0]])
    offset_yx, valid = formats.decode_offsets(index, centers)
    np.testing.assert_array_equal(valid, ids == 26003)
    rows, cols = np.nonzero(valid)
    np.testing.assert_array_equal(rows + offset_yx[0][valid], np.full(rows.size, 15.0))
    np.testing.assert_array_equal(cols + offset_yx[1][valid], np.full(cols.size, 18.0))
    assert (offset_yx[:, ~valid] == 0).all()
    assert (index[ids != 26003] == 0).all()


def test_offset_centres_equal_scipy_centre_of_mass_on_synthetic_scenes():
    for seed in range(3):
        _, _, ids = make_scene(seed, 128, 256)
        index, centers = offset_target(ids)
        thing_ids = [i for i in np.unique(ids) if i >= 1000 and i // 1000 in THING_LABEL_IDS]
        assert len(centers) == len(thing_ids) >= 5
        expected = np.array(ndimage.center_of_mass(np.ones(ids.shape), ids, thing_ids))
        np.testing.assert_allclose(centers, expected, atol=1e-4)
        for k, inst in enumerate(thing_ids, start=1):  # index k <-> k-th id, sorted
            np.testing.assert_array_equal(index == k, ids == inst)


def test_bad_arrays_and_settings_are_rejected():
    with pytest.raises(ConfigError, match="dilation"):
        TargetConfig(dilation=0)
    with pytest.raises(ConfigError, match="dilation"):
        TargetConfig(dilation=1.5)
    with pytest.raises(ArrayError, match="2-d"):
        contour_target(np.zeros((2, 3, 4), dtype=np.int32))
    with pytest.raises(ArrayError, match="0..255999"):
        offset_target(np.array([[256000, 7]], dtype=np.int32))
    with pytest.raises(ArrayError, match="0..255999"):
        offset_target(np.array([[-1, 7]], dtype=np.int32))
    with pytest.raises(ArrayError, match="differ in size"):
        compute_targets(np.zeros((4, 5), np.uint8), np.zeros((4, 6), np.int32))


# --- the runner ------------------------------------------------------------------------

def test_make_targets_writes_readable_targets_and_resumes(synth_root, tmp_path):
    out = tmp_path / "targets"
    summary = make_targets(synth_root, "val", out, TargetConfig(dilation=2), workers=1)
    samples = list_samples(synth_root, "val")
    assert (summary.images, summary.done, summary.skipped) == (len(samples), len(samples), 0)
    assert summary.instances > 0 and 0 < summary.contour_fraction < 0.5
    for sample in samples:
        got = formats.read_targets(out, "val", sample.stem)
        want = compute_targets(*read_ground_truth(sample), TargetConfig(dilation=2))
        for key in ("train_ids", "contour", "instance_index", "centers_yx"):
            np.testing.assert_array_equal(got[key], want[key])
    config = json.loads((out / "config.json").read_text())
    assert config["stage"] == "make-targets" and config["settings"]["dilation"] == 2
    assert config["settings"]["split"] == "val"
    assert config["upstream"]["stage"] == "synth"  # provenance of the synthetic data

    again = make_targets(synth_root, "val", out, TargetConfig(dilation=2), workers=1)
    assert (again.done, again.skipped) == (0, len(samples))
    redo = make_targets(synth_root, "val", out, TargetConfig(dilation=2), workers=1,
                        overwrite=True)
    assert (redo.done, redo.skipped) == (len(samples), 0)


def test_make_targets_refuses_to_mix_dilations(synth_root, tmp_path):
    out = tmp_path / "targets"
    make_targets(synth_root, "val", out, TargetConfig(dilation=2), workers=1)
    with pytest.raises(ConfigError, match="dilation=2.*dilation=3"):
        make_targets(synth_root, "val", out, TargetConfig(dilation=3), workers=1)
    redo = make_targets(synth_root, "val", out, TargetConfig(dilation=3), workers=1,
                        overwrite=True)
    assert redo.done == redo.images
    assert json.loads((out / "config.json").read_text())["settings"]["dilation"] == 3


def test_make_targets_parallel_equals_serial(make_synth, tmp_path):
    root = make_synth(n=4, height=64, width=128, seed=5)
    make_targets(root, "val", tmp_path / "one", workers=1)
    make_targets(root, "val", tmp_path / "two", workers=2)
    pngs = sorted((tmp_path / "one").rglob("*.png"))
    assert len(pngs) == 8
    for path in pngs:
        twin = tmp_path / "two" / path.relative_to(tmp_path / "one")
        assert path.read_bytes() == twin.read_bytes(), path.name
    for sample in list_samples(root, "val"):
        one = formats.read_targets(tmp_path / "one", "val", sample.stem)
        two = formats.read_targets(tmp_path / "two", "val", sample.stem)
        for key in one:
            np.testing.assert_array_equal(one[key], two[key])


def test_interrupted_make_targets_leaves_no_partial_file_and_resumes(synth_root, tmp_path,
                                                                     monkeypatch):
    out = tmp_path / "targets"
    samples = list_samples(synth_root, "val")
    real_write_array = np.lib.format.write_array
    calls = {"n": 0}

    def dying_write_array(fh, array, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # the offsets file of the 3rd image: write half, then die
            fh.write(b"\x93NUMPY" + b"\0" * 100)
            raise KeyboardInterrupt
        return real_write_array(fh, array, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", dying_write_array)
    with pytest.raises(KeyboardInterrupt):
        make_targets(synth_root, "val", out, workers=1)
    monkeypatch.setattr(np.lib.format, "write_array", real_write_array)

    leftovers = [p.name for p in out.rglob("*") if p.name.startswith(".tmp-")]
    assert leftovers == []
    done = [s.stem for s in samples if targets.is_done(out, "val", s.stem)]
    assert done == [s.stem for s in samples[:2]]
    third = formats.target_paths(out, "val", samples[2].stem)
    assert not third["offset"].exists()
    for path in out.rglob("*.png"):  # whatever exists under a final name is complete
        assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED) is not None, path
    for stem in done:
        formats.read_targets(out, "val", stem)

    resumed = make_targets(synth_root, "val", out, workers=1)
    assert (resumed.skipped, resumed.done) == (2, len(samples) - 2)
    for sample in samples:
        formats.read_targets(out, "val", sample.stem)


@pytest.mark.parametrize("n_instances", [3, 300])
def test_offsets_file_round_trips_with_a_small_or_large_instance_count(tmp_path, n_instances):
    rng = np.random.default_rng(0)
    index = rng.integers(0, n_instances + 1, (20, 30)).astype(np.uint16)
    index[0, 0] = n_instances
    centers = rng.uniform(0, 20, (n_instances, 2)).astype(np.float32)
    tid = np.zeros((20, 30), np.uint8)
    formats.write_targets(tmp_path, "val", "a_000000_000000", train_ids=tid, contour=tid,
                          instance_index=index, centers_yx=centers)
    stored = np.load(formats.target_paths(tmp_path, "val", "a_000000_000000")["offset"])
    assert stored["instance_index"].dtype == (np.uint8 if n_instances < 256 else np.uint16)
    back = formats.read_targets(tmp_path, "val", "a_000000_000000")
    assert back["instance_index"].dtype == np.uint16
    np.testing.assert_array_equal(back["instance_index"], index)
    np.testing.assert_array_equal(back["centers_yx"], centers)
