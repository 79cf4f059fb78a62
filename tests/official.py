"""Test helpers: the official cityscapesscripts evaluators as an oracle, and perturbed predictions.

The official scripts keep their settings in a module-level ``args`` object, print, write
JSON files into the working directory and use ``np.in1d`` (removed in numpy 2.4). The
functions here run them on explicit file lists in a scratch folder, silenced, with those
quirks patched for the duration of the call only.

``make_results`` writes a results folder (semantic/, instance/, panoptic/ + panoptic.json) in
the official formats from the ground truth of a split, with perturbations.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from panoptool.io import formats
from panoptool.io.cityscapes import list_samples, read_ground_truth
from panoptool.io.files import write_json, write_png
from panoptool.evaluation.official import (  # noqa: F401  re-exported for the tests
    official_all, official_instance, official_panoptic, official_semantic)


# --- predictions from the ground truth, perturbed ---------------------------------------------

#: Perturbations understood by :func:`make_results`.
SCENARIOS = ("perfect", "noisy", "empty")


def _perturb_mask(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    op = rng.integers(0, 4)
    kernel = np.ones((3, 3), np.uint8)
    it = int(rng.integers(1, 4))
    if op == 0:
        return cv2.dilate(mask, kernel, iterations=it)
    if op == 1:
        return cv2.erode(mask, kernel, iterations=it)
    if op == 2:  # shift
        return np.roll(mask, (int(rng.integers(-6, 7)), int(rng.integers(-6, 7))), axis=(0, 1))
    return mask


def make_results(root: Path, split: str, out: Path, scenario: str = "noisy",
                 seed: int = 0) -> Path:
    """Write a results folder from the ground truth of a split.

    ``perfect``: the ground truth itself (instances of every thing id, crowd regions left
    out). ``noisy``: dilated/eroded/shifted masks, wrong classes, false positives (also on
    void and crowd), missed instances, duplicates, random confidences with ties, semantic
    noise, panoptic segments merged/dropped. ``empty``: nothing predicted at all (unlabeled
    semantic maps, empty instance lists, all-VOID panoptic images).
    """
    rng = np.random.default_rng(seed)
    thing_labels = [24, 25, 26, 27, 28, 31, 32, 33]
    annotations = []
    for s in list_samples(root, split):
        label_ids, inst = read_ground_truth(s)
        h, w = label_ids.shape
        # semantic
        sem = label_ids.copy()
        if scenario == "noisy":
            noise = rng.random((h, w)) < 0.05
            sem[noise] = rng.choice([7, 8, 11, 21, 23, 26, 24, 0, 4], size=int(noise.sum()))
            y0, x0 = int(rng.integers(0, h // 2)), int(rng.integers(0, w // 2))
            sem[y0:y0 + h // 4, x0:x0 + w // 4] = rng.choice([26, 13, 24])
        elif scenario == "empty":
            sem[:] = 0
        write_png(formats.semantic_result_path(out, s.stem), sem)

        # instance
        lines = []
        k = 0
        ids = np.unique(inst)
        if scenario != "empty":
            for iid in ids:
                lab = iid // 1000 if iid >= 1000 else iid
                if iid < 1000 and scenario == "perfect":
                    continue
                if lab not in thing_labels and not (scenario == "noisy" and lab in (29, 30)):
                    continue
                mask = (inst == iid).astype(np.uint8) * 255
                conf = 1.0
                if scenario == "noisy":
                    if rng.random() < 0.15:
                        continue  # missed
                    mask = _perturb_mask(mask, rng)
                    if rng.random() < 0.1:
                        lab = int(rng.choice(thing_labels))
                    conf = float(rng.choice([0.3, 0.5, 0.5, 0.7, 0.9, rng.random()]))
                    if rng.random() < 0.2:  # duplicate
                        rel = formats.instance_mask_relpath(s.stem, k)
                        write_png(out / formats.INSTANCE_DIR / rel,
                                  _perturb_mask(mask, rng))
                        lines.append(f"{rel} {lab} {float(rng.random()):.4f}")
                        k += 1
                rel = formats.instance_mask_relpath(s.stem, k)
                write_png(out / formats.INSTANCE_DIR / rel, mask)
                lines.append(f"{rel} {lab} {conf}")
                k += 1
            if scenario == "noisy":
                for _ in range(4):  # false positives: random boxes, some on void / crowd
                    mask = np.zeros((h, w), np.uint8)
                    y, x = int(rng.integers(0, h - 20)), int(rng.integers(0, w - 20))
                    mask[y:y + int(rng.integers(8, 40)), x:x + int(rng.integers(8, 60))] = 255
                    rel = formats.instance_mask_relpath(s.stem, k)
                    write_png(out / formats.INSTANCE_DIR / rel, mask)
                    lines.append(f"{rel} {int(rng.choice(thing_labels))} "
                                 f"{float(rng.choice([0.5, rng.random()])):.3f}")
                    k += 1
                for iid in ids[(ids < 1000) & np.isin(ids, [0, 1, 3, 24, 26])]:
                    mask = (inst == iid).astype(np.uint8) * 255  # on void / crowd
                    rel = formats.instance_mask_relpath(s.stem, k)
                    write_png(out / formats.INSTANCE_DIR / rel, mask)
                    lines.append(f"{rel} {int(rng.choice([24, 26]))} 0.6")
                    k += 1
                rel = formats.instance_mask_relpath(s.stem, k)  # empty mask, dropped
                write_png(out / formats.INSTANCE_DIR / rel, np.zeros((h, w), np.uint8))
                lines.append(f"{rel} 26 0.9")
        txt = formats.instance_txt_path(out, s.stem)
        txt.parent.mkdir(parents=True, exist_ok=True)
        txt.write_text("".join(line + "\n" for line in lines))

        # panoptic: ids from the ground truth, perturbed
        pan = np.zeros((h, w), np.int64)
        segments = []
        if scenario != "empty":
            src = inst.astype(np.int64)
            if scenario == "noisy":
                src = src.copy()
                for iid in np.unique(src):
                    if rng.random() < 0.1:
                        src[src == iid] = 0  # dropped segment -> VOID
                # a block of wrong stuff and a dilated instance
                y0, x0 = int(rng.integers(0, h // 2)), int(rng.integers(0, w // 2))
                src[y0:y0 + h // 5, x0:x0 + w // 5] = int(rng.choice([7, 21, 11]))
                things = np.unique(src[src >= 1000])
                for iid in things[: max(1, len(things) // 2)]:
                    grown = cv2.dilate((src == iid).astype(np.uint8), np.ones((3, 3), np.uint8),
                                       iterations=int(rng.integers(1, 6))) > 0
                    src[grown] = iid
            next_id = 1
            for iid in np.unique(src):
                lab = iid // 1000 if iid >= 1000 else iid
                if iid == 0 or lab not in (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23,
                                           *thing_labels):
                    continue
                cat = int(lab)
                if scenario == "noisy" and rng.random() < 0.05:
                    cat = int(rng.choice([7, 26, 24]))
                seg_id = next_id + 100_000 * int(rng.integers(0, 3))
                next_id += 1
                pan[src == iid] = seg_id
                segments.append({"id": int(seg_id), "category_id": cat, "iscrowd": 0})
        write_png(formats.panoptic_png_path(out, s.stem), formats.panoptic_id_to_rgb(pan))
        annotations.append({"image_id": s.stem, "file_name": f"{s.stem}_panoptic.png",
                            "segments_info": segments})
    write_json(formats.panoptic_json_path(out), {"annotations": annotations})
    return out


# --- comparisons ----------------------------------------------------------------------------

TOL = 1e-6


def _close(ours: float, theirs: float, what: str) -> None:
    ours, theirs = float(ours), float(theirs)
    if np.isnan(ours) and np.isnan(theirs):
        return
    assert abs(ours - theirs) <= TOL, f"{what}: panoptool {ours!r} != official {theirs!r}"


def summed_stats(root: Path, split: str, results: Path, order=None):
    """panoptool's summed per-image statistics (no cache), optionally in another order."""
    from panoptool.evaluation.runner import ImageStats, evaluate_image, plan_jobs

    jobs, _ = plan_jobs(root, split, results, None)
    if order is not None:
        jobs = [jobs[i] for i in order]
    total = ImageStats()
    for job in jobs:
        total = total + evaluate_image(job)
    return total


