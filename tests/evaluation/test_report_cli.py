"""``panoptool report``: the files it writes, what it prints, usage errors. (Bad results are
tested where they are read: test_plan.py, test_image.py, tests/io/test_results.py.)"""

import json

from click.testing import CliRunner

from panoptool.evaluation.coco import COCO_METRIC_KEYS
from panoptool.evaluation.config import METRIC_KEYS
from panoptool_cli import main

from report_fixtures import results, root  # noqa: F401  (fixtures)


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


def test_usage_errors(root, results):
    assert _run("--root", root).exit_code == 2
    assert _run("--root", root, "--results", results, "--format", "pdf").exit_code == 2
    r = _run("--root", root, "--results", root / "nothing")
    assert r.exit_code == 1 and "results folder not found" in r.output
