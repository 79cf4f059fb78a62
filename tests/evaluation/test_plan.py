"""Planning an evaluation (``panoptool.evaluation.plan``): parts, images, one job per image."""

import json
import os
import shutil

import numpy as np
import pytest

from panoptool.errors import InputError
from panoptool.evaluation.plan import find_parts, plan_jobs
from panoptool.io import coco as coco_io
from panoptool.io import formats
from panoptool.io.files import write_json, write_png

from report_fixtures import results, root  # noqa: F401  (fixtures)
from report_errors import expect_report_error, val_stems


def test_find_parts_in_evaluation_order(tmp_path):
    assert find_parts(tmp_path) == ()
    (tmp_path / coco_io.INSTANCES_JSON).write_text("[]")
    assert find_parts(tmp_path) == ("instance",)
    (tmp_path / "panoptic.json").write_text("{}")
    (tmp_path / "semantic").mkdir()
    assert find_parts(tmp_path) == ("semantic", "instance", "panoptic")


def test_one_job_per_image_with_its_files(root, results):
    jobs, parts = plan_jobs(root, "val", results, None)
    assert parts == ("semantic", "instance", "panoptic")
    assert [j.stem for j in jobs] == val_stems(root)
    annotations = {a["image_id"]: a for a in
                   json.loads(formats.panoptic_json_path(results).read_text())["annotations"]}
    for job in jobs:
        assert job.semantic_path == str(formats.semantic_result_path(results, job.stem))
        assert job.instance_txt == str(formats.instance_txt_path(results, job.stem))
        assert job.panoptic_png == str(formats.panoptic_png_path(results, job.stem))
        segments = annotations[job.stem]["segments_info"]
        assert job.panoptic_ids == tuple(s["id"] for s in segments)
        assert job.panoptic_categories == tuple(s["category_id"] for s in segments)
        assert job.cache_file is None and not job.coco_ap and job.instance_json is None


def test_instances_json_is_used_instead_of_instance_folder(root, results):
    from panoptool.evaluation.coco import txt_results_to_coco

    coco_io.write_results(results / coco_io.INSTANCES_JSON, txt_results_to_coco(results))
    jobs, parts = plan_jobs(root, "val", results, results / "cache", coco_ap=True)
    assert parts == ("semantic", "instance", "panoptic")
    assert all(j.instance_txt is None and j.instance_json.endswith(coco_io.INSTANCES_JSON)
               for j in jobs)
    assert all(j.coco_ap and j.coco_cache_file and j.cache_file for j in jobs)
    assert sum(len(j.instance_entries) for j in jobs) > 0


def test_subset_plans_the_images_with_a_result(root, results):
    drop = val_stems(root)[0]
    for f in list(results.rglob(f"{drop}*")):
        f.unlink()
    path = formats.panoptic_json_path(results)
    data = json.loads(path.read_text())
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != drop]
    write_json(path, data)
    jobs, _ = plan_jobs(root, "val", results, None, subset=True)
    assert [j.stem for j in jobs] == val_stems(root)[1:]
    with pytest.raises(InputError, match=f"no semantic result for image {drop}"):
        plan_jobs(root, "val", results, None)


def test_no_results_at_all(root, tmp_path):
    with pytest.raises(InputError, match="results folder not found"):
        plan_jobs(root, "val", tmp_path / "none", None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no results: expected semantic/, instance/ or "
                                         "panoptic.json"):
        plan_jobs(root, "val", tmp_path / "empty", None)


def test_result_without_ground_truth(root, results):
    write_png(results / "semantic" / "nocity_000000_000000_pred_labelIds.png",
              np.zeros((128, 256), np.uint8))
    expect_report_error(root, results, "no ground truth", "nocity_000000_000000")


def test_missing_prediction(root, results):
    stem = val_stems(root)[1]
    os.remove(formats.instance_txt_path(results, stem))
    expect_report_error(root, results, f"no instance result for image {stem}", "instance")


def test_missing_panoptic_annotation(root, results):
    path = formats.panoptic_json_path(results)
    data = json.loads(path.read_text())
    missing = data["annotations"].pop(1)["image_id"]
    write_json(path, data)
    expect_report_error(root, results, f"no annotation for image {missing}", "panoptic.json")
    shutil.rmtree(results / "semantic")
    shutil.rmtree(results / "instance")
    with pytest.raises(InputError, match="no annotation"):  # whichever parts are present
        plan_jobs(root, "val", results, None)


def test_panoptic_segment_listed_twice(root, results):
    data = json.loads(formats.panoptic_json_path(results).read_text())
    segs = data["annotations"][0]["segments_info"]
    segs.append(dict(segs[0]))
    write_json(formats.panoptic_json_path(results), data)
    expect_report_error(root, results, f"segment id(s) [{segs[0]['id']}] listed twice",
                        "panoptic.json")
