"""``evaluate`` over a results folder (``panoptool.evaluation.runner``): parts, workers, the
ground-truth cache, and the names it re-exports."""

import shutil

import pytest

from panoptool.evaluation.config import METRIC_KEYS
from panoptool.evaluation.runner import evaluate
from panoptool.io.files import read_png, write_png

from official import make_results
from report_fixtures import results, root  # noqa: F401  (fixtures)


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
    entries = sorted(cache.rglob("*.arrays"))
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


def test_settings_say_how_the_numbers_were_made(root, results):
    result = evaluate(root, "val", results, workers=1, cache=False, coco_ap=False)
    assert result.settings == {"split": "val", "workers": 1, "cache": False, "cache_dir": "",
                               "boundary": False, "boundary_ratio": result.settings[
                                   "boundary_ratio"], "instances": None, "coco_gt": None,
                               "coco_ap": False, "coco_backend": "pycocotools"}
    assert result.results_dir == str(results) and result.split == "val"
    assert result.parts == ("semantic", "instance", "panoptic") and result.subset is None


def test_old_import_paths_still_work():
    """Every name other modules import from the runner (and the flat ``panoptool.evaluate``)."""
    import warnings

    from panoptool.evaluation import image, plan, report, summary
    from panoptool.evaluation import runner
    from panoptool.io import results

    for name, module in (("plan_jobs", plan), ("find_parts", plan), ("ImageJob", image),
                         ("ImageStats", image), ("evaluate_image", image),
                         ("semantic_stats", image), ("panoptic_stats", image),
                         ("boundary_image_stats", image), ("read_segmented_ground_truth", image),
                         ("summarize", summary), ("EvaluationResult", summary),
                         ("PerClassTable", summary), ("write_report", report),
                         ("read_instance_list", results), ("read_result_png", results)):
        assert getattr(runner, name) is getattr(module, name), name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import panoptool.evaluate as old
    assert old.evaluate is evaluate
