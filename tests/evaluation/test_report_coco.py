"""report on a COCO-panoptic dataset, end to end on the real two-image sample
(../shared/data/coco_panoptic_sample): targets (targets.core with the dataset's label space) ->
postprocess --oracle -> report. PQ/SQ/RQ equal panopticapi's pq_compute (cityscapesscripts'
copy) on the written panoptic results, mIoU a direct numpy computation, COCO mask AP
pycocotools' COCOeval run directly on the sample's own detection-format ground truth
(panopticapi's converter) and on detections encoded here from the written masks."""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from coco_stages import DETECTION_JSON, GT_JSON, SPLIT, oracle_results, pq_compute
from panoptool.errors import ConfigError
from panoptool.evaluation.runner import evaluate
from panoptool.io.datasets import open_dataset
from panoptool.io.files import read_json, read_png, write_json, write_png
from panoptool.labels import CITYSCAPES, LABELS_KEY
from panoptool_cli.main import cli


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    """(dataset description, oracle results at dilation 2, min-area 39: the paper's 300 px
    scaled to 640x427, postprocess.config.scale_area)."""
    tmp = tmp_path_factory.mktemp("coco_report")
    out = oracle_results(tmp, dilation=2, min_area=39)
    return tmp / "data" / "panoptool_dataset.json", out


def _evaluate(root, results, **kw):
    return evaluate(root, SPLIT, results, workers=1, show_progress=False, cache=False, **kw)


def test_pq_equals_pq_compute_on_the_oracle_results(oracle):
    root, results = oracle
    res = _evaluate(root, results)
    ref = pq_compute(results)
    for group, suffix in (("All", ""), ("Things", "_th"), ("Stuff", "_st")):
        for key in ("pq", "sq", "rq"):
            assert res.metrics[key.upper() + suffix] / 100 == pytest.approx(
                ref[group][key], abs=1e-11), (group, key)
    assert res.metrics["PQ_th"] < 99.5  # the oracle loses things: the test is not trivial
    labels = open_dataset(root).label_space(SPLIT)
    table = res.per_class_table
    assert table["class"].tolist() == list(labels.class_names) and len(table["class"]) == 133
    for k, cat in enumerate(labels.by_train_id):
        per = ref["per_class"][cat.id]
        if np.isnan(table["PQ"][k]):  # absent category: the official code reports 0
            assert per["pq"] == 0 and per["rq"] == 0
            continue
        for key in ("pq", "sq", "rq"):
            assert table[key.upper()][k] / 100 == pytest.approx(per[key], abs=1e-11)


def _perturbed_semantic(root, folder):
    """A semantic-only results folder: the ground truth's category ids shifted by 7 px,
    a block relabelled, a band set to void."""
    labels = open_dataset(root).label_space(SPLIT)
    preds = {}
    for s in open_dataset(root).samples(SPLIT):
        gt, _ = s.read_ground_truth()
        pred = np.roll(gt, 7, axis=1)
        pred[50:120, 100:300] = 193  # grass-merged
        pred[:, :20] = 0  # void: a miss of every class there
        pred = np.where(labels.known_label[pred], pred, 0).astype(np.uint8)
        write_png(folder / "semantic" / f"{s.stem}_pred_labelIds.png", pred)
        preds[s.stem] = (gt, pred)
    return preds, labels


def _numpy_miou(preds, labels) -> tuple[float, dict]:
    """mIoU by the rule of the README: crowd pixels are their category, void (and the
    categories not evaluated) is left out of the false positives; a prediction of void on
    a class pixel is a miss."""
    inter, fn, fp = {}, {}, {}
    for gt, pred in preds.values():
        evaluated = labels.is_evaluated_label[gt]
        for c in labels.evaluated_label_ids:
            g, p = gt == c, pred == c
            inter[c] = inter.get(c, 0) + int((g & p).sum())
            fn[c] = fn.get(c, 0) + int((g & ~p).sum())
            fp[c] = fp.get(c, 0) + int((p & ~g & evaluated).sum())
    iou = {c: inter[c] / (inter[c] + fn[c] + fp[c])
           for c in inter if inter[c] + fn[c] + fp[c] > 0}
    return float(np.mean(list(iou.values()))), iou


