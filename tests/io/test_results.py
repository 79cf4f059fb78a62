"""Readers of the official result formats (``panoptool.io.results``): each rule as the official
code reads it, and every bad entry refused in one line naming the file."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from panoptool.errors import InputError
from panoptool.io import results as R
from panoptool.io.files import write_png

STEM = "frankfurt_000000_000294"


def _one_line_error(call, *fragments):
    with pytest.raises(InputError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


# --- finding result files ---------------------------------------------------------------------

def test_index_results_finds_files_by_stem_in_subfolders(tmp_path):
    folder = tmp_path / "semantic"
    write_png(folder / "a" / f"{STEM}_anything.png", np.zeros((2, 2), np.uint8))
    write_png(folder / f".{STEM}_hidden.png", np.zeros((2, 2), np.uint8))
    found = R.index_results(folder, "*.png", {STEM, "other_000000_000000"}, "semantic")
    assert found == {STEM: folder / "a" / f"{STEM}_anything.png"}


def test_index_results_refuses_strays_doubles_and_links_outside(tmp_path):
    folder = tmp_path / "res" / "semantic"
    write_png(folder / f"{STEM}.png", np.zeros((2, 2), np.uint8))
    write_png(folder / "lindau_000000_000000.png", np.zeros((2, 2), np.uint8))
    _one_line_error(lambda: R.index_results(folder, "*.png", {STEM}, "semantic"),
                    "lindau_000000_000000.png", "no ground truth in this split")
    os.remove(folder / "lindau_000000_000000.png")
    write_png(folder / "sub" / f"{STEM}_pred.png", np.zeros((2, 2), np.uint8))
    _one_line_error(lambda: R.index_results(folder, "*.png", {STEM}, "semantic"),
                    f"second semantic result for image {STEM}")
    os.remove(folder / "sub" / f"{STEM}_pred.png")
    outside = tmp_path / "outside.png"
    os.replace(folder / f"{STEM}.png", outside)
    (folder / f"{STEM}.png").symlink_to(outside)
    _one_line_error(lambda: R.index_results(folder, "*.png", {STEM}, "semantic"),
                    "outside the results folder")


# --- PNGs ------------------------------------------------------------------------------------

def test_semantic_result_accepts_16_bit_ids_below_256_only(tmp_path):
    path = tmp_path / "s.png"
    write_png(path, np.array([[7, 26]], np.uint16))
    got = R.read_semantic_result(path, (1, 2))
    assert got.dtype == np.uint8 and got.tolist() == [[7, 26]]
    write_png(path, np.array([[7, 300]], np.uint16))
    _one_line_error(lambda: R.read_semantic_result(path, (1, 2)), "unknown label id(s) [300]")
    write_png(path, np.zeros((1, 2, 3), np.uint8))
    _one_line_error(lambda: R.read_semantic_result(path, (1, 2)), "single-channel", "3 channels")
    write_png(path, np.zeros((2, 2), np.uint8))
    _one_line_error(lambda: R.read_semantic_result(path, (1, 2)), str(path), "differs")


def test_palette_pngs_read_as_pil_reads_them(tmp_path):
    """Semantic: the palette indices; mask: PIL's convert("L") of the colours; panoptic:
    refused (the official code cannot read them either)."""
    path = tmp_path / "p.png"
    img = Image.fromarray(np.array([[0, 1, 2]], np.uint8), mode="P")
    img.putpalette([0, 0, 0, 255, 255, 255, 0, 0, 1] + [0] * (256 * 3 - 9))
    img.save(path)
    assert R.read_semantic_result(path, (1, 3)).tolist() == [[0, 1, 2]]
    assert R.read_mask(path, (1, 3)).tolist() == [[0, 255, 0]]  # (0, 0, 1) has luma 0
    _one_line_error(lambda: R.read_panoptic_rgb(path, (1, 3)), "palette PNG")


def test_rgb_mask_is_its_luma_as_in_pil(tmp_path):
    path = tmp_path / "m.png"
    rgb = np.array([[[0, 0, 1], [0, 0, 5], [255, 0, 0], [0, 0, 0]]], np.uint8)
    write_png(path, rgb)
    expected = np.array(Image.fromarray(rgb).convert("L"))
    np.testing.assert_array_equal(R.read_mask(path, (1, 4)), expected)
    assert (R.read_mask(path, (1, 4)) > 0).tolist() == [[False, True, True, False]]


def test_panoptic_png_must_be_8_bit_rgb_of_the_image_size(tmp_path):
    path = tmp_path / "p.png"
    write_png(path, np.zeros((2, 3), np.uint8))
    _one_line_error(lambda: R.read_panoptic_rgb(path, (2, 3)), "expected an 8-bit RGB PNG")
    write_png(path, np.zeros((2, 3, 3), np.uint8))
    assert R.read_panoptic_rgb(path, (2, 3)).shape == (2, 3, 3)
    _one_line_error(lambda: R.read_panoptic_rgb(path, (3, 3)), "differs from the ground truth")


# --- _pred.txt ---------------------------------------------------------------------------------

def _txt(tmp_path, text):
    txt = tmp_path / "instance" / f"{STEM}_pred.txt"
    txt.parent.mkdir(parents=True, exist_ok=True)
    txt.write_text(text)
    return txt


def test_instance_list_rules_of_the_official_parser(tmp_path):
    """A mask listed twice keeps its last line; label ids are int(float()) (truncated); blank
    lines are skipped; paths are relative to the file's folder."""
    txt = _txt(tmp_path, "masks/a.png 24 0.5\n\n  \nmasks/b.png 26.7 0.25\nmasks/a.png 25 0.9\n")
    rows = R.read_instance_list(txt, tmp_path)
    masks = tmp_path.resolve() / "instance" / "masks"
    assert rows == [(masks / "a.png", 25, 0.9), (masks / "b.png", 26, 0.25)]


