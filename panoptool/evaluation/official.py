"""The official cityscapesscripts evaluators, run on a results folder (the reference).

panoptool's own evaluator (:mod:`panoptool.evaluation.runner`) equals these to 1e-6 and is much
faster; these wrappers exist so tests and ``panoptool bench`` can run the reference on the
same files. The official scripts keep their settings in a module-level ``args`` object,
print, write JSON files into the working directory and use ``np.in1d`` (removed in numpy
2.4). The functions here run them on explicit file lists in a scratch folder, silenced, with
those quirks patched for the duration of the call only.

They read Cityscapes' files (``gtFine``'s labelIds and instanceIds) and Cityscapes' label
table only: on any other dataset (a COCO-panoptic one) they refuse with one line; panoptool's
evaluator is the one for those (its PQ equals panopticapi's ``pq_compute`` there).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import numpy as np

from panoptool.errors import ConfigError
from panoptool.io import formats
from panoptool.io.cityscapes import list_samples as _list_samples


@contextlib.contextmanager
def _official_environment(workdir: Path):
    """cwd = workdir, stdout silenced, ``np.in1d`` restored if numpy removed it."""
    added = not hasattr(np, "in1d")
    if added:
        np.in1d = lambda a, b, invert=False: np.isin(np.asarray(a).ravel(), b, invert=invert)
    old_cwd = os.getcwd()
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        os.chdir(old_cwd)
        if added:
            del np.in1d


def require_cityscapes(root) -> Path:
    """``root`` if it is a Cityscapes root; ConfigError (one line) for any other dataset."""
    from panoptool.io.datasets import CityscapesDataset, open_dataset

    dataset = open_dataset(root)
    if not isinstance(dataset, CityscapesDataset):
        raise ConfigError(f"{dataset.root}: the official cityscapesscripts evaluators need a "
                          f"Cityscapes root (gtFine/), not a {dataset.kind} dataset; "
                          f"panoptool's own report evaluates it")
    return Path(dataset.root)


def list_samples(root, split: str) -> list:
    """The samples of a Cityscapes split (:func:`require_cityscapes` first)."""
    return _list_samples(require_cityscapes(root), split)


def official_semantic(root: Path, split: str, results: Path, workdir: Path) -> dict:
    """evalPixelLevelSemanticLabeling on every image of the split; its result dict."""
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as m

    samples = list_samples(root, split)
    gts = [str(s.label_ids_path) for s in samples]
    preds = [str(formats.semantic_result_path(results, s.stem)) for s in samples]
    m.args.quiet = True
    m.args.JSONOutput = False
    m.args.evalInstLevelScore = True
    m.args.evalPixelAccuracy = False
    with _official_environment(workdir):
        return m.evaluateImgLists(preds, gts, m.args)


def official_instance(root: Path, split: str, results: Path, workdir: Path) -> dict:
    """evalInstanceLevelSemanticLabeling on every image of the split; its result dict."""
    from cityscapesscripts.evaluation import evalInstanceLevelSemanticLabeling as m

    samples = list_samples(root, split)
    gts = [str(s.instance_ids_path) for s in samples]
    preds = [str(formats.instance_txt_path(results, s.stem)) for s in samples]
    workdir.mkdir(parents=True, exist_ok=True)
    m.args.quiet = True
    m.args.JSONOutput = False
    m.args.gtInstancesFile = str(workdir / "gtInstances.json")  # fresh: no stale cache
    if os.path.exists(m.args.gtInstancesFile):
        os.remove(m.args.gtInstancesFile)
    m.args.predictionPath = os.path.abspath(results)
    m.args.predictionWalk = None
    original = m.writeDict2JSON

    def write_dict(data, path):  # numpy 2 scalars are not JSON-serialisable there
        with open(path, "w") as fh:
            json.dump(data, fh, default=lambda o: o.item() if isinstance(o, np.generic)
                      else o.__dict__)

    m.writeDict2JSON = write_dict
    try:
        with _official_environment(workdir):
            return m.evaluateImgLists(preds, gts, m.args)
    finally:
        m.writeDict2JSON = original


def official_panoptic(root: Path, split: str, results: Path, workdir: Path) -> dict:
    """createPanopticImgs + pq_compute (single process) on the split; the results dict."""
    from cityscapesscripts.evaluation import evalPanopticSemanticLabeling as m
    from cityscapesscripts.preparation.createPanopticImgs import convert2panoptic

    require_cityscapes(root)
    gt_out = workdir / "panoptic_gt"
    gt_out.mkdir(parents=True, exist_ok=True)
    with _official_environment(workdir):
        convert2panoptic(str(Path(root) / "gtFine"), str(gt_out), False, [split])
        gt_json = json.loads((gt_out / f"cityscapes_panoptic_{split}.json").read_text())
        pred_json = json.loads(formats.panoptic_json_path(results).read_text())
        categories = {el["id"]: el for el in gt_json["categories"]}
        preds = {el["image_id"]: el for el in pred_json["annotations"]}
        matched = [(g, preds[g["image_id"]]) for g in gt_json["annotations"]]
        stat = m.pq_compute_single_core(0, matched, str(gt_out / f"cityscapes_panoptic_{split}"),
                                        str(Path(results) / formats.PANOPTIC_DIR), categories)
        return m.average_pq(stat, categories)


def official_all(root: Path, split: str, results: Path, workdir: Path) -> dict:
    """All three official evaluations (panoptic ground truth conversion included)."""
    return {"semantic": official_semantic(root, split, results, workdir),
            "instance": official_instance(root, split, results, workdir),
            "panoptic": official_panoptic(root, split, results, workdir)}
