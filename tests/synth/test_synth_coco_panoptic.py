"""``synth --format coco-panoptic``: the Cityscapes scenes as a COCO-panoptic dataset in COCO's
layout, read by open_dataset and by panopticapi's pq_compute (as cityscapesscripts ships it),
with the label space and the training targets of the Cityscapes form."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from coco_helpers import write_both_formats
from panoptool.errors import ConfigError
from panoptool.io.cityscapes import list_samples
from panoptool.io.coco_panoptic import rgb_to_ids
from panoptool.io.datasets import open_dataset
from panoptool.io.files import read_png
from panoptool.labels import CITYSCAPES
from panoptool.synth.scenes import SynthConfig, make_dataset, stem_of
from panoptool.targets.core import TargetConfig, compute_targets

CONFIG = SynthConfig(n=4, height=96, width=192, seed=5, split="val")
EVALUATED = np.zeros(256, dtype=bool)
for _c in CITYSCAPES.categories:
    EVALUATED[_c.id] = not _c.ignore_in_eval
HAS_INSTANCES = {c.id for c in CITYSCAPES.categories if c.has_instances}


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """The same scenes written in both formats: (cityscapes root, coco root)."""
    return write_both_formats(tmp_path_factory.mktemp("synth_cs"),
                              tmp_path_factory.mktemp("synth_coco"), CONFIG)


def _label_of(instance_ids: np.ndarray) -> np.ndarray:
    return np.where(instance_ids >= 1000, instance_ids // 1000, instance_ids)


def test_layout_stems_and_categories(both):
    cs, coco = both
    stems = sorted(stem_of(i) for i in range(CONFIG.n))
    assert sorted(p.stem for p in (coco / "val").glob("*.png")) == stems
    assert sorted(p.stem for p in (coco / "annotations" / "panoptic_val").glob("*.png")) == stems
    assert not (coco / "gtFine").exists() and not (coco / "leftImg8bit").exists()
    data = json.loads((coco / "annotations" / "panoptic_val.json").read_text())
    assert [i["id"] for i in data["images"]] == [stem_of(i) for i in range(CONFIG.n)]
    assert all(i["file_name"] == f"{i['id']}.png" and (i["height"], i["width"]) == (96, 192)
               for i in data["images"])
    cats = data["categories"]
    evaluated = [c for c in CITYSCAPES.categories if not c.ignore_in_eval]
    assert [c["id"] for c in cats] == [c.id for c in evaluated]  # Cityscapes label ids
    assert [c["name"] for c in cats] == [c.name for c in evaluated]
    assert all(set(c) == {"id", "name", "isthing", "color", "supercategory"} for c in cats)
    assert [c["isthing"] for c in cats] == [int(c.has_instances) for c in evaluated]
    assert [tuple(c["color"]) for c in cats] == [c.color for c in evaluated]
    settings = json.loads((coco / "synth-val.json").read_text())["settings"]
    assert settings["format"] == "coco-panoptic"
    assert "format" not in json.loads((cs / "synth-val.json").read_text())["settings"]


def test_segments_are_the_cityscapes_ground_truth(both):
    """PNG id = Cityscapes instance id on evaluated labels, 0 (void) elsewhere; each segment's
    category, iscrowd, area and bbox [x, y, w, h] computed here from the pixels."""
    cs, coco = both
    data = json.loads((coco / "annotations" / "panoptic_val.json").read_text())
    anns = {a["image_id"]: a for a in data["annotations"]}
    n_crowd = n_void = 0
    for sample in list_samples(cs, "val"):
        _, inst = sample.read_ground_truth()
        ids = rgb_to_ids(read_png(coco / "annotations" / "panoptic_val" / f"{sample.stem}.png",
                                  dtype=np.uint8, channels=3))
        kept = EVALUATED[_label_of(inst)]
        assert np.array_equal(ids, np.where(kept, inst, 0))
        n_void += int((~kept).sum())
        segments = anns[sample.stem]["segments_info"]
        assert anns[sample.stem]["file_name"] == f"{sample.stem}.png"
        assert [s["id"] for s in segments] == sorted(set(np.unique(ids)) - {0})
        for s in segments:
            ys, xs = np.nonzero(ids == s["id"])
            label = int(_label_of(np.array(s["id"])))
            crowd = s["id"] < 1000 and label in HAS_INSTANCES
            assert s == {"id": s["id"], "category_id": label, "iscrowd": int(crowd),
                         "area": len(ys), "bbox": [int(xs.min()), int(ys.min()),
                                                   int(xs.max() - xs.min() + 1),
                                                   int(ys.max() - ys.min() + 1)]}
            n_crowd += crowd
    assert n_crowd > 0 and n_void > 0  # the scenes have crowd regions and non-evaluated labels


def test_images_are_the_cityscapes_images(both):
    cs, coco = both
    for sample in list_samples(cs, "val", need_images=True):
        assert (coco / "val" / f"{sample.stem}.png").read_bytes() == \
            sample.image_path.read_bytes()


def test_default_format_is_cityscapes_byte_for_byte(both, tmp_path):
    cs, _ = both
    make_dataset(tmp_path, CONFIG, workers=1, show_progress=False, format="cityscapes")
    files = sorted(p.relative_to(cs) for p in cs.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    for rel in files:
        assert (cs / rel).read_bytes() == (tmp_path / rel).read_bytes(), rel


def test_open_dataset_gives_cityscapes_train_ids(both):
    _, coco = both
    ds = open_dataset(coco)
    assert ds.kind == "coco-panoptic" and set(ds.splits) == {"val"}
    space = ds.label_space("val")
    assert space.num_classes == CITYSCAPES.num_classes == 19
    assert space.thing_label_ids == CITYSCAPES.thing_label_ids
    for c in CITYSCAPES.categories:
        assert int(space.label_to_train[c.id]) == (255 if c.ignore_in_eval else c.train_id), c
    by_id = {c.id: c for c in space.categories}
    for c in CITYSCAPES.categories:
        if not c.ignore_in_eval:
            assert (by_id[c.id].name, by_id[c.id].color) == (c.name, c.color)


def test_targets_equal_those_of_the_cityscapes_form(both):
    """The issue's figure: a synthetic dataset written in both formats gives identical
    targets (train ids, contours, instance index, centres)."""
    cs, coco = both
    ds = open_dataset(coco)
    space = ds.label_space("val")
    cs_samples = {s.stem: s for s in list_samples(cs, "val")}
    coco_samples = ds.images("val")
    assert sorted(cs_samples) == [s.stem for s in coco_samples]
    for config in (TargetConfig(), TargetConfig(dilation=3)):
        for sample in coco_samples:
            label_ids, instance_ids = sample.read_ground_truth()
            ours = compute_targets(label_ids, instance_ids.astype(np.uint16), config, space)
            want = compute_targets(*cs_samples[sample.stem].read_ground_truth(), config,
                                   CITYSCAPES)
            assert ours.keys() == want.keys()
            for key in want:
                np.testing.assert_array_equal(ours[key], want[key], err_msg=key)
            np.testing.assert_array_equal(sample.read_image(),
                                          cs_samples[sample.stem].read_image())


def test_pq_compute_of_the_dataset_with_itself_is_100(both):
    from cityscapesscripts.evaluation import evalPanopticSemanticLabeling as official

    from panoptool.evaluation.coco_panoptic import evaluate_panoptic
    from panoptool.io.coco_panoptic import read_dataset

    _, coco = both
    json_path = coco / "annotations" / "panoptic_val.json"
    png_dir = coco / "annotations" / "panoptic_val"
    data = json.loads(json_path.read_text())
    categories = {c["id"]: c for c in data["categories"]}
    matched = [(a, a) for a in data["annotations"]]
    stat = official.pq_compute_single_core(0, matched, str(png_dir), str(png_dir), categories)
    results = official.average_pq(stat, categories)
    for part in ("All", "Things", "Stuff"):
        assert results[part]["pq"] == pytest.approx(1.0) and results[part]["n"] > 0
    ours = evaluate_panoptic(read_dataset(json_path), json_path, png_dir)
    assert ours["PQ"] == pytest.approx(1.0) and ours["n_images"] == CONFIG.n  # fractions


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="synth format must be one of cityscapes, "
                                          "coco-panoptic, got 'voc'"):
        make_dataset(tmp_path, CONFIG, format="voc")


def test_cli_writes_the_coco_form(tmp_path):
    from panoptool_cli.main import cli

    result = CliRunner().invoke(cli, ["synth", str(tmp_path / "d"), "--n", "2", "--height",
                                      "40", "--width", "64", "--split", "train", "--format",
                                      "coco-panoptic", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "(train, coco-panoptic)" in result.output
    ds = open_dataset(tmp_path / "d")
    assert [s.stem for s in ds.images("train")] == [stem_of(0), stem_of(1)]
    bad = CliRunner().invoke(cli, ["synth", str(tmp_path / "e"), "--format", "voc"])
    assert bad.exit_code != 0 and "'voc' is not one of" in bad.output
