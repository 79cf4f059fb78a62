"""The seeded derivation (``derivation="seeded"``): components grown over the contour band,
band objects that no component reaches kept as instances."""

from __future__ import annotations

import dataclasses
import heapq
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from panoptool.errors import ConfigError
from panoptool.labels import IS_THING_TRAIN
from panoptool.postprocess import PostprocessConfig, derive_panoptic
from panoptool.postprocess import kernels
from panoptool_cli.main import cli

CAR, PERSON, ROAD = 13, 11, 0
PAPER = PostprocessConfig(split=False, merge=False, min_area=0, eps=5.0, min_samples=4,
                          cell=1.0)
SEEDED = PostprocessConfig(split=False, merge=False, min_area=0, eps=5.0, min_samples=4,
                           cell=1.0, derivation="seeded")


def centred_offsets(instance_map: np.ndarray) -> np.ndarray:
    """(2, H, W) offsets from each pixel to its instance's centroid (0 off instances)."""
    h, w = instance_map.shape
    off = np.zeros((2, h, w), np.float32)
    yy, xx = np.mgrid[:h, :w]
    for k in np.unique(instance_map[instance_map > 0]):
        m = instance_map == k
        off[0][m] = yy[m].mean() - yy[m]
        off[1][m] = xx[m].mean() - xx[m]
    return off


def derive(tid, prob, truth, config):
    conf = np.full(tid.shape, 0.9, np.float32)
    return derive_panoptic(tid, conf, prob, centred_offsets(truth), config)


def masks_of(res) -> list[set[int]]:
    flat = res.instance_ids.ravel()
    return sorted((set(np.flatnonzero(flat == k).tolist())
                   for k in range(1, len(res.instances) + 1)), key=min)


def truth_masks(truth) -> list[set[int]]:
    flat = truth.ravel()
    return sorted((set(np.flatnonzero(flat == k).tolist())
                   for k in np.unique(flat[flat > 0])), key=min)


def swallowed_scene():
    """A 20x20 car, a 3x3 car wholly inside its contour band touching it (offsets to its own
    centre), and a 2x3 car alone on the road, wholly contour (a far, thin object)."""
    h, w = 32, 40
    tid = np.full((h, w), ROAD, np.uint8)
    truth = np.zeros((h, w), np.int32)
    tid[5:25, 5:25] = CAR
    truth[5:25, 5:25] = 1
    tid[12:15, 25:28] = CAR           # touches the big car's right side
    truth[12:15, 25:28] = 2
    tid[28:30, 33:36] = CAR           # alone
    truth[28:30, 33:36] = 3
    prob = np.zeros((h, w), np.float32)
    for k in (1, 2, 3):                # 1-px inner boundaries, dilated once (d = 2)
        m = truth == k
        inner = m & ~(np.roll(m, 1, 0) & np.roll(m, -1, 0) & np.roll(m, 1, 1)
                      & np.roll(m, -1, 1))
        prob[inner] = 1.0
    band = np.zeros_like(prob)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            band = np.maximum(band, np.roll(np.roll(prob, dy, 0), dx, 1))
    prob = band * (tid == CAR)
    assert prob[truth == 2].min() == 1 and prob[truth == 3].min() == 1
    return tid, prob, truth


def test_small_instance_inside_the_band_survives_seeded_and_is_lost_by_paper():
    tid, prob, truth = swallowed_scene()
    paper = derive(tid, prob, truth, PAPER)
    seeded = derive(tid, prob, truth, SEEDED)
    # the paper's derivation: one component (the big car); the touching small car is
    # filled into it, the lone one left void
    assert len(paper.instances) == 1
    assert paper.instance_ids[28:30, 33:36].max() == 0
    assert len(set(paper.instance_ids[truth == 2].tolist())) == 1
    # seeded: all three, each exactly its own pixels
    assert masks_of(seeded) == truth_masks(truth)
    assert [s.label_id for s in seeded.instances] == [26, 26, 26]
    assert [s.area for s in seeded.instances] == [400, 9, 6]


def test_two_touching_instances_separated_by_a_contour_stay_two_with_their_own_pixels():
    """A 4-px band off-centre between two cars (3 columns on the left car, 1 on the right):
    the paper's geodesic fill splits the band in the middle, the seeded growth follows the
    predicted centres and gives each car exactly its pixels."""
    h, w = 30, 50
    tid = np.full((h, w), ROAD, np.uint8)
    tid[5:25, 0:40] = CAR
    truth = np.zeros((h, w), np.int32)
    truth[5:25, 0:20] = 1
    truth[5:25, 20:40] = 2
    prob = np.zeros((h, w), np.float32)
    prob[5:25, 17:21] = 0.9
    seeded = derive(tid, prob, truth, SEEDED)
    assert masks_of(seeded) == truth_masks(truth)
    paper = derive(tid, prob, truth, PAPER)
    assert len(paper.instances) == 2 and masks_of(paper) != truth_masks(truth)


