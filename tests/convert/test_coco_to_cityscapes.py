"""``panoptool convert panoptic-gt --to cityscapes``: a COCO-panoptic dataset as a Cityscapes
root. The round trip Cityscapes (synth) -> COCO panoptic -> Cityscapes gives back the
ground truth of every evaluated label exactly (the labels Cityscapes does not evaluate are
void in COCO panoptic and come back as 0); other datasets (the real COCO sample, renamed and
renumbered segments) keep their ids; ids that do not fit are refused in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from coco_helpers import write_both_formats
from panoptool.convert.cityscapes_gt import MAX_INSTANCE_ID, coco_to_cityscapes
from panoptool.errors import ConfigError, InputError
from panoptool.io.cityscapes import list_samples
from panoptool.io.coco_panoptic import ids_to_rgb, rgb_to_ids
from panoptool.io.datasets import open_dataset, write_description
from panoptool.io.files import read_png, write_png
from panoptool.labels import CITYSCAPES, LabelSpace
from panoptool.synth.scenes import SynthConfig
from panoptool_cli import main

CONFIG = SynthConfig(n=4, height=96, width=192, seed=11, split="val")
EVALUATED = np.zeros(256, dtype=bool)
for _c in CITYSCAPES.categories:
    EVALUATED[_c.id] = not _c.ignore_in_eval
SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "coco_panoptic_sample"


def _cli(*args):
    return CliRunner().invoke(main.cli, ["convert", *map(str, args)])


def _label_of(instance_ids: np.ndarray) -> np.ndarray:
    return np.where(instance_ids >= 1000, instance_ids // 1000, instance_ids)


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """The same scenes as a Cityscapes root and as COCO panoptic: (cityscapes, coco)."""
    return write_both_formats(tmp_path_factory.mktemp("cs"),
                              tmp_path_factory.mktemp("coco"), CONFIG)


@pytest.fixture()
def coco_copy(both, tmp_path) -> Path:
    """A writable copy of the COCO form."""
    shutil.copytree(both[1], tmp_path / "coco")
    return tmp_path / "coco"


def _sample_description(tmp_path: Path, mutate=None) -> Path:
    """A description of the real COCO sample (its JSON copied, optionally mutated)."""
    data = json.loads((SAMPLE / "panoptic_examples.json").read_text())
    if mutate:
        mutate(data)
    (tmp_path / "pan.json").write_text(json.dumps(data))
    return write_description(tmp_path / "sample.json", {"val": {
        "panoptic_json": "pan.json", "panoptic_dir": str(SAMPLE / "panoptic_examples"),
        "images": str(SAMPLE / "images")}}, name="sample")


def test_round_trip_is_lossless_on_evaluated_labels(both, tmp_path):
    cs, coco = both
    out = tmp_path / "back"
    summary = coco_to_cityscapes(coco, "val", out, workers=2, show_progress=False)
    assert (summary.images, summary.converted, summary.skipped) == (4, 4, 0)
    assert summary.cityscapes_classes and "not Cityscapes'" not in summary.line()
    originals = list_samples(cs, "val", need_images=True)
    back = list_samples(out, "val", need_images=True)
    assert [(s.city, s.stem) for s in back] == [(s.city, s.stem) for s in originals]
    gaps = dropped = 0
    for a, b in zip(originals, back):
        label_ids, inst = a.read_ground_truth()
        raw_labels, raw_inst = read_png(b.label_ids_path), read_png(b.instance_ids_path)
        assert raw_labels.dtype == np.uint8 and raw_inst.dtype == np.uint16
        # evaluated labels: identical; the others (ego vehicle, out of roi, static) -> 0
        assert np.array_equal(raw_labels, np.where(EVALUATED[label_ids], label_ids, 0))
        assert np.array_equal(raw_inst, np.where(EVALUATED[_label_of(inst)], inst, 0))
        dropped += int(((raw_labels != label_ids) & (label_ids > 0)).sum())
        assert np.array_equal(b.read_image(), a.read_image())
        assert b.image_path.read_bytes() == a.image_path.read_bytes()
        things = np.unique(inst[inst >= 1000])
        for cat in np.unique(things // 1000):  # instance numbers with gaps come back as they are
            k = things[things // 1000 == cat] % 1000
            gaps += int(k.max() + 1 != len(k))
    assert gaps > 0 and dropped > 0
    record = json.loads((out / "convert-val.json").read_text())
    assert record["stage"] == "convert" and record["settings"]["to"] == "cityscapes"
    assert LabelSpace.from_dict(record["settings"]["labels"]) == \
        open_dataset(coco).label_space("val")


def test_resumes_and_redoes_changed_images(coco_copy, tmp_path):
    out = tmp_path / "back"
    coco_to_cityscapes(coco_copy, "val", out, workers=1, show_progress=False)
    again = coco_to_cityscapes(coco_copy, "val", out, workers=1, show_progress=False)
    assert (again.converted, again.skipped) == (0, 4)
    image = coco_copy / "val" / "synthcity_000000_000002.png"
    rgb = read_png(image)
    rgb[3, 3] = 255 - rgb[3, 3]
    write_png(image, rgb)
    target = out / "gtFine" / "val" / "synthtown" / "synthtown_000000_000001_gtFine_labelIds.png"
    target.unlink()
    redo = coco_to_cityscapes(coco_copy, "val", out, workers=1, show_progress=False)
    assert (redo.converted, redo.skipped) == (2, 2) and target.is_file()
    back = out / "leftImg8bit" / "val" / "synthcity" / "synthcity_000000_000002_leftImg8bit.png"
    assert np.array_equal(read_png(back), rgb)
    forced = coco_to_cityscapes(coco_copy, "val", out, workers=1, overwrite=True,
                                show_progress=False)
    assert (forced.converted, forced.skipped) == (4, 0)
    assert not list(out.rglob(".tmp-*")) and not (out / ".panoptool.lock").exists()


def test_renamed_and_renumbered_segments(both, coco_copy, tmp_path):
    """Stems that are not Cityscapes stems go to gtFine/<split>/<split>/; segment ids that
    are not Cityscapes ids become category * 1000 + k, k in the order of segments_info."""
    cs, _ = both
    json_path = coco_copy / "annotations" / "panoptic_val.json"
    data = json.loads(json_path.read_text())
    pan = coco_copy / "annotations" / "panoptic_val"
    for n, (img, ann) in enumerate(zip(data["images"], data["annotations"])):
        name = f"photo{n}.png"
        (coco_copy / "val" / img["file_name"]).rename(coco_copy / "val" / name)
        ids = rgb_to_ids(read_png(pan / ann["file_name"], dtype=np.uint8, channels=3))
        (pan / ann["file_name"]).unlink()
        new = np.zeros_like(ids)
        segments = ann["segments_info"][::-1]  # another order than increasing ids
        for j, seg in enumerate(segments):
            new[ids == seg["id"]] = 5_000_000 + 7 * j
            seg["id"] = 5_000_000 + 7 * j
        write_png(pan / name, ids_to_rgb(new))
        img.update(id=n, file_name=name)
        ann.update(image_id=n, file_name=name, segments_info=segments)
    json_path.write_text(json.dumps(data))
    out = tmp_path / "back"
    coco_to_cityscapes(coco_copy, "val", out, workers=1, show_progress=False)
    back = list_samples(out, "val", need_images=True)
    assert [(s.city, s.stem) for s in back] == [("val", f"photo{n}") for n in range(4)]
    originals = sorted(list_samples(cs, "val"), key=lambda s: int(s.stem[-6:]))
    things = {c.id for c in CITYSCAPES.categories if c.has_instances}
    for a, b, ann in zip(originals, back, data["annotations"]):
        _, inst = a.read_ground_truth()
        _, got = b.read_ground_truth()
        ids = rgb_to_ids(read_png(pan / ann["file_name"], dtype=np.uint8, channels=3))
        counter: dict[int, int] = {}
        for seg in ann["segments_info"]:
            cat = seg["category_id"]
            if cat in things and not seg["iscrowd"]:
                expect = cat * 1000 + counter.get(cat, 0)
                counter[cat] = counter.get(cat, 0) + 1
            else:
                expect = cat
            assert (got[ids == seg["id"]] == expect).all(), seg
        assert not got[ids == 0].any()
        # the regions of the original: each under one id, each id one region
        want = np.where(EVALUATED[_label_of(inst)], inst, 0)
        pairs = np.unique(np.stack([want.ravel(), got.ravel()]), axis=1)
        assert len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]
        assert np.array_equal(_label_of(got), _label_of(want))


def test_the_real_coco_sample(tmp_path):
    desc = _sample_description(tmp_path)
    out = tmp_path / "cs"
    summary = coco_to_cityscapes(desc, "val", out, workers=1, show_progress=False)
    assert summary.images == 2 and not summary.cityscapes_classes
    assert "the categories are not Cityscapes' classes" in summary.line()
    back = {s.stem: s for s in list_samples(out, "val", need_images=True)}
    assert {s.city for s in back.values()} == {"val"}  # COCO stems: a folder named after the split
    for sample in open_dataset(desc).images("val"):
        label_ids, instance_ids = sample.read_ground_truth()
        got = back[sample.stem]
        assert np.array_equal(read_png(got.label_ids_path), label_ids)
        raw = read_png(got.instance_ids_path)
        assert raw.dtype == np.uint16 and np.array_equal(raw, instance_ids)
        assert np.array_equal(got.read_image(), sample.read_image())  # JPEG decoded, then PNG


def test_instances_of_categories_above_65_are_refused(tmp_path):
    def to_toothbrush(data):
        for ann in data["annotations"]:
            for seg in ann["segments_info"]:
                if seg["category_id"] == 1:
                    seg["category_id"] = 90
    out = tmp_path / "cs"
    with pytest.raises(InputError) as err:
        coco_to_cityscapes(_sample_description(tmp_path, to_toothbrush), "val", out,
                           show_progress=False)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(str(tmp_path / "pan.json"))
    assert "category 90 (toothbrush) gets instance id 90012, beyond 65535" in msg
    assert "uint16" in msg and "categories above 65 cannot have instances" in msg
    assert not out.exists()


def test_category_65_fits_until_instance_535(tmp_path):
    from panoptool.convert.cityscapes_gt import check_ids_fit
    from panoptool.io.coco_panoptic import read_dataset

    def many(n):  # n instances of category 65 (bed) in the first image
        def mutate(data):
            segments = data["annotations"][0]["segments_info"]
            persons = [seg for seg in segments if seg["category_id"] == 1 and not seg["iscrowd"]]
            for seg in persons:
                seg["category_id"] = 65
            segments.extend({"id": 9_000_000 + j, "category_id": 65, "iscrowd": 0}
                            for j in range(n - len(persons)))
        return mutate

    assert MAX_INSTANCE_ID == 65535
    check_ids_fit(read_dataset(_sample_description(tmp_path, many(536)).parent / "pan.json",
                               SAMPLE / "panoptic_examples"))  # up to 65535: fits
    with pytest.raises(InputError, match="category 65 \\(bed\\) gets instance id 65536, "):
        check_ids_fit(read_dataset(_sample_description(tmp_path, many(537)).parent /
                                   "pan.json", SAMPLE / "panoptic_examples"))


def test_category_ids_beyond_255_are_refused(coco_copy, tmp_path):
    json_path = coco_copy / "annotations" / "panoptic_val.json"
    data = json.loads(json_path.read_text())
    data["categories"].append({"id": 300, "name": "blimp", "isthing": 0})
    json_path.write_text(json.dumps(data))
    r = _cli("panoptic-gt", "--to", "cityscapes", "--root", coco_copy, "--split", "val",
             "--out", tmp_path / "cs")
    assert r.exit_code == 1
    line = r.output.strip()
    assert line.startswith("panoptool: error: ") and "\n" not in line
    assert f"{json_path}: category 300 (blimp): a Cityscapes *_labelIds.png is uint8" in line
    assert not (tmp_path / "cs").exists()


def test_missing_panoptic_png_is_one_line_and_writes_nothing(coco_copy, tmp_path):
    png = coco_copy / "annotations" / "panoptic_val" / "synthtown_000000_000001.png"
    png.unlink()
    r = _cli("panoptic-gt", "--to", "cityscapes", "--root", coco_copy, "--split", "val",
             "--out", tmp_path / "cs")
    assert r.exit_code == 1
    line = r.output.strip()
    assert "\n" not in line
    assert line == (f"panoptool: error: {png}: panoptic PNG of image 'synthtown_000000_000001' "
                    f"(listed in panoptic_val.json) not found")
    assert not (tmp_path / "cs").exists()


def test_other_refusals(both, coco_copy, tmp_path):
    cs, coco = both
    with pytest.raises(InputError, match="is a Cityscapes root already"):
        coco_to_cityscapes(cs, "val", tmp_path / "x", show_progress=False)
    with pytest.raises(ConfigError, match="is the COCO dataset's own folder"):
        coco_to_cityscapes(coco_copy, "val", coco_copy, show_progress=False)
    with pytest.raises(InputError, match="split 'train' not found; this dataset has val"):
        coco_to_cityscapes(coco, "train", tmp_path / "x", show_progress=False)
    (coco_copy / "val" / "synthcity_000000_000000.png").unlink()
    with pytest.raises(InputError, match="missing on disk"):
        coco_to_cityscapes(coco_copy, "val", tmp_path / "x", show_progress=False)
    assert not (tmp_path / "x").exists()


def test_cli(both, tmp_path):
    _, coco = both
    r = _cli("panoptic-gt", "--to", "cityscapes", "--root", coco, "--split", "val", "--out",
             tmp_path / "cs", "--workers", 1)
    assert r.exit_code == 0, r.output
    assert "4 image(s), 4 converted, 0 already done" in r.output
    assert len(list_samples(tmp_path / "cs", "val", need_images=True)) == 4
    r = _cli("panoptic-gt", "--to", "cityscapes", "--root", coco, "--split", "val")
    assert r.exit_code == 1 and "--to cityscapes needs --out" in r.output
    r = _cli("panoptic-gt", "--to", "cityscapes", "--root", coco, "--split", "val", "--out",
             tmp_path / "cs2", "--category-ids", "train")
    assert r.exit_code == 1 and "--category-ids is for --to coco" in r.output
    assert "--to [coco|cityscapes]" in _cli("panoptic-gt", "--help").output