def compare_semantic(stats, official: dict) -> int:
    """Assert every class IoU/iIoU and the means equal; return the number of checks."""
    from panoptool.labels import CLASS_NAMES
    from panoptool.evaluation.metrics import semantic

    res = semantic.compute(stats)
    n = 0
    for t, name in enumerate(CLASS_NAMES):
        _close(res["iou"][t], official["classScores"][name], f"IoU {name}")
        _close(res["iiou"][t], official["classInstScores"][name], f"iIoU {name}")
        n += 2
    _close(res["mIoU"], official["averageScoreClasses"], "mIoU")
    _close(res["iIoU"], official["averageScoreInstClasses"], "iIoU")
    return n + 2


def compare_instance(stats, official: dict) -> int:
    """Assert the AP matrix, per-class AP/AP50 and the averages equal."""
    from panoptool.evaluation.metrics import instance

    res = instance.compute(stats)
    theirs = np.array(official["resultApMatrix"][0], dtype=float)
    assert theirs.shape == res["ap_matrix"].shape
    n = 0
    for c, name in enumerate(instance.INSTANCE_CLASS_NAMES):
        for t in range(theirs.shape[1]):
            _close(res["ap_matrix"][c, t], theirs[c, t], f"AP {name} @{t}")
            n += 1
        _close(res["ap"][c], official["averages"]["classes"][name]["ap"], f"AP {name}")
        _close(res["ap50"][c], official["averages"]["classes"][name]["ap50%"], f"AP50 {name}")
        n += 2
    _close(res["AP"], official["averages"]["allAp"], "AP")
    _close(res["AP50"], official["averages"]["allAp50%"], "AP50")
    return n + 2


