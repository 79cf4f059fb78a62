"""PQ on a COCO-panoptic dataset (panoptool.evaluation.coco_panoptic) equals panopticapi's
pq_compute (as cityscapesscripts ships it) on the real two-image COCO sample
(../shared/data/coco_panoptic_sample, CC BY 4.0 annotations) and on predictions made from it
by merging touching same-class segments, dropping, relabelling and eroding segments."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from panoptool.errors import InputError
from panoptool.evaluation.coco_panoptic import evaluate_panoptic
from panoptool.io.coco_panoptic import ids_to_rgb, label_space, read_dataset, rgb_to_ids

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "coco_panoptic_sample"
GT_JSON = SAMPLE / "panoptic_examples.json"


def _official(gt_json: Path, gt_dir: Path, pred_json: Path, pred_dir: Path) -> dict:
    from cityscapesscripts.evaluation import evalPanopticSemanticLabeling as m

    gt = json.loads(gt_json.read_text())
    pred = json.loads(pred_json.read_text())
    categories = {c["id"]: c for c in gt["categories"]}
    preds = {a["image_id"]: a for a in pred["annotations"]}
    matched = [(g, preds[g["image_id"]]) for g in gt["annotations"]]
    stat = m.pq_compute_single_core(0, matched, str(gt_dir), str(pred_dir), categories)
    return m.average_pq(stat, categories)


def _perturb(ids: np.ndarray, segments: list[dict], rng, mode: str):
    """A prediction from a ground-truth image: (ids, segments_info)."""
    segs = [dict(s) for s in segments]
    ids = ids.copy()
    if mode in ("merge", "mix"):  # touching same-category segments become one
        k = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
        done = set()
        for a in segs:
            for b in segs:
                if (a["id"] < b["id"] and a["category_id"] == b["category_id"]
                        and a["id"] not in done and b["id"] not in done):
                    grown = cv2.dilate((ids == a["id"]).astype(np.uint8), k).astype(bool)
                    if (grown & (ids == b["id"])).any():
                        ids[ids == b["id"]] = a["id"]
                        done |= {a["id"], b["id"]}
        segs = [s for s in segs if s["id"] not in done or any(
            s["id"] == a for a in done if (ids == a).any())]
        segs = [s for s in segs if (ids == s["id"]).any()]
    if mode in ("drop", "mix"):
        for s in list(segs)[::4]:
            ids[ids == s["id"]] = 0
            segs.remove(s)
    if mode in ("relabel", "mix"):
        for s in segs[1::5]:
            s["category_id"] = segs[0]["category_id"]
    if mode in ("erode", "mix"):
        out = np.zeros_like(ids)
        for s in segs:
            m = (ids == s["id"]).astype(np.uint8)
            r = int(rng.integers(1, 9))
            m = cv2.erode(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (r, r))) if r > 1 else m
            if m.any():
                out[m.astype(bool)] = s["id"]
        ids = out
        segs = [s for s in segs if (ids == s["id"]).any()]
    for s in segs:
        s.pop("area", None)
        s.pop("bbox", None)
    return ids, segs


def _write_predictions(tmp: Path, mode: str, seed: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    gt = json.loads(GT_JSON.read_text())
    pred_dir = tmp / "pred"
    pred_dir.mkdir()
    anns = []
    for ann in gt["annotations"]:
        rgb = cv2.cvtColor(cv2.imread(str(SAMPLE / "panoptic_examples" / ann["file_name"])),
                           cv2.COLOR_BGR2RGB)
        ids, segs = _perturb(rgb_to_ids(rgb), ann["segments_info"], rng, mode)
        cv2.imwrite(str(pred_dir / ann["file_name"]), cv2.cvtColor(ids_to_rgb(ids),
                                                                    cv2.COLOR_RGB2BGR))
        anns.append({"image_id": ann["image_id"], "file_name": ann["file_name"],
                     "segments_info": segs})
    pred_json = tmp / "pred.json"
    pred_json.write_text(json.dumps({"annotations": anns}))
    return pred_json, pred_dir


@pytest.mark.parametrize("mode", ["identity", "merge", "drop", "relabel", "erode", "mix"])
def test_pq_equals_pq_compute_on_the_real_sample(tmp_path, mode):
    pred_json, pred_dir = _write_predictions(tmp_path, mode)
    dataset = read_dataset(GT_JSON)
    ours = evaluate_panoptic(dataset, pred_json, pred_dir)
    ref = _official(GT_JSON, SAMPLE / "panoptic_examples", pred_json, pred_dir)
    for group, suffix in (("All", ""), ("Things", "_th"), ("Stuff", "_st")):
        for key in ("pq", "sq", "rq"):
            assert ours[key.upper() + suffix] == pytest.approx(ref[group][key], abs=1e-12), \
                (group, key)
        assert ours["n" + suffix] == ref[group]["n"]
    per_class = ref["All"] and ref["per_class"]
    for k, cid in enumerate(ours["category_ids"]):
        if np.isnan(ours["pq"][k]):  # absent category: the official code reports 0
            assert per_class[cid]["pq"] == 0 and per_class[cid]["rq"] == 0
            continue
        for key in ("pq", "sq", "rq"):
            assert ours[key][k] == pytest.approx(per_class[cid][key], abs=1e-12)
    if mode == "identity":
        assert ours["PQ"] == 1.0
    else:
        assert ours["PQ"] < 1.0


def test_label_space_of_the_sample():
    labels = label_space(read_dataset(GT_JSON).categories)
    assert labels.num_classes == 133 and len(labels.thing_label_ids) == 80
    assert labels.label_names[1] == "person" and 1 in labels.thing_label_ids
    assert [c.train_id for c in labels.by_train_id] == list(range(133))


def test_prediction_with_an_unlisted_id_is_refused(tmp_path):
    pred_json, pred_dir = _write_predictions(tmp_path, "identity")
    data = json.loads(pred_json.read_text())
    data["annotations"][0]["segments_info"].pop(0)
    pred_json.write_text(json.dumps(data))
    with pytest.raises(InputError, match="occurs in the PNG but not in segments_info"):
        evaluate_panoptic(read_dataset(GT_JSON), pred_json, pred_dir)
    data["annotations"].pop(0)
    pred_json.write_text(json.dumps(data))
    with pytest.raises(InputError, match="no prediction for image"):
        evaluate_panoptic(read_dataset(GT_JSON), pred_json, pred_dir)
