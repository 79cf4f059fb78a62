"""postprocess on a COCO-panoptic dataset: ``--oracle`` on the real two-image sample
(../shared/data/coco_panoptic_sample), maps whose config.json records a COCO label space, and
segment ids of a label space whose ids reach 200."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from coco_stages import SPLIT, describe, write_targets
from panoptool.errors import ConfigError, InputError
from panoptool.io import formats
from panoptool.io.datasets import open_dataset
from panoptool.io.files import read_json, read_png, write_json
from panoptool.labels import CITYSCAPES, LABELS_KEY, Category, LabelSpace
from panoptool.postprocess import PostprocessConfig, derive_panoptic, postprocess_maps
from panoptool.postprocess.panoptic import overflow_base
from panoptool.postprocess.runner import oracle_maps, sample_oracle_maps
from panoptool_cli.main import cli


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    """(dataset description, targets at dilation 2, label space)."""
    tmp = tmp_path_factory.mktemp("coco_pp")
    root = describe(tmp / "data")
    targets = write_targets(root, tmp / "targets")
    return root, targets, open_dataset(root).label_space(SPLIT)


def test_oracle_cli_writes_coco_ids(coco, tmp_path):
    root, targets, labels = coco
    out = tmp_path / "oracle"
    res = CliRunner().invoke(cli, ["postprocess", "--oracle", "--root", str(root), "--targets",
                                   str(targets), "--dataset-split", SPLIT, "--out", str(out),
                                   "--min-area", "39", "--workers", "1"])
    assert res.exit_code == 0, res.output
    samples = open_dataset(root).samples(SPLIT)
    assert [s.stem for s in samples] == ["000000142238", "000000439180"]
    things = set(labels.thing_label_ids)
    for s in samples:
        gt_labels, _ = s.read_ground_truth()
        sem = read_png(out / "semantic" / f"{s.stem}_pred_labelIds.png")  # no city folder
        # the oracle's semantic result is the ground truth's category ids, void (0) on the
        # pixels of no evaluated category
        assert np.array_equal(sem, np.where(labels.is_evaluated_label[gt_labels], gt_labels, 0))
        lines = (out / "instance" / f"{s.stem}_pred.txt").read_text().split("\n")[:-1]
        assert lines and {int(line.split()[1]) for line in lines} <= things
    pan = read_json(out / "panoptic.json")
    assert pan["categories"] == [{"id": c.id, "name": c.name, "color": list(c.color),
                                  "supercategory": c.supercategory,
                                  "isthing": int(c.has_instances)}
                                 for c in labels.categories if c.id]  # 133, void left out
    assert len(pan["categories"]) == 133
    assert [i["file_name"] for i in pan["images"]] == ["000000142238.jpg", "000000439180.jpg"]
    cats = {c["id"]: c for c in pan["categories"]}
    for ann in pan["annotations"]:
        for seg in ann["segments_info"]:
            cat = cats[seg["category_id"]]
            assert (seg["id"] >= 1000) == bool(cat["isthing"])
            assert seg["id"] // 1000 == seg["category_id"] if cat["isthing"] else \
                seg["id"] == seg["category_id"]
    horse = [seg for ann in pan["annotations"] for seg in ann["segments_info"]
             if seg["category_id"] == 19]
    assert len(horse) >= 10  # the sample's herd: COCO ids, not Cityscapes' (19 = traffic light)
    entries = json.loads((out / "instances.json").read_text())
    assert entries and {e["category_id"] for e in entries} <= things
    settings = read_json(out / "config.json")["settings"]
    assert settings[LABELS_KEY] == labels.to_dict()
    assert settings["root"] == str(root.resolve()) and settings["min_area"] == 39


def test_oracle_refuses_targets_of_another_label_space(coco, tmp_path):
    root, targets, _ = coco
    other = tmp_path / "targets"
    write_targets(root, other)
    config = read_json(other / "config.json")
    config["settings"][LABELS_KEY] = CITYSCAPES.to_dict()
    write_json(other / "config.json", config)
    res = CliRunner().invoke(cli, ["postprocess", "--oracle", "--root", str(root), "--targets",
                                   str(other), "--dataset-split", SPLIT, "--out",
                                   str(tmp_path / "out"), "--workers", "1"])
    assert res.exit_code != 0
    message = res.output.strip()
    assert "\n" not in message and "label spaces differ" in message
    assert "coco-sample" in message and "cityscapes" in message and "config.json" in message
    # targets that record no label space are Cityscapes' (made before labels were recorded)
    del config["settings"][LABELS_KEY]
    write_json(other / "config.json", config)
    with pytest.raises(ConfigError, match="label spaces differ"):
        from panoptool.postprocess import postprocess_oracle
        postprocess_oracle(root, SPLIT, other, tmp_path / "out2", show_progress=False)


def _write_maps(root, targets, labels, folder, record: bool) -> None:
    for s in open_dataset(root).samples(SPLIT):
        m = sample_oracle_maps(s, targets, labels)
        formats.write_maps(formats.maps_path(folder, SPLIT, s.stem), **m)
    if record:
        write_json(folder / "config.json", formats.stage_config(
            "infer", {"split": SPLIT}, read_json(targets / "config.json")))


def test_maps_take_the_label_space_their_config_records(coco, tmp_path):
    root, targets, labels = coco
    maps = tmp_path / "maps"
    _write_maps(root, targets, labels, maps, record=True)
    assert (maps / SPLIT / "000000142238_maps.npz").is_file()  # no city folder
    out = tmp_path / "res"
    postprocess_maps(maps, out, PostprocessConfig(min_area=0), workers=1, show_progress=False)
    assert read_json(out / "config.json")["settings"][LABELS_KEY] == labels.to_dict()
    pan = read_json(out / "panoptic.json")
    assert len(pan["categories"]) == 133
    assert pan["images"][0]["file_name"] == "000000142238"  # the maps do not name the image
    # the same as the oracle writes
    s = open_dataset(root).samples(SPLIT)[1]
    gt_labels, _ = s.read_ground_truth()
    sem = read_png(out / "semantic" / f"{s.stem}_pred_labelIds.png")
    assert np.array_equal(sem, np.where(labels.is_evaluated_label[gt_labels], gt_labels, 0))
    with pytest.raises(ConfigError, match="label spaces differ"):
        postprocess_maps(maps, tmp_path / "res2", labels=CITYSCAPES, workers=1,
                         show_progress=False)


def test_maps_without_config_are_cityscapes(coco, tmp_path):
    root, targets, labels = coco
    maps = tmp_path / "maps"
    _write_maps(root, targets, labels, maps, record=False)
    out = tmp_path / "res"
    postprocess_maps(maps, out, PostprocessConfig(min_area=0), workers=1, show_progress=False,
                     labels=labels)  # given: used, recorded
    assert read_json(out / "config.json")["settings"][LABELS_KEY]["name"] == "coco-sample"
    # not given: Cityscapes', whose 19 train ids these maps exceed
    with pytest.raises(InputError, match=r"unknown train id\(s\) \[32, 116, 119, 125\] "
                                         r"\(expected 0..18 or 255\)"):
        postprocess_maps(maps, tmp_path / "res2", workers=1, show_progress=False)


def test_oracle_maps_of_one_stem(coco):
    root, targets, labels = coco
    s = open_dataset(root).samples(SPLIT)[0]
    a = oracle_maps(root, SPLIT, targets, s.stem, labels)
    b = sample_oracle_maps(s, targets, labels)
    assert all(np.array_equal(a[k], b[k]) for k in b)
    assert set(np.unique(a["train_ids"])) <= set(range(labels.num_classes)) | {255}


def test_segment_ids_stay_distinct_beyond_1000_instances_of_a_high_category():
    """1024 one-pixel instances of category 100: ids 100000..100999, then from
    overflow_base (201000 with ids up to 200), never one of them again."""
    labels = LabelSpace("high", (
        Category(0, "void", 255, "void", 0, False, True, (0, 0, 0)),
        Category(7, "ground", 0, "flat", 1, False, False, (9, 9, 9)),
        Category(100, "cow", 1, "animal", 2, True, False, (200, 0, 0)),
        Category(200, "sheep", 2, "animal", 2, True, False, (0, 200, 0))))
    assert overflow_base(labels) == 201000 and overflow_base() == 100000
    h = w = 64
    train_ids = np.full((h, w), 1, np.uint8)
    contour = np.zeros((h, w), np.float32)
    contour[1::2, :] = 1
    contour[:, 1::2] = 1
    res = derive_panoptic(train_ids, np.ones((h, w), np.float32), contour,
                          np.zeros((2, h, w), np.float32),
                          PostprocessConfig(min_area=0, split=False, merge=False,
                                            fill_contours=False), labels)
    ids = [s.id for s in res.segments]
    assert len(res.instances) == 1024 and len(set(ids)) == len(ids)
    assert sorted(ids)[:1000] == list(range(100000, 101000))
    assert sorted(ids)[1000:] == list(range(201000, 201024))
    assert set(np.unique(res.panoptic_ids).tolist()) == set(ids) | {0}  # 0: the contours


def test_oracle_names_the_images_without_an_images_folder(tmp_path):
    """Evaluation and the oracle need only the PNGs: with no images folder in the
    description, panoptic.json still names each image by the JSON's file name."""
    from coco_helpers import SAMPLE
    from panoptool.io.datasets import write_description

    root = write_description(tmp_path / "data" / "desc.json", {SPLIT: {
        "panoptic_json": str(SAMPLE / "panoptic_examples.json"),
        "panoptic_dir": str(SAMPLE / "panoptic_examples")}})
    targets = write_targets(root, tmp_path / "targets")
    out = tmp_path / "oracle"
    res = CliRunner().invoke(cli, ["postprocess", "--oracle", "--root", str(root), "--targets",
                                   str(targets), "--dataset-split", SPLIT, "--out", str(out),
                                   "--workers", "1"])
    assert res.exit_code == 0, res.output
    pan = read_json(out / "panoptic.json")
    assert [i["file_name"] for i in pan["images"]] == ["000000142238.jpg", "000000439180.jpg"]
