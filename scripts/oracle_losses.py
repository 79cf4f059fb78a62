#!/usr/bin/env python
"""Where the oracle loses: per ground-truth thing instance, what the derivation made of it.

    python scripts/oracle_losses.py ROOT TARGETS [--split val] [--derivation paper] \
        [--min-area 0 --eps 5 --cell 1 --min-samples 6]

Counts, over the split's non-crowd thing instances (matching: same class, IoU > 0.5, as PQ):

- matched: a predicted instance with IoU > 0.5;
- lost: no connected component at all inside the instance (every pixel in the contour band)
  and no predicted instance overlapping it by more than half;
- merged: the predicted instance holding most of its pixels holds more of another
  ground-truth instance's (``merged_in_components``: already one component before
  refinement; else joined by the merge step);
- split: its pixels spread over several predicted instances, none with more than half;
- other: the rest (e.g. fill-back gave too many of its pixels away).

Also: false-positive predicted instances (no ground truth with IoU > 0.5) and the
fill-back errors: contour-band pixels of matched instances that went to another instance
or stayed void.
"""

from __future__ import annotations

import argparse
import collections
import json

import cv2
import numpy as np

from panoptool.io.cityscapes import list_samples, read_ground_truth
from panoptool.labels import LABEL_TO_TRAIN, IS_THING_TRAIN
from panoptool.postprocess import PostprocessConfig
from panoptool.postprocess.instances import thing_components
from panoptool.postprocess.panoptic import derive_instances
from panoptool.postprocess.runner import oracle_maps


def _overlaps(a: np.ndarray, b: np.ndarray) -> dict[tuple[int, int], int]:
    """Pixel counts of each (a, b) label pair where both are > 0."""
    both = (a > 0) & (b > 0)
    pairs, counts = np.unique(np.stack([a[both], b[both]]), axis=1, return_counts=True)
    return {(int(x), int(y)): int(c) for (x, y), c in zip(pairs.T, counts)}


def analyse_image(root, split, targets, sample, config) -> collections.Counter:
    out = collections.Counter()
    label_ids, gt_ids = read_ground_truth(sample)
    maps = oracle_maps(root, split, targets, sample.stem)
    train_ids = maps["train_ids"]
    gt = np.where((gt_ids >= 1000) & IS_THING_TRAIN[LABEL_TO_TRAIN[gt_ids // 1000 % 256]],
                  gt_ids, 0)
    comps, _, _ = thing_components(train_ids, maps["contour_prob"], config.contour_threshold,
                                   config.connectivity)
    pred, classes, _, areas = derive_instances(train_ids, maps["confidence"],
                                               maps["contour_prob"], maps["offset_yx"], config)
    gt_labels, gt_area = np.unique(gt[gt > 0], return_counts=True)
    gt_area = dict(zip(gt_labels.tolist(), gt_area.tolist()))
    gt_class = {g: int(LABEL_TO_TRAIN[g // 1000]) for g in gt_area}
    ov = _overlaps(gt, pred)
    ov_comp = _overlaps(gt, comps)
    by_gt = collections.defaultdict(dict)
    by_pred = collections.defaultdict(dict)
    for (g, p), c in ov.items():
        by_gt[g][p] = c
        by_pred[p][g] = c
    comp_by_gt = collections.defaultdict(dict)
    gt_by_comp = collections.defaultdict(dict)
    for (g, k), c in ov_comp.items():
        comp_by_gt[g][k] = c
        gt_by_comp[k][g] = c
    band = maps["contour_prob"] > config.contour_threshold
    # connected regions of each thing class (4-connected), and those holding a component
    region = np.zeros(train_ids.shape, np.int32)
    top = 0
    for c in np.unique(train_ids[IS_THING_TRAIN[train_ids]]):
        n_r, lab = cv2.connectedComponents((train_ids == c).view(np.uint8), connectivity=4)
        region[lab > 0] = lab[lab > 0] + top
        top += n_r
    seeded = np.unique(region[comps > 0])
    ignored = (gt_ids < 1000) & (gt_ids > 0) & IS_THING_TRAIN[LABEL_TO_TRAIN[gt_ids % 256]]
    ignored |= LABEL_TO_TRAIN[label_ids] == 255
    matched_pred = set()
    matched_gt = set()
    _is_matched = matched_gt.__contains__
    for g, area in gt_area.items():
        out["gt"] += 1
        best, iou = 0, 0.0
        for p, c in by_gt[g].items():
            if classes[p] != gt_class[g]:
                continue
            u = area + areas[p] - c
            if c / u > iou:
                best, iou = p, c / u
        if iou > 0.5:
            out["matched"] += 1
            out["iou_sum"] += iou
            matched_pred.add(best)
            matched_gt.add(g)
            m = (gt == g) & band
            out["band_px"] += int(m.sum())
            out["band_px_wrong"] += int((m & (pred != best)).sum())
            continue
        out[f"unmatched_area_lt{_bucket(area)}"] += 1
        if not comp_by_gt[g]:
            out["lost"] += 1
            # alone in its connected region of its class (no seed anywhere in it), or
            # touching same-class instances that have components
            reg = region[gt == g]
            reg = reg[reg > 0]
            if reg.size and not np.isin(reg, seeded).any():
                out["lost_alone_in_region"] += 1
            continue
        hold = max(by_gt[g].items(), key=lambda kv: kv[1]) if by_gt[g] else (0, 0)
        p, c = hold
        if p and c * 2 > area:
            others = {h: n for h, n in by_pred[p].items() if h != g}
            if others and max(others.values()) > c:
                out["merged"] += 1
                # was it one component already (connectivity), or the merge step?
                ks = comp_by_gt[g]
                k = max(ks, key=ks.get)
                if any(h in gt_by_comp[k] for h in others):
                    out["merged_in_components"] += 1
                continue
            out["other"] += 1
            continue
        if len(by_gt[g]) >= 2:
            out["split"] += 1
            if len(comp_by_gt[g]) >= 2:
                out["split_in_components"] += 1
            continue
        out["other"] += 1
    for p in range(1, len(areas)):
        if areas[p] and p not in matched_pred:
            if (ignored & (pred == p)).sum() * 2 > areas[p]:
                continue  # on crowd or void: not counted by PQ
            out["false_positive"] += 1
            if by_pred[p]:
                g = max(by_pred[p], key=by_pred[p].get)
                out["false_positive_in_matched_gt" if _is_matched(g) else
                    "false_positive_in_unmatched_gt"] += 1
    return out


def _bucket(area: int) -> int:
    for limit in (20, 50, 100, 300):
        if area < limit:
            return limit
    return 10 ** 9


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root")
    ap.add_argument("targets")
    ap.add_argument("--split", default="val")
    ap.add_argument("--min-area", type=int, default=0)
    ap.add_argument("--eps", type=float, default=5.0)
    ap.add_argument("--cell", type=float, default=1.0)
    ap.add_argument("--min-samples", type=int, default=6)
    ap.add_argument("--derivation", default=None)
    a = ap.parse_args(argv)
    kw = dict(min_area=a.min_area, eps=a.eps, cell=a.cell, min_samples=a.min_samples)
    if a.derivation:
        kw["derivation"] = a.derivation
    config = PostprocessConfig(**kw)
    total = collections.Counter()
    for sample in list_samples(a.root, a.split):
        total += analyse_image(a.root, a.split, a.targets, sample, config)
    total["mean_iou_matched"] = total.pop("iou_sum", 0) / max(total["matched"], 1)
    print(json.dumps(dict(sorted(total.items())), indent=1))


if __name__ == "__main__":
    main()
