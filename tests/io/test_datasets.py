"""One interface for every dataset (panoptool.io.datasets): open_dataset on a Cityscapes root,
a folder in COCO's layout, a description file and a folder holding panoptool_dataset.json;
its one-line errors; CocoSample's ground truth and image on the real two-image COCO sample
(../shared/data/coco_panoptic_sample)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from panoptool.errors import InputError
from panoptool.io import cityscapes
from panoptool.io.coco_panoptic import VOID_ID, read_dataset
from panoptool.io.datasets import (DESCRIPTION_NAME, CityscapesDataset, CocoPanopticData,
                                   open_dataset, write_description)
from panoptool.labels import CITYSCAPES

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "coco_panoptic_sample"
JSON = SAMPLE / "panoptic_examples.json"
STEMS = ["000000142238", "000000439180"]


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and message
    return message


@pytest.fixture()
def description(tmp_path) -> Path:
    """A description file in a temporary folder pointing at the sample (absolute paths)."""
    return write_description(tmp_path / "sample.json", {"val": {
        "images": str(SAMPLE / "images"), "panoptic_json": str(JSON),
        "panoptic_dir": str(SAMPLE / "panoptic_examples")}}, name="sample")


@pytest.fixture()
def coco_folder(tmp_path) -> Path:
    """The sample copied into COCO's own layout, split val2017."""
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    shutil.copy(JSON, root / "annotations" / "panoptic_val2017.json")
    shutil.copytree(SAMPLE / "panoptic_examples", root / "annotations" / "panoptic_val2017")
    shutil.copytree(SAMPLE / "images", root / "val2017")
    return root


# --- the four forms of --root ------------------------------------------------------------------

def test_cityscapes_root(make_synth, monkeypatch):
    root = make_synth(n=2, height=64, width=128, seed=0, split="val")
    ds = open_dataset(root)
    assert isinstance(ds, CityscapesDataset) and ds.kind == "cityscapes"
    assert ds.folder == root and ds.label_space("val") is CITYSCAPES
    assert [s.stem for s in ds.samples("val")] == [s.stem for s in
                                                   cityscapes.list_samples(root, "val")]
    assert [s.stem for s in ds.images("val")] == [s.stem for s in ds.samples("val")]
    assert ds.describe() == {"format": "cityscapes", "root": str(root.resolve())}
    assert open_dataset(ds) is ds  # a dataset passes through
    monkeypatch.setenv(cityscapes.ENV_ROOT, str(root))
    assert open_dataset(None) == ds  # $CITYSCAPES_DATASET


def test_coco_layout(coco_folder):
    ds = open_dataset(coco_folder)
    assert isinstance(ds, CocoPanopticData) and ds.kind == "coco-panoptic"
    assert set(ds.splits) == {"val2017"} and ds.name == "coco" and ds.folder == coco_folder
    split = ds.splits["val2017"]
    assert split.panoptic_dir == coco_folder / "annotations" / "panoptic_val2017"
    assert split.images == coco_folder / "val2017"
    samples = ds.images("val2017")
    assert [s.stem for s in samples] == STEMS and {s.city for s in samples} == {""}
    assert all(s.image_path.is_file() and s.png_path.is_file() for s in samples)
    space = ds.label_space("val2017")
    assert space.num_classes == 133 and len(space.thing_label_ids) == 80
    assert space.categories[0].id == VOID_ID and space.categories[0].ignore_in_eval


def test_description_file(description):
    ds = open_dataset(description)
    assert isinstance(ds, CocoPanopticData) and ds.name == "sample" and ds.root == description
    assert ds.folder == description.parent
    assert [s.stem for s in ds.samples("val")] == STEMS
    assert ds.describe()["splits"]["val"]["panoptic_json"] == str(JSON)


def test_folder_with_a_description_relative_paths_and_defaults(tmp_path):
    folder = tmp_path / "data"
    shutil.copytree(SAMPLE / "images", folder / "pictures")
    shutil.copytree(SAMPLE / "panoptic_examples", folder / "pan" / "panoptic_examples")
    shutil.copy(JSON, folder / "pan" / "panoptic_examples.json")
    (folder / "gtFine").mkdir()  # the description wins over a Cityscapes-looking folder
    (folder / DESCRIPTION_NAME).write_text(json.dumps({
        "format": "coco-panoptic", "splits": {"val": {
            "images": "pictures", "panoptic_json": "pan/panoptic_examples.json"}},
        "ignore_categories": [184]}))
    ds = open_dataset(folder)
    assert isinstance(ds, CocoPanopticData) and ds.folder == folder
    assert ds.name == "data"  # default: the folder's name
    # panoptic_dir defaults to the JSON's path without .json
    assert ds.splits["val"].panoptic_dir is None
    samples = ds.images("val")
    png_dir = (folder / "pan" / "panoptic_examples").resolve()
    assert {s.png_path.parent for s in samples} == {png_dir}
    assert [s.image_path.name for s in samples] == [f"{s}.jpg" for s in STEMS]
    space = ds.label_space("val")
    assert space.num_classes == 132  # 184 is not evaluated
    assert int(space.label_to_train[184]) == space.ignore


