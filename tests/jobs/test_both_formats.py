"""Issue 12's first figure: one synthetic dataset written in both formats (Cityscapes layout
and COCO panoptic) gives identical targets, identical oracle results and identical metrics
through either path, with every stage run from the command line on ``--root``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from panoptool.io import formats
from panoptool.io.files import read_png
from panoptool_cli.main import cli

SPLIT = "val"


def _run(*args: str) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """For each format: the data root, its targets and its oracle results, and the report."""
    tmp = tmp_path_factory.mktemp("both")
    out = {}
    for fmt in ("cityscapes", "coco-panoptic"):
        root, targets, results = tmp / fmt / "data", tmp / fmt / "targets", tmp / fmt / "res"
        _run("synth", root, "--n", 3, "--height", 128, "--width", 256, "--seed", 5,
             "--split", SPLIT, "--format", fmt, "--workers", 1)
        _run("make-targets", "--root", root, "--split", SPLIT, "--out", targets,
             "--workers", 1)
        _run("postprocess", "--oracle", "--root", root, "--dataset-split", SPLIT, "--targets",
             targets, "--out", results, "--min-area", 3, "--workers", 1)
        _run("report", "--root", root, "--split", SPLIT, "--results", results, "--out",
             tmp / fmt / "report", "--workers", 1)
        metrics = json.loads((tmp / fmt / "report" / "metrics.json").read_text())
        out[fmt] = dict(root=root, targets=targets, results=results, metrics=metrics)
    return out


def _stems(targets: Path) -> list[str]:
    return sorted(p.name[: -len("_offset.npz")] for p in targets.rglob("*_offset.npz"))


def test_the_stages_found_each_format(both):
    assert (both["cityscapes"]["root"] / "gtFine").is_dir()
    coco = both["coco-panoptic"]["root"]
    assert (coco / "annotations" / f"panoptic_{SPLIT}.json").is_file()
    assert not (coco / "gtFine").exists()
    labels = {fmt: json.loads((d["targets"] / "config.json").read_text())["settings"]["labels"]
              for fmt, d in both.items()}
    assert labels["cityscapes"]["name"] == "cityscapes"
    assert labels["coco-panoptic"]["name"] != "cityscapes"  # another space, same 19 classes
    names = {fmt: [c["name"] for c in sorted(v["categories"], key=lambda c: c["train_id"])
                   if c["train_id"] != 255] for fmt, v in labels.items()}
    assert names["cityscapes"] == names["coco-panoptic"] and len(names["cityscapes"]) == 19


def test_identical_targets(both):
    a, b = both["cityscapes"]["targets"], both["coco-panoptic"]["targets"]
    stems = _stems(a)
    assert stems and stems == _stems(b)
    for stem in stems:
        ta = formats.read_targets(a, SPLIT, stem)
        tb = formats.read_targets(b, SPLIT, stem)
        assert ta.keys() == tb.keys()
        for key in ta:
            np.testing.assert_array_equal(ta[key], tb[key], err_msg=f"{stem} {key}")


def test_identical_oracle_results(both):
    a, b = both["cityscapes"]["results"], both["coco-panoptic"]["results"]
    stems = _stems(both["cityscapes"]["targets"])
    for stem in stems:
        np.testing.assert_array_equal(read_png(formats.semantic_result_path(a, stem)),
                                      read_png(formats.semantic_result_path(b, stem)))
        np.testing.assert_array_equal(read_png(formats.panoptic_png_path(a, stem)),
                                      read_png(formats.panoptic_png_path(b, stem)))
    seg = {k: {ann["image_id"]: ann["segments_info"]
               for ann in json.loads(formats.panoptic_json_path(r).read_text())["annotations"]}
           for k, r in (("a", a), ("b", b))}
    assert seg["a"] == seg["b"]


def test_identical_metrics(both):
    ma, mb = both["cityscapes"]["metrics"], both["coco-panoptic"]["metrics"]
    for key in ("PQ", "SQ", "RQ", "PQ_th", "PQ_st", "mIoU", "AP", "AP50"):
        assert key in ma and key in mb, key
        assert ma[key] == pytest.approx(mb[key], abs=1e-9), key
    assert 50 < ma["PQ"] <= 100
