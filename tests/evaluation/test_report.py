"""Writing an evaluation (``panoptool.evaluation.report``)."""

import json

import numpy as np
import pytest

from panoptool.errors import ConfigError
from panoptool.evaluation.image import ImageStats
from panoptool.evaluation.report import summary_markdown, write_report
from panoptool.evaluation.summary import EvaluationResult, summarize


def _result(subset=None):
    metrics, table = summarize(ImageStats(), 2)
    metrics["mIoU"] = 50.0
    table["IoU"] = np.linspace(0, 90, 19)
    if subset:
        metrics["subset"] = subset
        table.insert_first("subset", subset)
    return EvaluationResult(metrics=metrics, per_class_table=table, parts=("semantic",),
                            root="/data", split="val", results_dir="/res",
                            results_config={"stage": "postprocess"},
                            settings={"split": "val"}, subset=subset)


def test_only_the_chosen_formats_and_the_config(tmp_path):
    written = write_report(_result(), tmp_path / "rep", ("json",))
    assert [p.name for p in written] == ["metrics.json", "config.json"]
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == ["config.json",
                                                                      "metrics.json"]
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert metrics["mIoU"] == 50.0 and metrics["PQ"] is None and metrics["n_images"] == 2
    config = json.loads((tmp_path / "rep" / "config.json").read_text())
    assert config["stage"] == "report" and config["upstream"] == {"stage": "postprocess"}
    assert config["settings"] == {"split": "val", "root": "/data", "results_dir": "/res",
                                  "parts": ["semantic"]}
    with pytest.raises(ConfigError, match=r"unknown report format\(s\) \['pdf'\]"):
        write_report(_result(), tmp_path / "rep", ("md", "pdf"))


def test_csv_has_every_class_and_column(tmp_path):
    write_report(_result(), tmp_path, ("csv",))
    lines = (tmp_path / "per_class.csv").read_text().splitlines()
    assert lines[0] == "train_id,class,IoU,iIoU,AP,AP50,PQ,SQ,RQ" and len(lines) == 20


def test_summary_shows_evaluated_columns_and_the_subset():
    text = summary_markdown(_result(subset="2 of 3 images"))
    assert "subset: 2 of 3 images" in text
    assert "| mIoU | n_images | subset |\n|---|---|---|\n| 50.00 | 2 | 2 of 3 images |" in text
    per_class = text.split("## Per class")[1]
    # only evaluated columns (no all-NaN PQ ...), without train_id
    assert "| subset | class | IoU |\n" in per_class and "| 2 of 3 images | car | 65.00 |" in per_class
    assert "subset" not in summary_markdown(_result())