# --- errors: one line naming the file --------------------------------------------------------

def test_missing_root_and_no_root(tmp_path, monkeypatch):
    with pytest.raises(InputError) as err:
        open_dataset(tmp_path / "nowhere")
    assert _one_line(err) == f"{tmp_path / 'nowhere'}: dataset root not found"
    monkeypatch.delenv(cityscapes.ENV_ROOT, raising=False)
    with pytest.raises(InputError, match=r"pass --root or set \$CITYSCAPES_DATASET"):
        open_dataset(None)


def test_a_folder_that_is_no_dataset(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_val.json").write_text("{}")  # not panoptic
    with pytest.raises(InputError) as err:
        open_dataset(tmp_path)
    msg = _one_line(err)
    assert msg.startswith(f"{tmp_path}: not a dataset root")
    for form in ("gtFine/", "annotations/panoptic_<split>.json", DESCRIPTION_NAME):
        assert form in msg


@pytest.mark.parametrize("body, words", [
    ({"format": "voc", "splits": {"val": {"panoptic_json": "a.json"}}},
     "format must be 'coco-panoptic', got 'voc'"),
    ({"splits": {"val": {"panoptic_json": "a.json"}}}, "format must be 'coco-panoptic', got None"),
    ({"format": "coco-panoptic"}, "'splits' must be a non-empty object"),
    ({"format": "coco-panoptic", "splits": {}}, "'splits' must be a non-empty object"),
    ({"format": "coco-panoptic", "splits": {"val": {"images": "images"}}},
     "split 'val' needs a 'panoptic_json' path"),
    ({"format": "coco-panoptic", "splits": {"val": {"panoptic_json": "../outside.json"}}},
     "path '../outside.json' leaves the folder"),
    ({"format": "coco-panoptic", "splits": {"val": {"panoptic_json": "a.json",
                                                     "images": "../../etc"}}},
     "path '../../etc' leaves the folder"),
    ({"format": "coco-panoptic", "splits": {"val": {"panoptic_json": "a.json", "images": 3}}},
     "split 'val': images must be a path"),
    ({"format": "coco-panoptic", "splits": {"val": {"panoptic_json": "a.json"}},
      "ignore_categories": "184"}, "'ignore_categories' must be a list of category ids"),
    ({"format": "coco-panoptic", "splits": {"val": {"panoptic_json": "a.json"}}, "name": ""},
     "'name' must be a non-empty string"),
    ([1, 2], "expected a dataset description object"),
])
def test_bad_descriptions(tmp_path, body, words):
    path = tmp_path / "d" / "desc.json"
    path.parent.mkdir()
    path.write_text(json.dumps(body))
    with pytest.raises(InputError) as err:
        open_dataset(path)
    msg = _one_line(err)
    assert msg.startswith(f"{path}: ") and words in msg, msg


def test_description_that_is_no_json(tmp_path):
    path = tmp_path / "desc.json"
    path.write_text("{not json")
    with pytest.raises(InputError) as err:
        open_dataset(path)
    assert _one_line(err).startswith(str(path))


def test_unknown_split_lists_the_known_ones(description, coco_folder):
    with pytest.raises(InputError) as err:
        open_dataset(description).samples("train")
    assert _one_line(err) == f"{description}: split 'train' not found; this dataset has val"
    with pytest.raises(InputError, match="split 'val' not found; this dataset has val2017"):
        open_dataset(coco_folder).label_space("val")


def test_a_split_whose_json_is_missing(tmp_path):
    path = write_description(tmp_path / "desc.json", {"val": {"panoptic_json": "gone.json"}})
    with pytest.raises(InputError) as err:
        open_dataset(path).samples("val")
    assert _one_line(err) == f"{tmp_path / 'gone.json'}: panoptic JSON of split 'val' not found"


# --- CocoSample: ground truth and image ------------------------------------------------------

def test_ground_truth_of_the_real_sample(description):
    """Label id = category id; non-crowd thing segments cat * 1000 + k (k in the order of
    segments_info per category), stuff and crowd segments the category, void 0."""
    raw = json.loads(JSON.read_text())
    things = {c["id"] for c in raw["categories"] if c["isthing"]}
    n_crowd = n_things = 0
    for sample in open_dataset(description).samples("val"):
        label_ids, instance_ids = sample.read_ground_truth()
        assert label_ids.dtype == np.uint8 and instance_ids.dtype == np.int32
        ids = sample.read_ids()
        assert label_ids.shape == ids.shape == (sample.image.height, sample.image.width)
        void = ids == 0
        assert void.any() and not label_ids[void].any() and not instance_ids[void].any()
        ann = next(a for a in raw["annotations"] if a["file_name"] == sample.png_path.name)
        k: dict[int, int] = {}
        seen = set()
        for seg in ann["segments_info"]:
            mask = ids == seg["id"]
            cat = seg["category_id"]
            assert (label_ids[mask] == cat).all()
            if cat in things and not seg["iscrowd"]:
                want = cat * 1000 + k.get(cat, 0)
                k[cat] = k.get(cat, 0) + 1
                n_things += 1
            else:
                want = cat  # stuff, or a crowd region as in Cityscapes
                n_crowd += bool(seg["iscrowd"])
            assert (instance_ids[mask] == want).all(), seg
            seen.add(want)
        assert set(np.unique(instance_ids)) - {0} == seen  # no two segments share an id
        # 16-bit where the ids fit (all categories of the sample's things are below 66)
        _, small = sample.read_ground_truth(np.uint16)
        assert small.dtype == np.uint16 and np.array_equal(small, instance_ids)
    assert n_crowd == 3 and n_things == 43 - 3


def test_uint16_ground_truth_refuses_ids_beyond_65535(tmp_path):
    data = json.loads(JSON.read_text())
    for ann in data["annotations"]:
        for seg in ann["segments_info"]:
            if seg["category_id"] == 1:
                seg["category_id"] = 90  # toothbrush, a thing
    (tmp_path / "pan.json").write_text(json.dumps(data))
    path = write_description(tmp_path / "desc.json", {"val": {
        "panoptic_json": "pan.json", "panoptic_dir": str(SAMPLE / "panoptic_examples")}})
    sample = open_dataset(path).samples("val")[0]
    assert int(sample.read_ground_truth()[1].max()) >= 90000
    with pytest.raises(InputError) as err:
        sample.read_ground_truth(np.uint16)
    assert _one_line(err).endswith("do not fit uint16") and str(sample.png_path) in str(err.value)


def test_read_image_checks_the_size_the_json_gives(tmp_path):
    data = json.loads(JSON.read_text())
    data["images"][0]["height"] += 1
    (tmp_path / "pan.json").write_text(json.dumps(data))
    path = write_description(tmp_path / "desc.json", {"val": {
        "panoptic_json": "pan.json", "panoptic_dir": str(SAMPLE / "panoptic_examples"),
        "images": str(SAMPLE / "images")}})
    good, bad = sorted(open_dataset(path).samples("val"),
                       key=lambda s: s.image.id != data["images"][0]["id"])[::-1]
    assert good.read_image().shape == (good.image.height, good.image.width, 3)
    with pytest.raises(InputError) as err:
        bad.read_image()
    assert _one_line(err) == (f"{bad.image_path}: image is 640x427, pan.json says 640x428")


def test_read_image_equals_the_jpeg_decoded(description):
    import cv2

    for sample in open_dataset(description).images("val"):
        want = cv2.cvtColor(cv2.imread(str(sample.image_path)), cv2.COLOR_BGR2RGB)
        assert np.array_equal(sample.read_image(), want)


def test_images_needs_every_image_on_disk(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(SAMPLE / "images" / f"{STEMS[0]}.jpg", images)
    path = write_description(tmp_path / "desc.json", {"val": {
        "panoptic_json": str(JSON), "panoptic_dir": str(SAMPLE / "panoptic_examples"),
        "images": "images"}})
    ds = open_dataset(path)
    assert len(ds.samples("val")) == 2  # the ground truth alone needs no images
    with pytest.raises(InputError) as err:
        ds.images("val")
    assert "missing on disk" in _one_line(err) and STEMS[1] in str(err.value)


def test_coco_samples_read_like_the_dataset_reader(description):
    """The samples' checked id maps are those of io.coco_panoptic.read_dataset."""
    data = read_dataset(JSON, SAMPLE / "panoptic_examples", SAMPLE / "images")
    for sample in open_dataset(description).samples("val"):
        assert np.array_equal(sample.read_ids(), data.read_ids(data.image(sample.stem)))
