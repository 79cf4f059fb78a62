"""``convert instances-gt`` on a COCO-panoptic dataset: the COCO instances ground truth of
the real two-image sample equals panopticapi's own conversion of it (the sample's
``panoptic_coco_detection_format.json``, thing categories), mask for mask."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from pycocotools import mask as mask_utils

from coco_stages import DETECTION_JSON, GT_JSON, SPLIT, describe
from panoptool_cli.main import cli

# pycocotools' decode under numpy 2
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _decode(rle: dict) -> np.ndarray:
    rle = dict(rle)
    if isinstance(rle["counts"], str):
        rle["counts"] = rle["counts"].encode()
    return mask_utils.decode(rle)


def test_equals_panopticapis_detection_format_on_the_sample(tmp_path):
    root = describe(tmp_path / "data")
    out = tmp_path / "gt_instances.json"
    result = CliRunner().invoke(cli, ["convert", "instances-gt", "--root", str(root),
                                      "--split", SPLIT, "--out", str(out), "--workers", "1"])
    assert result.exit_code == 0, result.output
    ours = json.loads(out.read_text())
    ref = json.loads(DETECTION_JSON.read_text())
    things = {c["id"] for c in json.loads(GT_JSON.read_text())["categories"] if c["isthing"]}
    stem_of = {img["id"]: img["file_name"].rsplit(".", 1)[0] for img in ref["images"]}
    assert {img["id"] for img in ours["images"]} == set(stem_of.values())
    assert {img["file_name"] for img in ours["images"]} == \
        {img["file_name"] for img in ref["images"]}
    assert {c["id"] for c in ours["categories"]} >= things
    want = sorted(((stem_of[a["image_id"]], a["category_id"], a["iscrowd"], a["area"],
                    tuple(a["bbox"])), a) for a in ref["annotations"]
                  if a["category_id"] in things)
    got = sorted(((a["image_id"], a["category_id"], a["iscrowd"], a["area"],
                   tuple(int(v) for v in a["bbox"])), a) for a in ours["annotations"])
    assert len(got) == len(want) == 43
    assert [k for k, _ in got] == [k for k, _ in want]
    for (_, a), (_, b) in zip(got, want):
        np.testing.assert_array_equal(_decode(a["segmentation"]),
                                      _decode(b["segmentation"]))
    assert sum(a["iscrowd"] for a in ours["annotations"]) == 3