def test_band_pixels_only_join_an_instance_whose_centre_they_point_to():
    """Band pixels pointing more than eps away from the only instance that reaches them form
    an instance of their own; with a large eps they join it."""
    tid, prob, truth = swallowed_scene()
    loose = derive(tid, prob, truth, dataclasses.replace(SEEDED, band_eps=30.0))
    # the small car's centre is ~13 px from the big car's: within 30 px, so it is swallowed;
    # so it is without a limit (band_eps 0), where only the lone car is an instance of its own
    for config in (loose, derive(tid, prob, truth, dataclasses.replace(SEEDED, band_eps=0.0))):
        assert len(config.instances) == 2
        assert config.instance_ids[28:30, 33:36].min() > 0
        assert config.instance_ids[truth == 2].tolist() == [1] * 9
    # a new instance needs min_samples predicted centres within eps of its mean: the lone
    # car's 6 pixels pass 6, not 7 (then it stays void: no instance reaches it)
    six = derive(tid, prob, truth, dataclasses.replace(SEEDED, min_samples=6))
    seven = derive(tid, prob, truth, dataclasses.replace(SEEDED, min_samples=7))
    assert six.instance_ids[28:30, 33:36].min() > 0
    assert seven.instance_ids[28:30, 33:36].max() == 0 and len(seven.instances) == 2


def test_classes_are_respected_and_band_regions_of_two_classes_stay_apart():
    tid, prob, truth = swallowed_scene()
    tid[12:15, 25:28] = PERSON  # the touching small object is a person now
    res = derive(tid, prob, truth, SEEDED)
    assert masks_of(res) == truth_masks(truth)
    assert sorted(s.train_id for s in res.instances) == [PERSON, CAR, CAR]