@pytest.mark.parametrize("line, fragment", [
    ("masks/a.png 26", "expected '<mask png> <label id> <confidence>'"),
    ("/etc/a.png 26 0.5", "is absolute"),
    ("../../outside.png 26 0.5", "path '../outside.png' leaves the folder"),  # no line number
    ("masks/a.png car 0.5", "must be numbers"),
    ("masks/a.png 99 0.5", "unknown label id 99"),
    ("masks/a.png 26 nan", "confidence must be finite"),
])
def test_instance_list_bad_line_is_one_line_naming_the_file(tmp_path, line, fragment):
    txt = _txt(tmp_path, f"masks/ok.png 26 0.5\n{line}\n")
    where = () if "leaves" in fragment else ("line 2: ",)
    _one_line_error(lambda: R.read_instance_list(txt, tmp_path), str(txt), *where, fragment)


def test_instance_list_missing_file(tmp_path):
    _one_line_error(lambda: R.read_instance_list(tmp_path / "x_pred.txt", tmp_path),
                    "file not found")


# --- panoptic.json -----------------------------------------------------------------------------

def _panoptic(tmp_path, annotations):
    (tmp_path / "panoptic.json").write_text(json.dumps({"annotations": annotations}))
    return tmp_path / "panoptic.json"


def _ann(image_id=STEM, **extra):
    return {"image_id": image_id, "segments_info": [{"id": 7, "category_id": 7},
                                                    {"id": 26001, "category_id": 26}], **extra}


def test_panoptic_json_entries_by_image_id_in_file_order(tmp_path):
    _panoptic(tmp_path, [_ann("b_000000_000000", file_name="x/custom.png"), _ann("a_000000_000000")])
    anns = R.read_panoptic_json(tmp_path)
    assert list(anns) == ["b_000000_000000", "a_000000_000000"]
    b, a = anns["b_000000_000000"], anns["a_000000_000000"]
    assert b.png == tmp_path.resolve() / "panoptic" / "x" / "custom.png"  # file_name is honoured
    assert a.png.name == "a_000000_000000_panoptic.png"  # default name
    assert a.ids == (7, 26001) and a.categories == (7, 26)
    assert a.segments() == {7: 7, 26001: 26}


