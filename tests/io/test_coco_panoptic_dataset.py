"""Reading and checking a COCO-panoptic dataset (panoptool.io.coco_panoptic) on the real
two-image sample of ../shared/data/coco_panoptic_sample (COCO val2017, CC BY 4.0 annotations)
and on broken copies of it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from panoptool.errors import InputError
from panoptool.io.coco_panoptic import ids_to_rgb, read_dataset, rgb_to_ids

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "coco_panoptic_sample"
JSON = SAMPLE / "panoptic_examples.json"


@pytest.fixture()
def copy(tmp_path):
    """A writable copy of the sample: (json path, panoptic dir, images dir, loaded JSON)."""
    pan = tmp_path / "panoptic_examples"
    shutil.copytree(SAMPLE / "panoptic_examples", pan)
    images = tmp_path / "images"
    shutil.copytree(SAMPLE / "images", images)
    data = json.loads(JSON.read_text())
    return tmp_path / "panoptic_examples.json", pan, images, data


def _write(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_the_real_sample_reads_as_published():
    ds = read_dataset(JSON, images_dir=SAMPLE / "images")
    assert len(ds.categories) == 133
    assert sum(c.isthing for c in ds.categories) == 80
    raw = json.loads(JSON.read_text())
    assert [img.stem for img in ds.images] == [
        Path(i["file_name"]).stem for i in raw["images"]]
    assert sum(len(img.segments) for img in ds.images) == 50
    assert sum(s.iscrowd for img in ds.images for s in img.segments) == 3
    for img in ds.images:
        ids = ds.read_ids(img)
        assert ids.shape == (img.height, img.width)
        # the ids of the PNG are exactly the listed segments (plus void)
        assert set(np.unique(ids)) - {0} == {s.id for s in img.segments}
        # areas as the JSON states them
        ann = next(a for a in raw["annotations"] if a["image_id"] == img.id)
        for seg in ann["segments_info"]:
            assert int((ids == seg["id"]).sum()) == seg["area"]


def test_rgb_ids_round_trip():
    ids = np.random.default_rng(0).integers(0, 1 << 24, size=(5, 7))
    assert np.array_equal(rgb_to_ids(ids_to_rgb(ids)), ids)


def _bad(copy, mutate) -> str:
    json_path, pan, images, data = copy
    mutate(data, pan, images)
    _write(json_path, data)
    with pytest.raises(InputError) as err:
        ds = read_dataset(json_path, pan, images)
        for img in ds.images:
            ds.read_ids(img)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_category_without_isthing(copy):
    def mutate(data, pan, images):
        del data["categories"][5]["isthing"]
    msg = _bad(copy, mutate)
    assert "panoptic_examples.json" in msg and "lacks 'isthing'" in msg
    assert copy[3]["categories"][5]["name"] in msg


def test_png_id_missing_from_segments_info(copy):
    removed = {}

    def mutate(data, pan, images):
        removed["id"] = data["annotations"][0]["segments_info"].pop(3)["id"]
    msg = _bad(copy, mutate)
    assert f"segment id {removed['id']} occurs in the PNG but not in segments_info" in msg
    assert copy[3]["annotations"][0]["file_name"] in msg  # names the PNG


def test_segment_listed_twice(copy):
    def mutate(data, pan, images):
        segs = data["annotations"][1]["segments_info"]
        segs.append(dict(segs[2]))
    msg = _bad(copy, mutate)
    assert "listed twice" in msg and f"segment {copy[3]['annotations'][1]['segments_info'][2]['id']}" in msg


def test_image_listed_but_missing_on_disk(copy):
    def mutate(data, pan, images):
        (images / data["images"][1]["file_name"]).unlink()
    msg = _bad(copy, mutate)
    assert copy[3]["images"][1]["file_name"] in msg and "missing on disk" in msg


def test_png_of_another_size_than_its_image(copy):
    def mutate(data, pan, images):
        png = pan / data["annotations"][0]["file_name"]
        rgb = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(png), rgb[:-4])
    msg = _bad(copy, mutate)
    assert copy[3]["annotations"][0]["file_name"] in msg
    w, h = copy[3]["images"][0]["width"], copy[3]["images"][0]["height"]
    assert f"PNG is {w}x{h - 4}, its image" in msg and f"is {w}x{h}" in msg


def test_listed_segment_absent_from_png(copy):
    def mutate(data, pan, images):
        segs = data["annotations"][0]["segments_info"]
        segs.append(dict(segs[0], id=123456))
    msg = _bad(copy, mutate)
    assert "segment 123456" in msg and "absent from the PNG" in msg


@pytest.mark.parametrize("mutation, words", [
    (lambda d: d["annotations"][0].update(image_id=999), "which 'images' does not list"),
    (lambda d: d["annotations"][0]["segments_info"][0].update(category_id=4242),
     "category_id 4242"),
    (lambda d: d.pop("categories"), "no 'categories' list"),
    (lambda d: d["categories"].append(dict(d["categories"][0])), "listed twice"),
    (lambda d: d["annotations"].pop(), "has no annotation"),
    (lambda d: d["images"][0].update(height="427"), "height must be an integer"),
    (lambda d: d["annotations"][0].update(file_name="../../../etc/passwd"), "leaves the folder"),
    (lambda d: d["images"][0].update(file_name="/etc/passwd"), "is absolute"),
])
def test_other_broken_json_entries(copy, mutation, words):
    msg = _bad(copy, lambda data, pan, images: mutation(data))
    assert words in msg and "panoptic_examples.json" in msg


def test_category_ids_beyond_255_are_refused_naming_the_json(copy):
    from panoptool.io.coco_panoptic import label_space, parse_categories

    json_path = copy[0]
    cats = parse_categories([{"id": 300, "name": "wall-other", "isthing": 0}], json_path)
    with pytest.raises(InputError, match="category 300 \\(wall-other\\): panoptool needs") as err:
        label_space(cats, source=json_path)
    assert str(json_path) in str(err.value)
