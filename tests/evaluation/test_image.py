"""Statistics of one image (``panoptool.evaluation.image``) and the bad files it meets."""

import dataclasses
import json

import numpy as np
import pytest

from panoptool.errors import InputError
from panoptool.evaluation import image as im
from panoptool.evaluation.metrics import semantic
from panoptool.evaluation.plan import plan_jobs
from panoptool.io import formats
from panoptool.io.files import read_png, write_json, write_png

from official import make_results
from report_fixtures import results, root  # noqa: F401  (fixtures)
from report_errors import expect_report_error, val_stems


def test_perfect_image_has_perfect_statistics(root, tmp_path):
    res = make_results(root, "val", tmp_path / "res", "perfect")
    job = plan_jobs(root, "val", res, None)[0][0]
    stats = im.evaluate_image(job)
    assert semantic.compute(stats.semantic)["mIoU"] == pytest.approx(1.0)
    assert stats.instance.n_images == 1 and stats.instance.true.all()
    assert stats.boundary is None and stats.coco is None
    with_boundary = im.evaluate_image(dataclasses.replace(job, boundary_ratio=0.01))
    assert with_boundary.boundary.semantic is not None
    assert with_boundary.boundary.panoptic is not None


def test_image_stats_add_part_by_part(root, results):
    jobs, _ = plan_jobs(root, "val", results, None)
    a, b = im.evaluate_image(jobs[0]), im.evaluate_image(jobs[1])
    total = im.ImageStats() + a + b
    assert total.instance.n_images == 2
    np.testing.assert_array_equal(total.semantic.confusion,
                                  a.semantic.confusion + b.semantic.confusion)
    assert total.panoptic.tp.sum() == a.panoptic.tp.sum() + b.panoptic.tp.sum()
    only = im.ImageStats(semantic=a.semantic) + im.ImageStats(panoptic=b.panoptic)
    assert only.semantic is a.semantic and only.panoptic is b.panoptic and only.instance is None


def test_prediction_index_is_the_position_of_each_listed_id():
    rng = np.random.default_rng(3)
    ids = rng.choice(1 << 24, size=12, replace=False).astype(np.int64)
    pan = rng.choice(np.concatenate([ids, [0]]), size=(6, 9))
    rgb = formats.panoptic_id_to_rgb(pan)
    index = im._prediction_index(rgb, ids)
    plain = np.zeros(pan.shape, np.uint16)
    for k, i in enumerate(ids, start=1):
        plain[pan == i] = k
    np.testing.assert_array_equal(index, plain)
    assert im._prediction_index(rgb, np.zeros(0, np.int64)).max() == 0


def test_ground_truth_cache_gives_the_same_segments(root, tmp_path):
    job = plan_jobs(root, "val", make_results(root, "val", tmp_path / "r", "perfect"), None)[0][0]
    fresh = im.read_segmented_ground_truth(job.label_ids_path, job.instance_ids_path)
    cache = tmp_path / "c" / "x.npz"
    first = im.read_segmented_ground_truth(job.label_ids_path, job.instance_ids_path, cache)
    again = im.read_segmented_ground_truth(job.label_ids_path, job.instance_ids_path, cache)
    assert cache.is_file()
    for gt in (first, again):
        np.testing.assert_array_equal(gt.segment_index, fresh.segment_index)
        np.testing.assert_array_equal(gt.instance_ids, fresh.instance_ids)


def test_ground_truth_with_an_unknown_label_is_refused(root, tmp_path):
    job = plan_jobs(root, "val", make_results(root, "val", tmp_path / "r", "perfect"), None)[0][0]
    label = read_png(job.label_ids_path)
    label[0, 0] = 40
    bad = tmp_path / "bad_gtFine_labelIds.png"
    write_png(bad, label)
    with pytest.raises(InputError, match=r"unknown label id\(s\) \[40\]"):
        im.read_segmented_ground_truth(bad, job.instance_ids_path)


def test_prediction_of_another_size(root, results):
    stem = val_stems(root)[0]
    write_png(formats.semantic_result_path(results, stem), np.zeros((64, 256), np.uint8))
    expect_report_error(root, results, "differs from the ground truth", stem)


def test_unknown_label_ids(root, results):
    stem = val_stems(root)[2]
    pred = np.full((128, 256), 7, np.uint8)
    pred[0, 0] = 40
    write_png(formats.semantic_result_path(results, stem), pred)
    expect_report_error(root, results, "unknown label id(s) [40]", stem)


def test_unknown_instance_label(root, results):
    stem = val_stems(root)[0]
    txt = formats.instance_txt_path(results, stem)
    txt.write_text(txt.read_text() + "masks/x.png 99 0.5\n")
    expect_report_error(root, results, "unknown label id 99", f"{stem}_pred.txt")


def test_mask_path_leaving_the_folder(root, results):
    stem = val_stems(root)[0]
    txt = formats.instance_txt_path(results, stem)
    txt.write_text("../../outside.png 26 0.5\n")
    expect_report_error(root, results, "leaves the folder", f"{stem}_pred.txt")


def test_panoptic_segment_missing_from_png(root, results):
    data = json.loads(formats.panoptic_json_path(results).read_text())
    data["annotations"][1]["segments_info"].append({"id": 4_000_000, "category_id": 7})
    write_json(formats.panoptic_json_path(results), data)
    expect_report_error(root, results, "[4000000] listed in panoptic.json are missing from the PNG",
                        data["annotations"][1]["image_id"])


def test_panoptic_id_not_in_json(root, results):
    data = json.loads(formats.panoptic_json_path(results).read_text())
    data["annotations"][0]["segments_info"].pop()
    write_json(formats.panoptic_json_path(results), data)
    expect_report_error(root, results, "not listed in panoptic.json", "_panoptic.png")