def test_panoptic_json_against_the_split(tmp_path):
    _panoptic(tmp_path, [_ann("a_000000_000000")])
    assert list(R.read_panoptic_json(tmp_path, ["a_000000_000000"])) == ["a_000000_000000"]
    _one_line_error(lambda: R.read_panoptic_json(tmp_path, ["b_000000_000000"]),
                    "annotation for image 'a_000000_000000', which has no ground truth")
    _one_line_error(lambda: R.read_panoptic_json(
        tmp_path, ["a_000000_000000", "b_000000_000000", "c_000000_000000"]),
        "no annotation for image b_000000_000000 and 1 more")


def _edit_segment(key, value):
    def edit(ann):
        ann["segments_info"][1][key] = value
    return edit


BAD_ENTRIES = {
    "annotations not a list": (lambda ann: None, "expected a COCO panoptic object"),
    "no segments_info": (lambda ann: ann.pop("segments_info"), "lacks image_id or segments_info"),
    "file_name not a string": (lambda ann: ann.update(file_name=3), "file_name must be a string"),
    "file_name leaves": (lambda ann: ann.update(file_name="../../x.png"), "leaves the folder"),
    "segment without id": (lambda ann: ann["segments_info"][1].pop("id"), "a segment lacks"),
    "string category": (_edit_segment("category_id", "26"),
                        "segment category_id must be an integer, got str '26'"),
    "bool id": (_edit_segment("id", True), "segment id must be an integer, got bool"),
    "float id": (_edit_segment("id", 26001.0), "segment id must be an integer, got float"),
    "void category": (_edit_segment("category_id", 1), "segment 26001 has unknown category_id 1"),
    "category over 255": (_edit_segment("category_id", 282), "unknown category_id 282"),
    "id over 24 bits": (_edit_segment("id", 1 << 24), "is not a 24-bit RGB id"),
    "negative id": (_edit_segment("id", -1), "is not a 24-bit RGB id"),
    "id twice": (_edit_segment("id", 7), "segment id(s) [7] listed twice"),
}


@pytest.mark.parametrize("name", list(BAD_ENTRIES))
def test_panoptic_json_bad_entry_is_one_line_naming_the_file(tmp_path, name):
    edit, fragment = BAD_ENTRIES[name]
    ann = _ann()
    if name == "annotations not a list":
        (tmp_path / "panoptic.json").write_text(json.dumps({"annotations": {}}))
    else:
        edit(ann)
        _panoptic(tmp_path, [ann])
    _one_line_error(lambda: R.read_panoptic_json(tmp_path), str(tmp_path / "panoptic.json"),
                    fragment)


def test_panoptic_json_image_annotated_twice(tmp_path):
    _panoptic(tmp_path, [_ann(), _ann()])
    _one_line_error(lambda: R.read_panoptic_json(tmp_path), f"image {STEM} is annotated twice")


def test_panoptic_json_too_many_segments(tmp_path):
    ann = _ann()
    ann["segments_info"] = [{"id": i + 1, "category_id": 7} for i in range(R.MAX_SEGMENTS + 1)]
    _panoptic(tmp_path, [ann])
    _one_line_error(lambda: R.read_panoptic_json(tmp_path), "65535 segments; at most 65534")
    ann["segments_info"].pop()
    _panoptic(tmp_path, [ann])
    assert len(R.read_panoptic_json(tmp_path)[STEM].ids) == R.MAX_SEGMENTS


def test_panoptic_categories_are_those_of_the_panoptic_evaluation():
    from panoptool.evaluation.metrics import panoptic

    np.testing.assert_array_equal(R.IS_PANOPTIC_CATEGORY, panoptic.IS_CATEGORY)