def test_miou_equals_a_direct_confusion_count(oracle, tmp_path):
    root, _ = oracle
    preds, labels = _perturbed_semantic(root, tmp_path / "sem")
    res = _evaluate(root, tmp_path / "sem")
    miou, iou = _numpy_miou(preds, labels)
    assert 20 < 100 * miou < 95
    assert res.metrics["mIoU"] == pytest.approx(100 * miou, abs=1e-9)
    table = res.per_class_table
    for c, value in iou.items():
        assert table["IoU"][labels.label_to_train[c]] == pytest.approx(100 * value, abs=1e-9)
    assert res.parts == ("semantic",) and res.metrics["PQ"] is None
    # the oracle's semantic result is the ground truth: 100 on every class present
    assert _evaluate(root, oracle[1]).metrics["mIoU"] == 100.0


def _cocoeval(gt: dict, dets: list) -> list[float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(dets), iouType="segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [100 * v for v in ev.stats[:6]]


def test_coco_mask_ap_equals_cocoeval_on_the_sample_detection_json(oracle):
    """Ground truth: the sample's panoptic_coco_detection_format.json (panopticapi's own
    conversion: one annotation per segment, crowd with iscrowd 1), thing categories only.
    Detections: the oracle's instance/*_pred.txt masks, encoded here with pycocotools."""
    from pycocotools import mask as mask_utils

    root, results = oracle
    det_format = json.loads(DETECTION_JSON.read_text())
    thing_ids = {c["id"] for c in json.loads(GT_JSON.read_text())["categories"]
                 if c["isthing"]}
    things = [c for c in det_format["categories"] if c["id"] in thing_ids]
    assert len(things) == 80
    # annotation ids from 1: the file counts from 0, and COCOeval takes a match to an
    # annotation of id 0 for no match (its dtm holds the matched id, 0 = none)
    gt = {"images": det_format["images"], "categories": things,
          "annotations": [dict(a, id=k + 1) for k, a in enumerate(
              a for a in det_format["annotations"] if a["category_id"] in thing_ids)]}
    assert sum(a["iscrowd"] for a in gt["annotations"]) == 3
    image_id = {img["file_name"].rsplit(".", 1)[0]: img["id"] for img in gt["images"]}
    dets = []
    for stem, iid in image_id.items():
        for line in (results / "instance" / f"{stem}_pred.txt").read_text().splitlines():
            rel, label, score = line.split()
            mask = read_png(results / "instance" / rel) > 0
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode()
            # with the mask's box, as instances.json holds it: loadRes then takes the
            # detection's area (AP_S/M/L) from the box (evaluation/coco.py's docstring)
            dets.append({"image_id": iid, "category_id": int(label), "score": float(score),
                         "segmentation": rle, "bbox": mask_utils.toBbox(rle).tolist()})
    ref = _cocoeval(gt, dets)
    keys = ("coco_AP", "coco_AP50", "coco_AP75", "coco_AP_S", "coco_AP_M", "coco_AP_L")
    for source in ("json", "txt"):
        if source == "txt":  # the same masks read from instance/ (no instances.json)
            txt_only = results.parent / "txt_only"
            shutil.copytree(results, txt_only, dirs_exist_ok=True)
            (txt_only / "instances.json").unlink()
            res = _evaluate(root, txt_only)
        else:
            res = _evaluate(root, results)
        for key, value in zip(keys, ref):
            if value < 0:
                assert res.metrics[key] is None, key
            else:
                assert res.metrics[key] == pytest.approx(value, abs=1e-9), (source, key)
    assert 80 < res.metrics["coco_AP"] < 100
    # Cityscapes-style AP is defined on any label space: computed on the sample's things
    assert res.metrics["AP"] is not None and 80 < res.metrics["AP"] <= 100


def test_results_of_another_label_space_are_refused(oracle, tmp_path):
    root, results = oracle
    other = tmp_path / "other"
    shutil.copytree(results, other)
    config = read_json(other / "config.json")
    config["settings"][LABELS_KEY] = CITYSCAPES.to_dict()
    write_json(other / "config.json", config)
    res = CliRunner().invoke(cli, ["report", "--root", str(root), "--split", SPLIT,
                                   "--results", str(other), "--out", str(tmp_path / "rep"),
                                   "--no-cache", "--workers", "1"])
    assert res.exit_code != 0
    message = res.output.strip()
    assert "\n" not in message and "label spaces differ" in message
    assert "'coco-sample' (133 classes, 80 things)" in message
    assert "'cityscapes' (19 classes, 8 things)" in message and "config.json" in message
    # results that record no label space (another method's) are read as the dataset's
    del config["settings"][LABELS_KEY]
    config["upstream"] = None
    write_json(other / "config.json", config)
    assert _evaluate(root, other).metrics["PQ"] == _evaluate(root, results).metrics["PQ"]


def test_report_cli_writes_tables_with_the_dataset_names(oracle, tmp_path):
    root, results = oracle
    out = tmp_path / "rep"
    res = CliRunner().invoke(cli, ["report", "--root", str(root), "--split", SPLIT,
                                   "--results", str(results), "--out", str(out),
                                   "--cache-dir", str(tmp_path / "cache"), "--workers", "1"])
    assert res.exit_code == 0, res.output
    metrics = read_json(out / "metrics.json")
    assert metrics["PQ"] == pytest.approx(100 * pq_compute(results)["All"]["pq"], abs=1e-9)
    csv = (out / "per_class.csv").read_text().splitlines()
    assert len(csv) == 1 + 133 and csv[1].startswith("0,person,")
    assert any(line.split(",")[1] == "tree-merged" for line in csv)
    md = (out / "summary.md").read_text()
    assert "Label space `coco-sample` (133 classes, 80 things)" in md and "pq_compute" in md
    assert (tmp_path / "cache" / "gt" / SPLIT / "000000142238.arrays").is_file()
    assert (tmp_path / "cache" / "coco_gt" / SPLIT / "000000142238.json").is_file()
    # from the cache: the same numbers
    again = evaluate(root, SPLIT, results, workers=1, show_progress=False,
                     cache=tmp_path / "cache")
    assert again.metrics == metrics


def test_cache_entry_of_an_edited_ground_truth_is_not_used(oracle, tmp_path):
    """The key holds the PNG's digest and the segments: a cache written for other segments
    (here: the same PNG with another category) is recomputed."""
    from panoptool.evaluation.coco_panoptic import read_sample_ground_truth

    root, _ = oracle
    s = open_dataset(root).samples(SPLIT)[0]
    cache = tmp_path / "gt.arrays"
    first = read_sample_ground_truth(s.png_path, s.image, s.thing_ids, cache)
    assert cache.is_file()
    segs = list(s.image.segments)
    segs[-1] = type(segs[-1])(segs[-1].id, 125, segs[-1].iscrowd)  # grass -> gravel
    edited = type(s.image)(**{**s.image.__dict__, "segments": tuple(segs)})
    second = read_sample_ground_truth(s.png_path, edited, s.thing_ids, cache)
    assert first.label_ids[-1] == 193 and second.label_ids[-1] == 125
    assert read_sample_ground_truth(s.png_path, edited, s.thing_ids, cache).label_ids[-1] == 125


def test_the_official_evaluators_refuse_a_coco_dataset(oracle, tmp_path):
    from panoptool.evaluation.official import official_all

    root, results = oracle
    with pytest.raises(ConfigError) as err:
        official_all(root, SPLIT, results, tmp_path)
    message = str(err.value)
    assert "\n" not in message and "need a Cityscapes root" in message
    assert "coco-panoptic dataset" in message and str(root) in message


def test_two_segments_of_one_stuff_category_stay_apart_as_in_pq_compute(tmp_path):
    """A ground truth whose sky is two segments (left and right half, one category), the
    original one-segment sky as the prediction: panopticapi matches the prediction with
    neither half (IoU <= 0.5 each), so PQ counts 2 FN + 1 FP where grouping the ground truth
    by instance id (Cityscapes' rule) would count a TP."""
    from coco_stages import GT_DIR, SAMPLE
    from panoptool.io.coco_panoptic import ids_to_rgb, rgb_to_ids
    from panoptool.io.datasets import write_description

    gt = json.loads(GT_JSON.read_text())
    (tmp_path / "gt").mkdir()
    for ann in gt["annotations"]:
        rgb = read_png(GT_DIR / ann["file_name"])
        if ann["image_id"] == 439180:
            ids = rgb_to_ids(rgb)
            sky = ids == 11829830
            cols = np.flatnonzero(sky.any(axis=0))
            right = sky & (np.arange(ids.shape[1]) >= (cols[0] + cols[-1]) // 2)[None, :]
            ids[right] = 11829831
            rgb = ids_to_rgb(ids)
            for seg in ann["segments_info"]:
                if seg["id"] == 11829830:
                    seg["area"] = int((sky & ~right).sum())  # pq_compute reads the areas
            ann["segments_info"].append({"id": 11829831, "category_id": 187, "iscrowd": 0,
                                         "area": int(right.sum())})
        write_png(tmp_path / "gt" / ann["file_name"], rgb)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    root = write_description(tmp_path / "panoptool_dataset.json",
                             {SPLIT: {"images": str(SAMPLE / "images"), "panoptic_json": "gt.json",
                                      "panoptic_dir": "gt"}}, name="split-sky")
    # results: the original ground truth, as a results folder (image_id = stem)
    results = tmp_path / "results"
    (results / "panoptic").mkdir(parents=True)
    original = json.loads(GT_JSON.read_text())
    anns = []
    for ann in original["annotations"]:
        stem = ann["file_name"].rsplit(".", 1)[0]
        shutil.copy(GT_DIR / ann["file_name"], results / "panoptic" / f"{stem}_panoptic.png")
        anns.append({"image_id": stem, "file_name": f"{stem}_panoptic.png",
                     "segments_info": ann["segments_info"]})
    write_json(results / "panoptic.json", {"annotations": anns,
                                           "categories": original["categories"]})
    res = evaluate(root, SPLIT, results, workers=1, show_progress=False, cache=False)
    ref = pq_compute(results, tmp_path / "gt.json", tmp_path / "gt")
    for group, suffix in (("All", ""), ("Things", "_th"), ("Stuff", "_st")):
        assert res.metrics["PQ" + suffix] / 100 == pytest.approx(ref[group]["pq"], abs=1e-11)
    sky = res.per_class_table["PQ"][open_dataset(root).label_space(SPLIT).label_to_train[187]]
    assert ref["per_class"][187]["pq"] < 1 and sky / 100 == pytest.approx(
        ref["per_class"][187]["pq"], abs=1e-11)
    assert res.metrics["PQ_th"] == 100.0


def test_contour_score_on_the_coco_sample(oracle, tmp_path):
    """report --maps alone: the oracle maps of 1-px targets score the ground truth's 1-px
    boundaries exactly (ODS 100); the per-class table has the dataset's classes."""
    from coco_stages import write_targets
    from panoptool.io import formats
    from panoptool.postprocess.runner import sample_oracle_maps

    root, _ = oracle
    dataset = open_dataset(root)
    labels = dataset.label_space(SPLIT)
    targets = write_targets(root, tmp_path / "t1", dilation=1)
    maps = tmp_path / "maps"
    for s in dataset.samples(SPLIT):
        formats.write_maps(formats.maps_path(maps, SPLIT, s.stem),
                           **sample_oracle_maps(s, targets, labels))
    out = tmp_path / "rep"
    res = CliRunner().invoke(cli, ["report", "--root", str(root), "--split", SPLIT, "--maps",
                                   str(maps), "--out", str(out), "--workers", "1"])
    assert res.exit_code == 0, res.output
    metrics = read_json(out / "metrics.json")
    assert metrics["contour_ODS"] == pytest.approx(100.0) and metrics["n_images"] == 2
    assert len((out / "per_class.csv").read_text().splitlines()) == 1 + 133
