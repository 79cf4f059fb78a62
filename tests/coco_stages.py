"""The real two-image COCO-panoptic sample (../shared/data/coco_panoptic_sample, COCO val2017,
CC BY 4.0 annotations) as a dataset of the stages: a description JSON pointing at it, its
targets, and oracle results (``postprocess --oracle``). Shared by the postprocess, evaluation
and visualize tests."""

from __future__ import annotations

import json
from pathlib import Path


from coco_helpers import SAMPLE, describe_sample

GT_JSON = SAMPLE / "panoptic_examples.json"
GT_DIR = SAMPLE / "panoptic_examples"
#: The sample's panoptic segments as COCO detection annotations, written by panopticapi's
#: converters/panoptic2detection_coco_format.py (things and stuff, crowd with iscrowd 1).
DETECTION_JSON = SAMPLE / "panoptic_coco_detection_format.json"
SPLIT = "val"


def describe(folder: Path) -> Path:
    """A dataset description of the sample (absolute paths) in ``folder``."""
    return describe_sample(folder)


def write_targets(root: Path, out: Path, dilation: int = 2) -> Path:
    """Targets of the sample's split, by make-targets (the library call the subcommand
    makes): ``config.json`` records the dataset's label space."""
    from panoptool.targets.core import TargetConfig, make_targets

    make_targets(root, SPLIT, out, TargetConfig(dilation=dilation), workers=1,
                 show_progress=False)
    return out


def oracle_results(tmp: Path, dilation: int = 2, min_area: int = 0, **config) -> Path:
    """The sample's description, targets and ``postprocess --oracle`` results under
    ``tmp``; returns the results folder."""
    from panoptool.postprocess import PostprocessConfig, postprocess_oracle

    root = describe(tmp / "data")
    targets = write_targets(root, tmp / f"targets_d{dilation}", dilation)
    out = tmp / f"oracle_d{dilation}"
    postprocess_oracle(root, SPLIT, targets, out,
                       PostprocessConfig(min_area=min_area, **config), workers=1,
                       show_progress=False)
    return out


def pq_compute(results: Path, gt_json: Path = GT_JSON, gt_dir: Path = GT_DIR) -> dict:
    """panopticapi's PQ (cityscapesscripts' copy, pq_compute_single_core + average_pq) of a
    results folder's panoptic.json and PNGs against the sample (or ``gt_json`` +
    ``gt_dir``); the results name images by stem, the ground truth by COCO image id, so the
    annotations are paired by file stem."""
    from cityscapesscripts.evaluation import evalPanopticSemanticLabeling as m

    gt = json.loads(gt_json.read_text())
    pred = json.loads((results / "panoptic.json").read_text())
    categories = {c["id"]: c for c in gt["categories"]}
    stem_of = {img["id"]: Path(img["file_name"]).stem for img in gt["images"]}
    preds = {a["image_id"]: a for a in pred["annotations"]}
    matched = [(g, preds[stem_of[g["image_id"]]]) for g in gt["annotations"]]
    stat = m.pq_compute_single_core(0, matched, str(gt_dir), str(results / "panoptic"),
                                    categories)
    return m.average_pq(stat, categories)
