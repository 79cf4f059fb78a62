"""``panoptool report``: outputs, bad input, the ground-truth cache, library entry points."""

import json
import os
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from panoptool.io import formats
from panoptool.evaluation.coco import COCO_METRIC_KEYS
from panoptool.errors import InputError
from panoptool.evaluation.runner import METRIC_KEYS, evaluate
from panoptool.io.files import read_png, write_json, write_png
from panoptool_cli import main

from official import make_results


@pytest.fixture(scope="module")
def root(make_synth):
    return make_synth(n=3)


@pytest.fixture()
def results(root, tmp_path):
    return make_results(root, "val", tmp_path / "res", "noisy", seed=4)


def _run(*args):
    return CliRunner().invoke(main.cli, ["report", *map(str, args)])


def test_report_writes_outputs(root, results, tmp_path):
    out = tmp_path / "rep"
    r = _run("--root", root, "--results", results, "--out", out, "--workers", 1,
             "--cache-dir", tmp_path / "cache")
    assert r.exit_code == 0, r.output
    metrics = json.loads((out / "metrics.json").read_text())
    # the Cityscapes keys, then COCO mask AP (instances are evaluated)
    assert list(metrics) == list(METRIC_KEYS) + list(COCO_METRIC_KEYS)
    assert metrics["n_images"] == 3
    assert all(0 < metrics[k] < 100 for k in METRIC_KEYS if k != "n_images")
    csv = (out / "per_class.csv").read_text().splitlines()
    assert csv[0].startswith("train_id,class,IoU,iIoU,AP,AP50,PQ,SQ,RQ") and len(csv) == 20
    assert "PQ_th" in (out / "summary.md").read_text()
    assert json.loads((out / "config.json").read_text())["stage"] == "report"
    assert "mIoU" in r.output and "person" in r.output


def test_perfect_gives_100_and_parts_are_optional(root, tmp_path):
    res = make_results(root, "val", tmp_path / "res", "perfect")
    shutil.rmtree(res / "instance")
    result = evaluate(root, "val", res, workers=1, cache=False)
    assert result.parts == ("semantic", "panoptic")
    assert result.metrics["AP"] is None
    for key in ("mIoU", "iIoU", "PQ", "SQ", "RQ", "PQ_th", "PQ_st"):
        assert result.metrics[key] == pytest.approx(100.0), key


def test_parallel_equals_serial(root, results, tmp_path):
    a = evaluate(root, "val", results, workers=1, cache=False).metrics
    b = evaluate(root, "val", results, workers=2, cache=tmp_path / "c").metrics
    for k in METRIC_KEYS:
        assert a[k] == pytest.approx(b[k], abs=1e-9)


def test_cache_is_used_and_invalidated(make_synth, tmp_path):
    src = make_synth(n=3)
    root = tmp_path / "root"
    shutil.copytree(src, root)
    res = make_results(root, "val", tmp_path / "res", "perfect")
    cache = tmp_path / "cache"
    first = evaluate(root, "val", res, workers=1, cache=cache).metrics
    entries = sorted(cache.rglob("*.npz"))
    assert len(entries) == 3
    mtimes = [e.stat().st_mtime_ns for e in entries]
    assert evaluate(root, "val", res, workers=1, cache=cache).metrics == first
    assert [e.stat().st_mtime_ns for e in entries] == mtimes  # read, not rewritten
    # edit one ground-truth image: a block of road becomes sidewalk in labelIds and instances
    from panoptool.io.cityscapes import list_samples
    s = list_samples(root, "val")[0]
    lab = read_png(s.label_ids_path)
    inst = read_png(s.instance_ids_path)
    lab[:40, :80] = 8
    inst[:40, :80] = 8
    write_png(s.label_ids_path, lab)
    write_png(s.instance_ids_path, inst)
    after = evaluate(root, "val", res, workers=1, cache=cache).metrics
    fresh = evaluate(root, "val", res, workers=1, cache=False).metrics
    assert after == fresh
    assert after["mIoU"] < 100.0


def _expect_error(root, results, fragment, path_fragment):
    with pytest.raises(InputError) as info:
        evaluate(root, "val", results, workers=1, cache=False)
    message = str(info.value)
    assert fragment in message and path_fragment in message, message
    assert "\n" not in message
    r = _run("--root", root, "--results", results, "--out", results.parent / "o",
             "--workers", 1, "--no-cache")
    assert r.exit_code == 1
    assert r.output.strip().startswith("panoptool: error:") and fragment in r.output


def _stems(root):
    from panoptool.io.cityscapes import list_samples
    return [s.stem for s in list_samples(root, "val")]


def test_result_without_ground_truth(root, results):
    write_png(results / "semantic" / "nocity_000000_000000_pred_labelIds.png",
              np.zeros((128, 256), np.uint8))
    _expect_error(root, results, "no ground truth", "nocity_000000_000000")


def test_missing_prediction(root, results):
    stem = _stems(root)[1]
    os.remove(formats.instance_txt_path(results, stem))
    _expect_error(root, results, f"no instance result for image {stem}", "instance")


def test_prediction_of_another_size(root, results):
    stem = _stems(root)[0]
    write_png(formats.semantic_result_path(results, stem), np.zeros((64, 256), np.uint8))
    _expect_error(root, results, "differs from the ground truth", stem)


def test_unknown_label_ids(root, results):
    stem = _stems(root)[2]
    pred = np.full((128, 256), 7, np.uint8)
    pred[0, 0] = 40
    write_png(formats.semantic_result_path(results, stem), pred)
    _expect_error(root, results, "unknown label id(s) [40]", stem)


def test_unknown_instance_label(root, results):
    stem = _stems(root)[0]
    txt = formats.instance_txt_path(results, stem)
    txt.write_text(txt.read_text() + "masks/x.png 99 0.5\n")
    _expect_error(root, results, "unknown label id 99", f"{stem}_pred.txt")


def test_mask_path_leaving_the_folder(root, results):
    stem = _stems(root)[0]
    txt = formats.instance_txt_path(results, stem)
    txt.write_text("../../outside.png 26 0.5\n")
    _expect_error(root, results, "leaves the folder", f"{stem}_pred.txt")


def test_panoptic_segment_missing_from_png(root, results):
    data = json.loads(formats.panoptic_json_path(results).read_text())
    data["annotations"][1]["segments_info"].append({"id": 4_000_000, "category_id": 7})
    write_json(formats.panoptic_json_path(results), data)
    _expect_error(root, results, "[4000000] listed in panoptic.json are missing from the PNG",
                  data["annotations"][1]["image_id"])


def test_panoptic_segment_listed_twice(root, results):
    data = json.loads(formats.panoptic_json_path(results).read_text())
    segs = data["annotations"][0]["segments_info"]
    segs.append(dict(segs[0]))
    write_json(formats.panoptic_json_path(results), data)
    _expect_error(root, results, f"segment id(s) [{segs[0]['id']}] listed twice",
                  "panoptic.json")


def test_panoptic_id_not_in_json(root, results):
    data = json.loads(formats.panoptic_json_path(results).read_text())
    data["annotations"][0]["segments_info"].pop()
    write_json(formats.panoptic_json_path(results), data)
    _expect_error(root, results, "not listed in panoptic.json", "_panoptic.png")


def test_usage_errors(root, results):
    assert _run("--root", root).exit_code == 2
    assert _run("--root", root, "--results", results, "--format", "pdf").exit_code == 2
    r = _run("--root", root, "--results", root / "nothing")
    assert r.exit_code == 1 and "results folder not found" in r.output