def random_maps(seed: int, h: int = 40, w: int = 60):
    rng = np.random.default_rng(seed)
    tid = rng.choice(np.array([ROAD, CAR, CAR, PERSON], np.uint8), size=(h // 4, w // 4))
    tid = np.kron(tid, np.ones((4, 4), np.uint8))
    tid[rng.random((h, w)) < 0.05] = CAR
    prob = (rng.random((h, w)) < 0.35).astype(np.float32)
    # offsets to the centre of each pixel's 4x4 block, with a little noise
    yy, xx = np.mgrid[:h, :w]
    off = np.stack([yy // 4 * 4 + 1.5 - yy, xx // 4 * 4 + 1.5 - xx]).astype(np.float32)
    off += rng.normal(0, 0.5, off.shape).astype(np.float32)
    conf = rng.uniform(0.5, 1, (h, w)).astype(np.float32)
    return tid, conf, prob, off


@pytest.mark.parametrize("seed", range(6))
def test_every_thing_pixel_ends_in_an_instance_and_no_band_means_no_change(seed):
    tid, conf, prob, off = random_maps(seed)
    config = PostprocessConfig(min_area=0, eps=4.0, min_samples=1, cell=1.0,
                               derivation="seeded")
    res = derive_panoptic(tid, conf, prob, off, config)
    thing = IS_THING_TRAIN[tid]
    assert (res.instance_ids[thing] > 0).all()
    assert (res.instance_ids[~thing] == 0).all()
    paper = derive_panoptic(tid, conf, prob, off, PostprocessConfig(min_area=0, eps=4.0,
                                                                    min_samples=1, cell=1.0))
    assert (paper.instance_ids[thing] == 0).any()  # the paper's derivation loses some
    # without contour pixels there is nothing to grow: the two derivations agree
    zero = np.zeros_like(prob)
    a = derive_panoptic(tid, conf, zero, off, config)
    b = derive_panoptic(tid, conf, zero, off, PostprocessConfig(min_area=0, eps=4.0,
                                                                min_samples=1, cell=1.0))
    assert np.array_equal(a.instance_ids, b.instance_ids)
    assert np.array_equal(a.panoptic_ids, b.panoptic_ids) and a.segments == b.segments


def grow_reference(labels, targets, train_ids, classes, cy, cx, mean_y, mean_x, limit2, n):
    """Plain seeded region growing with heapq (same order rules as the kernel: distance in
    steps of 1/4 px up to 1023 steps, then first queued)."""
    h, w = labels.shape
    lab = labels.copy()
    pos = {int(q): p for p, q in enumerate(targets)}
    heap, counter = [], 0

    def neighbours(q):
        y, x = divmod(q, w)
        return [r for r, ok in ((q - w, y > 0), (q - 1, x > 0), (q + 1, x < w - 1),
                                (q + w, y < h - 1)) if ok]

    flat = lab.ravel()

    def offer(q, k):
        nonlocal counter
        if q not in pos or flat[q] != 0 or train_ids.ravel()[q] != classes[k]:
            return
        p = pos[q]
        d2 = (cy[p] - mean_y[k]) ** 2 + (cx[p] - mean_x[k]) ** 2
        if d2 <= limit2:
            step = int(min(math.sqrt(d2) * kernels.GROW_STEPS, kernels.GROW_BUCKETS - 1))
            heapq.heappush(heap, (step, counter, q, k))
            counter += 1

    for q in targets:
        for r in neighbours(int(q)):
            if flat[r] > 0:
                offer(int(q), int(flat[r]))
    while heap:
        _, _, q, k = heapq.heappop(heap)
        if flat[q] != 0:
            continue
        flat[q] = k
        for r in neighbours(q):
            offer(r, k)
    # leftovers: 4-connected same-class groups, raster order
    for q in targets:
        q = int(q)
        if flat[q] != 0:
            continue
        n += 1
        flat[q] = n
        todo = [q]
        while todo:
            s = todo.pop()
            for r in neighbours(s):
                if r in pos and flat[r] == 0 and train_ids.ravel()[r] == train_ids.ravel()[q]:
                    flat[r] = n
                    todo.append(r)
    return flat[targets].astype(np.int32), n


@pytest.mark.parametrize("seed", range(8))
def test_grow_kernel_equals_a_plain_reference(seed):
    import cv2

    rng = np.random.default_rng(seed)
    h, w = 24, 31
    tid = rng.choice(np.array([ROAD, CAR, PERSON], np.uint8), size=(h, w), p=[0.2, 0.5, 0.3])
    band = rng.random((h, w)) < 0.4
    fg = (IS_THING_TRAIN[tid] & ~band).astype(np.uint8)
    n, comps = cv2.connectedComponents(fg, connectivity=4)
    n -= 1
    classes = np.full(n + 1, 255, np.uint8)
    for k in range(1, n + 1):
        classes[k] = tid[comps == k][0]  # components may mix classes; take one
    targets = np.flatnonzero((IS_THING_TRAIN[tid] & band).ravel())
    cy = rng.uniform(0, h, len(targets))
    cx = rng.uniform(0, w, len(targets))
    mean_y = rng.uniform(0, h, n + 1)
    mean_x = rng.uniform(0, w, n + 1)
    if seed == 7:  # distances beyond the last step (256 px): first queued first
        mean_y, mean_x = mean_y * 40, mean_x * 40
    # integer-valued centres make equal keys (ties) common
    if seed % 2:
        cy, cx, mean_y, mean_x = (np.round(a) for a in (cy, cx, mean_y, mean_x))
    limit2 = [np.inf, 40.0][seed % 4 >= 2]
    want, n_want = grow_reference(comps.astype(np.int32), targets, tid, classes, cy, cx,
                                  mean_y, mean_x, limit2, n)
    flat = comps.astype(np.int32).ravel()
    got, n_got = kernels.grow_seeds(flat, w, targets.astype(np.intp), tid.ravel(), classes,
                                    cy, cx, mean_y, mean_x, limit2, n)
    assert n_got == n_want
    assert np.array_equal(got, want)
    assert np.array_equal(flat[targets], got)


def test_bad_derivation_is_refused():
    with pytest.raises(ConfigError, match="derivation must be one of paper, seeded"):
        PostprocessConfig(derivation="watershed")
    with pytest.raises(ConfigError, match="band_eps must be >= 0"):
        PostprocessConfig(band_eps=-1.0)
    assert PostprocessConfig(eps=7.0).band_limit == 7.0
    assert PostprocessConfig(band_eps=0.0).band_limit == float("inf")
    assert PostprocessConfig(derivation="seeded").steps[0] == "grow"
    assert "grow" not in PostprocessConfig().steps
    r = CliRunner().invoke(cli, ["postprocess", "--maps", "m", "--out", "o",
                                 "--derivation", "nope"])
    assert r.exit_code == 2 and "--derivation" in r.output


def test_cli_seeded_is_independent_of_workers_and_recorded(tmp_path):
    from panoptool.io import formats
    from panoptool.io.files import write_json

    maps = tmp_path / "maps"
    for i in range(3):
        tid, conf, prob, off = random_maps(10 + i, 64, 128)
        formats.write_maps(formats.maps_path(maps, "val", f"city_{i:06d}_000019"),
                           train_ids=tid, confidence=conf, contour_prob=prob, offset_yx=off)
    write_json(maps / "config.json", formats.stage_config("infer", {"model": "test"}))
    outs = []
    for workers in ("1", "2"):
        out = tmp_path / f"res{workers}"
        r = CliRunner().invoke(cli, ["postprocess", "--maps", str(maps), "--out", str(out),
                                     "--derivation", "seeded", "--min-area", "0", "--eps",
                                     "4", "--min-samples", "5", "--cell", "1", "--workers",
                                     workers], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        outs.append({str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
                     if p.is_file() and p.name != "config.json"})
        settings = json.loads((out / "config.json").read_text())["settings"]
        assert settings["derivation"] == "seeded"
    assert outs[0] == outs[1] and len(outs[0]) > 6


def test_a_piece_cut_off_by_another_object_joins_its_body():
    """A car crossed by a 1-px person (a pole's neighbour): its 3-column right piece lies
    wholly in the band, no car pixel connects it to the body; its offsets point to the car's
    centre, so with merge it joins the car; without merge it is an instance of its own; the
    paper's derivation leaves it void."""
    h, w = 20, 30
    tid = np.full((h, w), ROAD, np.uint8)
    truth = np.zeros((h, w), np.int32)
    tid[4:16, 2:20] = CAR
    truth[4:16, 2:20] = 1
    tid[4:16, 16] = PERSON
    truth[4:16, 16] = 2
    prob = np.zeros((h, w), np.float32)
    prob[4:16, 17:20] = 1.0
    prob[4:16, 15] = 1.0
    off = centred_offsets(truth)
    conf = np.ones((h, w), np.float32)
    merged = derive_panoptic(tid, conf, prob, off, dataclasses.replace(SEEDED, merge=True))
    car = merged.instance_ids[4:16, 17:20]
    assert car.min() == car.max() == merged.instance_ids[10, 5] > 0
    alone = derive_panoptic(tid, conf, prob, off, SEEDED)
    assert alone.instance_ids[4:16, 17:20].min() > 0
    assert alone.instance_ids[10, 18] != alone.instance_ids[10, 5]
    paper = derive_panoptic(tid, conf, prob, off, dataclasses.replace(PAPER, merge=True))
    assert paper.instance_ids[4:16, 17:20].max() == 0


def test_cli_band_eps_defaults_to_no_limit_on_maps_and_is_kept_off_for_paper(tmp_path):
    from panoptool.io import formats
    from panoptool.io.files import write_json

    maps = tmp_path / "maps"
    tid, conf, prob, off = random_maps(3, 64, 128)
    formats.write_maps(formats.maps_path(maps, "val", "city_000000_000019"), train_ids=tid,
                       confidence=conf, contour_prob=prob, offset_yx=off)
    write_json(maps / "config.json", formats.stage_config("infer", {"model": "test"}))
    got = {}
    for name, extra in (("paper", []), ("seeded", ["--derivation", "seeded"]),
                        ("limit", ["--derivation", "seeded", "--band-eps", "3"])):
        out = tmp_path / name
        r = CliRunner().invoke(cli, ["postprocess", "--maps", str(maps), "--out", str(out),
                                     "--workers", "1", *extra], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        got[name] = json.loads((out / "config.json").read_text())["settings"]["band_eps"]
    assert got == {"paper": None, "seeded": 0.0, "limit": 3.0}


def test_band_pixels_beyond_band_eps_still_go_to_the_nearest_centre():
    """Band pixels that point 1 px beside their car's centre, with band_eps 0.5: the first
    growth takes none of them, their group has no support (its mean lies between the cars),
    and the unlimited second growth gives each car its own band pixels (a geodesic fill
    would split the off-centre band in the middle)."""
    h, w = 30, 50
    tid = np.full((h, w), ROAD, np.uint8)
    tid[5:25, 0:40] = CAR
    truth = np.zeros((h, w), np.int32)
    truth[5:25, 0:20] = 1
    truth[5:25, 20:40] = 2
    prob = np.zeros((h, w), np.float32)
    prob[5:25, 17:21] = 0.9
    off = centred_offsets(truth)
    band = prob > 0.5
    off[1][band] += 1.0
    res = derive_panoptic(tid, np.ones((h, w), np.float32), prob, off,
                          dataclasses.replace(SEEDED, band_eps=0.5))
    assert masks_of(res) == truth_masks(truth)