def compare_panoptic(stats, official: dict) -> int:
    """Assert PQ/SQ/RQ per category and All/Things/Stuff equal (absent category: official
    0, panoptool NaN)."""
    from panoptool.evaluation.metrics import panoptic

    res = panoptic.compute(stats)
    n = 0
    for i, cat in enumerate(panoptic.CATEGORY_IDS):
        for key in ("pq", "sq", "rq"):
            theirs = official["per_class"][cat][key]
            if np.isnan(res[key][i]):
                assert theirs == 0.0, f"{key} of category {cat}: official {theirs}, ours NaN"
            else:
                _close(res[key][i], theirs, f"{key} category {cat}")
            n += 1
    for group, suffix in (("All", ""), ("Things", "_th"), ("Stuff", "_st")):
        assert res[f"n{suffix}"] == official[group]["n"]
        for key in ("pq", "sq", "rq"):
            _close(res[f"{key.upper()}{suffix}"], official[group][key], f"{key} {group}")
            n += 1
    return n


# --- comparison cases for the three evaluators ------------------------------------------------

def result_cases(make_synth, tmp_path_factory, prefix: str, scenarios, seed_offset: int,
                 extra_noisy: tuple[int, ...] = ()) -> list[tuple[Path, Path]]:
    """``(dataset root, case folder)`` pairs: for two synthetic datasets, a results folder
    (``<case>/res``) per scenario and one per extra noisy seed."""
    cases = []
    for seed in (0, 1):
        root = make_synth(n=3, seed=seed)
        runs = [(s, seed + seed_offset + len(cases)) for s in scenarios]
        runs += [("noisy", extra) for extra in extra_noisy]
        for scenario, result_seed in runs:
            out = tmp_path_factory.mktemp(f"{prefix}_{seed}_{scenario}")
            make_results(root, "val", out / "res", scenario, seed=result_seed)
            cases.append((root, out))
    return cases


def checks_against_official(cases, part: str, official_fn, compare_fn) -> int:
    """Run the official evaluator and ours (``summed_stats(...).<part>``) on every case,
    comparing with ``compare_fn``; returns the number of values compared."""
    checks = 0
    for root, out in cases:
        official = official_fn(root, "val", out / "res", out / "work")
        ours = getattr(summed_stats(root, "val", out / "res"), part)
        checks += compare_fn(ours, official)
    return checks
