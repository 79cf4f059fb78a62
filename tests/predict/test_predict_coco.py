"""``panoptool predict`` with a network trained on a COCO-panoptic dataset: the results'
classes, label ids and categories are the checkpoint's label space, not Cityscapes'."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from coco_helpers import SAMPLE, tiny_coco_run
from panoptool.io import formats
from panoptool.io.datasets import open_dataset
from panoptool.io.files import read_png
from panoptool.postprocess.panoptic import coco_categories
from panoptool_cli.main import cli


def test_predict_uses_the_checkpoints_label_space(tmp_path):
    desc, _, ckpt = tiny_coco_run(tmp_path / "coco")
    labels = open_dataset(desc).label_space("val")
    image = SAMPLE / "images" / "000000439180.jpg"
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["predict", "--checkpoint", str(ckpt), str(image),
                                      "--out", str(out), "--format", "panoptic,cityscapes",
                                      "--save-maps", "--backend", "torch", "--min-area", "0",
                                      "--device", "cpu", "--threads", "1", "--workers", "1"])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "panoptic.json").read_text())
    assert data["categories"] == coco_categories(labels) and len(data["categories"]) == 133
    with np.load(out / "maps" / "000000439180_maps.npz") as maps:
        train_ids = maps["train_ids"]
    sem = read_png(formats.semantic_result_path(out, "000000439180"), dtype=np.uint8)
    np.testing.assert_array_equal(sem, labels.train_to_label[train_ids])
    (ann,) = data["annotations"]
    # the seeded 1-iteration network predicts stuff and things (truck, category 8)
    assert any(seg["id"] >= 1000 for seg in ann["segments_info"])
    evaluated = set(labels.evaluated_label_ids)
    for seg in ann["segments_info"]:
        assert seg["category_id"] in evaluated
        if seg["id"] >= 1000:
            assert labels.is_thing_label[seg["category_id"]]
            assert seg["id"] // 1000 == seg["category_id"]
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["labels"] == labels.to_dict()


def test_the_overlay_takes_the_colours_of_the_label_space():
    from panoptool.postprocess.panoptic import PanopticResult
    from panoptool.predict.stream import render_overlay

    labels = _sample_labels()
    train_id = 100  # a COCO class far beyond Cityscapes' 19
    train_ids = np.full((4, 6), train_id, np.uint8)
    image = np.zeros((4, 6, 3), np.uint8)
    empty = PanopticResult(np.zeros((4, 6), np.int32), np.zeros((4, 6), np.int32), ())
    colour = labels.class_colors[train_id].astype(int)
    out = render_overlay(image, train_ids, empty, alpha=1.0, labels=labels)
    assert colour.any() and (out.reshape(-1, 3) == colour).all()
    assert not render_overlay(image, train_ids, empty, alpha=1.0).any()  # Cityscapes: black


def _sample_labels():
    from panoptool.io.coco_panoptic import label_space, read_dataset

    return label_space(read_dataset(SAMPLE / "panoptic_examples.json").categories)
