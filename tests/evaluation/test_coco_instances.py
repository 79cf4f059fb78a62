"""COCO instance results (pycocotools RLE) in and out, COCO mask AP, ``convert`` (instances)."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from pycocotools import mask as mask_utils

from panoptool.io import coco as coco_io
from panoptool.evaluation import coco as ci
from panoptool.io import formats
from panoptool.io.cityscapes import list_samples, read_ground_truth
from panoptool.io.rle import masks_segment_overlap
from panoptool.evaluation.runner import evaluate
from panoptool.io.results import read_instance_list
from panoptool.io.files import read_png
from panoptool.evaluation.metrics import gt as gtm
from panoptool.evaluation.metrics import instance
from panoptool_cli import main

from official import make_results, official_instance
from report_fixtures import root  # noqa: F401  (fixture)


def _cli(*args):
    result = CliRunner().invoke(main.cli, [str(a) for a in args])
    return result


# --- RLE --------------------------------------------------------------------------------------

def test_label_map_rle_equals_pycocotools_and_overlap_equals_the_decoded_mask():
    rng = np.random.default_rng(0)
    for trial in range(40):
        h, w = (int(v) for v in rng.integers(1, 30, 2))
        if trial % 2:
            index_map = rng.integers(0, 5, (h, w))
        else:  # sparse: masks starting/ending anywhere, absent values
            index_map = (rng.random((h, w)) < 0.1) * rng.integers(1, 5, (h, w))
        rles = coco_io.encode_label_map(index_map, 4)
        ys, xs = np.nonzero(index_map)
        if ys.size:  # scanning only a box that holds every object gives the same RLEs
            box = (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
            assert coco_io.encode_label_map(index_map, 4, bbox=box) == rles
        labels = np.full((h, w), 26, np.uint8)
        gt = gtm.segment_ground_truth(labels, (26000 + index_map).astype(np.uint16))
        for k in range(1, 5):
            mask = (index_map == k).astype(np.uint8)
            ref = mask_utils.encode(np.asfortranarray(mask))
            assert rles[k - 1]["counts"] == ref["counts"].decode()
            assert rles[k - 1]["size"] == [h, w]
            runs = coco_io.rle_counts(rles[k - 1])
            assert runs.sum() == h * w
            assert (coco_io.decode_rle(rles[k - 1]) == mask).all()
            np.testing.assert_array_equal(
                masks_segment_overlap([runs], *gt.column_runs, gt.n_segments)[0],
                instance.mask_segment_overlap(gt, mask))


def test_rle_counts_rejects_truncated_and_wrong_size():
    rle = coco_io.encode_mask(np.eye(5))
    with pytest.raises(ValueError, match="cover"):
        coco_io.rle_counts({"size": [5, 6], "counts": rle["counts"]})
    with pytest.raises(ValueError):
        coco_io.rle_counts({"size": [5, 5], "counts": rle["counts"][:-1] + "o"})


# --- results JSON <-> txt + PNG, and Cityscapes AP from both ----------------------------------

@pytest.fixture(scope="module")
def noisy(root, tmp_path_factory):
    """Official txt + PNG results (noisy: duplicates, ties, void/crowd FPs, caravan, an empty
    mask) and the same instances as COCO results JSON."""
    res = make_results(root, "val", tmp_path_factory.mktemp("coco") / "res", "noisy", seed=7)
    result = _cli("convert", "instance-results", "--results", res,
                  "--out", res.parent / "coco.json")
    assert result.exit_code == 0, result.output
    return res, res.parent / "coco.json"


def test_txt_json_txt_round_trip_keeps_masks_labels_and_scores(noisy, tmp_path):
    res, coco = noisy
    entries = json.loads(coco.read_text())
    assert all(isinstance(e["segmentation"]["counts"], str) for e in entries)
    back = tmp_path / "back"
    result = _cli("convert", "instance-results", "--instances", coco, "--out", back)
    assert result.exit_code == 0, result.output
    for txt in sorted((res / "instance").glob("*_pred.txt")):
        a = read_instance_list(txt, res)
        b = read_instance_list(back / "instance" / txt.name, back)
        assert [(lab, conf) for _, lab, conf in a] == [(lab, conf) for _, lab, conf in b]
        for (pa, _, _), (pb, _, _) in zip(a, b):
            np.testing.assert_array_equal(read_png(pa) > 0, read_png(pb) > 0)


def test_cityscapes_ap_from_json_equals_txt_png_and_the_official_evaluator(root, noisy, tmp_path):
    res, coco = noisy
    from_txt = evaluate(root, "val", res, workers=1, cache=False, coco_ap=False)
    json_only = tmp_path / "json_only"
    json_only.mkdir()
    shutil.copy(coco, json_only / coco_io.INSTANCES_JSON)
    from_json = evaluate(root, "val", json_only, workers=1, cache=False, coco_ap=False)
    from_flag = evaluate(root, "val", res, workers=2, cache=tmp_path / "c", instances=coco)
    assert from_json.parts == ("instance",)
    for key in ("AP", "AP50"):
        assert from_json.metrics[key] == from_txt.metrics[key]  # exactly
        assert from_flag.metrics[key] == from_txt.metrics[key]
    np.testing.assert_array_equal(from_json.per_class["AP"], from_txt.per_class["AP"])
    official = official_instance(root, "val", res, tmp_path / "official")
    assert abs(from_json.metrics["AP"] - 100 * official["averages"]["allAp"]) < 1e-6
    assert abs(from_json.metrics["AP50"] - 100 * official["averages"]["allAp50%"]) < 1e-6
    # COCO mask AP is the same from either source
    from_txt_coco = evaluate(root, "val", res, workers=1, cache=False)
    assert from_txt_coco.metrics["AP"] == from_txt.metrics["AP"]  # masks read once for both
    for key in ci.COCO_METRIC_KEYS:
        assert from_flag.metrics[key] == from_txt_coco.metrics[key]


# --- COCO mask AP -----------------------------------------------------------------------------

def test_coco_ap_equals_cocoeval_on_the_converted_ground_truth(root, noisy, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    res, coco = noisy
    gt_json = tmp_path / "gt.json"
    result = _cli("convert", "instances-gt", "--root", root, "--split", "val", "--out", gt_json,
                  "--no-cache", "--workers", 1)
    assert result.exit_code == 0, result.output
    gt_data = json.loads(gt_json.read_text())
    assert {c["id"] for c in gt_data["categories"]} == set(instance.INSTANCE_LABEL_IDS)
    assert any(a["iscrowd"] for a in gt_data["annotations"])
    # detectron2's rule, checked on the PNGs: one annotation per thing id >= 1000 and one
    # crowd annotation per thing label with crowd pixels
    for s in list_samples(root, "val"):
        _, inst = read_ground_truth(s)
        ids = np.unique(inst)
        label = np.where(ids >= 1000, ids // 1000, ids)
        want = []
        for i, lab in zip(ids, label):
            ys, xs = np.nonzero(inst == i)
            if lab in instance.INSTANCE_LABEL_IDS and ys.max() > ys.min() and xs.max() > xs.min():
                want.append(int(i))  # detectron2 skips single-row / single-column masks
        anns = [a for a in gt_data["annotations"] if a["image_id"] == s.stem]
        assert len(anns) == len(want)
        for a, iid in zip(anns, want):
            mask = inst == iid
            assert a["iscrowd"] == int(iid < 1000) and a["area"] == int(mask.sum())
            np.testing.assert_array_equal(coco_io.decode_rle(a["segmentation"]), mask)
    dets = [e for e in json.loads(coco.read_text())
            if e["category_id"] in instance.INSTANCE_LABEL_IDS
            and mask_utils.area(dict(e["segmentation"],
                                     counts=e["segmentation"]["counts"].encode())) > 0]
    coco_gt = COCO(str(gt_json))
    ev = COCOeval(coco_gt, coco_gt.loadRes(dets), iouType="segm")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    ours = evaluate(root, "val", res, workers=2, cache=tmp_path / "cache", instances=coco)
    again = evaluate(root, "val", res, workers=1, cache=tmp_path / "cache", instances=coco)
    assert list((tmp_path / "cache" / "coco_gt" / "val").glob("*.json"))
    for k, key in enumerate(ci.COCO_METRIC_KEYS):
        want = None if ev.stats[k] < 0 else 100 * ev.stats[k]
        assert ours.metrics[key] == pytest.approx(want, abs=1e-9), key
        assert again.metrics[key] == ours.metrics[key]
    assert 0 < ours.metrics["coco_AP"] < 100
    fast = evaluate(root, "val", res, workers=1, cache=tmp_path / "cache", instances=coco,
                    coco_backend="faster-coco-eval")
    for key in ci.COCO_METRIC_KEYS:  # the C++ re-implementation gives the same numbers
        assert fast.metrics[key] == pytest.approx(ours.metrics[key], abs=1e-12), key


def test_report_cli_writes_coco_keys_and_no_coco_ap_leaves_them_out(root, noisy, tmp_path):
    res, coco = noisy
    out = tmp_path / "rep"
    result = _cli("report", "--root", root, "--results", res, "--instances", coco,
                  "--out", out, "--no-cache", "--workers", 1)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert all(metrics[k] is not None for k in ("coco_AP", "coco_AP50", "AP", "PQ", "mIoU"))
    result = _cli("report", "--root", root, "--results", res, "--no-coco-ap", "--out", out,
                  "--no-cache", "--workers", 1)
    assert "coco_AP" not in json.loads((out / "metrics.json").read_text())


def test_integer_ids_and_other_category_numbers_through_coco_gt(root, noisy, tmp_path):
    """A detectron2-style file: integer image ids and categories 0..7, mapped by --coco-gt."""
    res, coco = noisy
    stems = [s.stem for s in list_samples(root, "val")]
    names = [c["name"] for c in ci.coco_instance_categories()]
    labels = [c["id"] for c in ci.coco_instance_categories()]
    gt = {"images": [{"id": 10 + i, "file_name": f"x/{s}_leftImg8bit.png"}
                     for i, s in enumerate(stems)],
          "categories": [{"id": k, "name": n} for k, n in enumerate(names)]}
    entries = [dict(e, image_id=10 + stems.index(e["image_id"]),
                    category_id=labels.index(e["category_id"]))
               for e in json.loads(coco.read_text()) if e["category_id"] in labels]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "d2.json").write_text(json.dumps(entries))
    ours = evaluate(root, "val", res, workers=1, cache=False, instances=tmp_path / "d2.json",
                    coco_gt=tmp_path / "gt.json", coco_ap=False)
    ref = evaluate(root, "val", res, workers=1, cache=False, instances=coco, coco_ap=False)
    assert ours.metrics["AP"] == ref.metrics["AP"]
    back = tmp_path / "back"
    result = _cli("convert", "instance-results", "--instances", tmp_path / "d2.json",
                  "--coco-gt", tmp_path / "gt.json", "--out", back)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (back / "instance").glob("*_pred.txt")) == sorted(
        f"{s}_pred.txt" for s in {e["image_id"] for e in json.loads(coco.read_text())})
    rows = read_instance_list(back / "instance" / f"{stems[0]}_pred.txt", back)
    assert {lab for _, lab, _ in rows} <= set(labels)  # 0..7 mapped back to labelIds


# --- bad input --------------------------------------------------------------------------------

def _first_entry(coco):
    return json.loads(coco.read_text())


@pytest.mark.parametrize("problem, words", [
    ("not_list", "must be a JSON list"),
    ("size", "RLE size 5x7 (height x width) differs from the image (128x256)"),
    ("category", "entry 0: unknown category_id 3"),
    ("image", "entry 0: image_id 'nowhere_000000_000000' matches no ground-truth image"),
    ("int_image", "integer ids need --coco-gt"),
    ("nan", "entry 0: score must be a finite number, got nan"),
    ("no_segmentation", "entry 0: lacks segmentation"),
    ("bad_rle", "entry 0: invalid RLE"),
    ("non_ascii_rle", "entry 0: invalid RLE (counts string is not ASCII)"),
])
def test_bad_results_json_gives_one_line_naming_file_and_entry(root, noisy, tmp_path, problem,
                                                              words):
    res, coco = noisy
    entries = _first_entry(coco)
    e = entries[0]
    if problem == "not_list":
        data = {"annotations": entries}
    else:
        if problem == "size":
            e["segmentation"] = coco_io.encode_mask(np.ones((5, 7)))
        elif problem == "category":
            e["category_id"] = 3
        elif problem == "image":
            e["image_id"] = "nowhere_000000_000000"
        elif problem == "int_image":
            e["image_id"] = 3
        elif problem == "nan":
            e["score"] = float("nan")
        elif problem == "no_segmentation":
            del e["segmentation"]
        elif problem == "bad_rle":
            e["segmentation"]["counts"] = e["segmentation"]["counts"][:-2]
        elif problem == "non_ascii_rle":
            e["segmentation"]["counts"] = "\u00e9" + e["segmentation"]["counts"]
        data = entries
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))  # NaN is written as NaN, which Python's json reads
    out = tmp_path / "rep"
    result = _cli("report", "--root", root, "--results", res, "--instances", bad, "--out", out,
                  "--no-cache", "--workers", 1)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"panoptool: error: {bad}: ")
    assert words in lines[0]
    assert not out.exists()  # nothing written
    # the same file refused by convert, which writes nothing either (convert has no ground
    # truth: any string image id is a stem, and an image's sizes are checked against its
    # first entry)
    back = tmp_path / "back"
    result = _cli("convert", "instance-results", "--instances", bad, "--out", back)
    if problem != "image":
        lines = result.output.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1
        assert lines[0].startswith(f"panoptool: error: {bad}: ")
        assert not (back / "instance").exists()


# --- postprocess --instance-format ----------------------------------------------------------

@pytest.fixture(scope="module")
def maps_dir(make_synth, tmp_path_factory):
    from panoptool.targets.core import TargetConfig, compute_targets

    root = make_synth(n=3)
    maps = tmp_path_factory.mktemp("coco_maps")
    for s in list_samples(root, "val"):
        label_ids, inst = read_ground_truth(s)
        t = compute_targets(label_ids, inst, TargetConfig(dilation=2))
        off, _ = formats.decode_offsets(t["instance_index"], t["centers_yx"])
        formats.write_maps(formats.maps_path(maps, "val", s.stem), train_ids=t["train_ids"],
                           confidence=np.full(label_ids.shape, 0.8, np.float32),
                           contour_prob=t["contour"].astype(np.float32), offset_yx=off)
    return root, maps


def test_postprocess_instance_formats(maps_dir, tmp_path):
    root, maps = maps_dir
    outs = {}
    for fmt in ("both", "coco", "cityscapes"):
        out = tmp_path / fmt
        result = _cli("postprocess", "--maps", maps, "--out", out, "--instance-format", fmt,
                      "--min-area", 0, "--eps", 5, "--workers", 1)
        assert result.exit_code == 0, result.output
        outs[fmt] = out
    assert (outs["both"] / coco_io.INSTANCES_JSON).is_file()
    assert list((outs["both"] / "instance").glob("*_pred.txt"))
    assert not (outs["coco"] / "instance").exists()
    assert (outs["coco"] / coco_io.INSTANCES_JSON).is_file()
    assert not (outs["cityscapes"] / coco_io.INSTANCES_JSON).exists()
    entries = json.loads((outs["both"] / coco_io.INSTANCES_JSON).read_text())
    assert entries == json.loads((outs["coco"] / coco_io.INSTANCES_JSON).read_text())
    assert entries and {"image_id", "category_id", "score", "segmentation", "bbox"} <= set(
        entries[0])
    # the JSON's masks are the PNG masks, in the same order with the same labels and scores
    by_stem = {}
    for e in entries:
        by_stem.setdefault(e["image_id"], []).append(e)
    for txt in (outs["both"] / "instance").glob("*_pred.txt"):
        stem = txt.name[: -len("_pred.txt")]
        rows = read_instance_list(txt, outs["both"])
        assert len(rows) == len(by_stem.get(stem, []))
        for (path, lab, conf), e in zip(rows, by_stem.get(stem, [])):
            assert (lab, conf) == (e["category_id"], e["score"])
            np.testing.assert_array_equal(coco_io.decode_rle(e["segmentation"]), read_png(path) > 0)
            box = mask_utils.toBbox(dict(e["segmentation"],
                                         counts=e["segmentation"]["counts"].encode()))
            assert e["bbox"] == box.tolist()
    a = evaluate(root, "val", outs["coco"], workers=1, cache=False, coco_ap=False).metrics
    b = evaluate(root, "val", outs["cityscapes"], workers=1, cache=False, coco_ap=False).metrics
    assert a["AP"] == b["AP"] and a["PQ"] == b["PQ"] and a["AP"] > 50


def test_postprocess_coco_format_resumes_and_refuses_another_format(maps_dir, tmp_path):
    from panoptool.postprocess.runner import coco_sidecar_path

    root, maps = maps_dir
    out = tmp_path / "r"
    args = ("postprocess", "--maps", maps, "--out", out, "--min-area", 0, "--eps", 5,
            "--workers", 1, "--instance-format", "coco")
    assert _cli(*args).exit_code == 0
    full = (out / coco_io.INSTANCES_JSON).read_bytes()
    stems = sorted(s.stem for s in list_samples(root, "val"))
    # an interrupted run: the assembled files and the last image are missing
    (out / coco_io.INSTANCES_JSON).unlink()
    (out / formats.PANOPTIC_JSON).unlink()
    (out / "panoptic" / f"{stems[-1]}_segments.json").unlink()
    coco_sidecar_path(out, stems[-1]).unlink()
    result = _cli(*args)
    assert result.exit_code == 0 and "1 image(s) written, 2 already done" in result.output
    assert (out / coco_io.INSTANCES_JSON).read_bytes() == full
    (out / formats.PANOPTIC_JSON).unlink()
    result = _cli(*args[:-1], "both")
    assert result.exit_code == 1 and "other settings" in result.output
