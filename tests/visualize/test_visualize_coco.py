"""``panoptool visualize`` on a COCO-panoptic dataset: the real two-image sample
(../shared/data/coco_panoptic_sample) with its oracle results, drawn in its own colours."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from coco_stages import SPLIT, oracle_results
from panoptool.errors import ConfigError
from panoptool.io.datasets import open_dataset
from panoptool.io.files import read_json, read_png, write_json
from panoptool.labels import CITYSCAPES, LABELS_KEY
from panoptool.io.results import read_panoptic_json
from panoptool.visualize import render as V
from panoptool_cli.main import cli


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("coco_vis")
    results = oracle_results(tmp, dilation=2)
    return tmp / "data" / "panoptool_dataset.json", results, tmp / "targets_d2"


def test_colours_are_the_label_space_ones(oracle):
    labels = open_dataset(oracle[0]).label_space(SPLIT)
    horse = next(c for c in labels.categories if c.name == "horse")
    assert horse.id == 19 and horse.color == (182, 182, 255)  # the JSON's colour
    got = V.colorize_label_ids(np.array([[19, 0]], np.uint8), labels)[0].tolist()
    assert got == [[182, 182, 255], [0, 0, 0]]
    # Cityscapes' label 19 is the traffic light
    assert V.colorize_label_ids(np.array([[19]], np.uint8))[0, 0].tolist() == [250, 170, 30]


def test_visualize_writes_a_panel_per_image(oracle, tmp_path):
    root, results, targets = oracle
    out = tmp_path / "vis"
    res = CliRunner().invoke(cli, ["visualize", "--root", str(root), "--split", SPLIT,
                                   "--results", str(results), "--targets", str(targets),
                                   "--out", str(out), "--workers", "1", "--tile-width", "640"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["000000142238.png", "000000439180.png"]
    labels = open_dataset(root).label_space(SPLIT)
    panel = read_png(out / "000000439180.png")
    colours = {tuple(c) for c in np.unique(panel.reshape(-1, 3), axis=0).tolist()}
    for name in ("horse", "gravel", "grass-merged", "sky-other-merged", "truck"):
        colour = next(c.color for c in labels.categories if c.name == name)
        assert colour in colours, name
    sample = open_dataset(root).samples(SPLIT)[1]
    direct = V.render_sample(sample, maps_root=None, results_root=results,
                             targets_root=targets, tile_width=640, labels=labels,
                             panoptic=read_panoptic_json(
                                 results, is_category=labels.is_evaluated_label)[sample.stem])
    assert np.array_equal(direct, panel)


def test_visualize_refuses_results_of_another_label_space(oracle, tmp_path):
    root, results, _ = oracle
    other = tmp_path / "other"
    shutil.copytree(results, other)
    config = read_json(other / "config.json")
    config["settings"][LABELS_KEY] = CITYSCAPES.to_dict()
    write_json(other / "config.json", config)
    with pytest.raises(ConfigError, match="label spaces differ.*coco-sample.*cityscapes"):
        V.visualize_dataset(root, tmp_path / "vis", V.VisualizeConfig(split=SPLIT),
                            results=other, workers=1)
