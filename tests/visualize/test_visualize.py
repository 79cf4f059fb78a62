"""Drawing functions (colours, colour wheel, outlines, panels, curves) and `panoptool visualize`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from cityscapesscripts.helpers.labels import labels as cs_labels

from panoptool.io import formats
from panoptool.visualize import render as V
from panoptool.io.cityscapes import list_samples, read_ground_truth
from panoptool.errors import ConfigError, InputError
from panoptool.io.files import read_png, write_json, write_png
from panoptool.io.results import read_panoptic_json
from panoptool.labels import LABEL_TO_TRAIN
from panoptool_cli.main import cli


# --- colours -------------------------------------------------------------------------------

def test_semantic_colours_are_the_official_ones():
    for lab in cs_labels:
        if 0 <= lab.trainId < 19:
            got = V.colorize_train_ids(np.array([[lab.trainId]], np.uint8))[0, 0]
            assert tuple(got) == lab.color, lab.name
    assert V.colorize_train_ids(np.array([[255]], np.uint8))[0, 0].tolist() == [0, 0, 0]
    # label ids go through their train id: 26 = car
    assert V.colorize_label_ids(np.array([[26]], np.uint8))[0, 0].tolist() == [0, 0, 142]


def test_heatmap_is_monotone_in_brightness_and_rejects_bad_range():
    img = V.heatmap(np.linspace(0, 1, 11)[None, :]).astype(int)
    brightness = img.sum(axis=-1)[0]
    assert (np.diff(brightness) > 0).all()
    assert V.heatmap(np.array([[np.nan, 2.0]])).shape == (1, 2, 3)  # NaN and clipping
    with pytest.raises(ConfigError):
        V.heatmap(np.zeros((2, 2)), vmin=1, vmax=1)


def _close(rgb, expected, tol=1):
    return np.abs(np.asarray(rgb, int) - expected).max() <= tol


def test_offset_colour_wheel_direction_is_hue_and_length_is_brightness():
    # right (+x) -> red; down (+y) -> hue 90 = (127, 255, 0); left -> cyan; up -> hue 270;
    # the last one points down at half the full length: half the brightness
    off = np.array([[[0, 10, 0, -10, 5]], [[10, 0, -10, 0, 0]]], dtype=np.float32)
    rgb = V.offsets_to_rgb(off, max_norm=10)
    assert _close(rgb[0, 0], [255, 0, 0])
    assert _close(rgb[0, 1], [127, 255, 0])
    assert _close(rgb[0, 2], [0, 255, 255])
    assert _close(rgb[0, 3], [127, 0, 255])
    assert _close(rgb[0, 4], [64, 128, 0])
    valid = np.array([[True, False, True, True, True]])
    assert V.offsets_to_rgb(off, valid, max_norm=10)[0, 1].tolist() == [0, 0, 0]
    with pytest.raises(ConfigError):
        V.offsets_to_rgb(np.zeros((3, 2, 2)))


def test_color_wheel_matches_offsets_to_rgb():
    wheel = V.color_wheel(33)
    assert wheel[16, 16].tolist() == [0, 0, 0]          # centre: zero length
    assert _close(wheel[16, 32], [255, 0, 0])           # right rim: pointing right
    assert _close(wheel[32, 16], [127, 255, 0])         # bottom rim: pointing down
    assert wheel[0, 0].tolist() == [0, 0, 0]            # outside the disc


def test_gt_offsets_point_to_the_centroid():
    inst = np.zeros((7, 9), np.int64)
    inst[1:4, 2:7] = 26001  # centroid (2, 4)
    off, valid = V.gt_offsets(inst)
    ys, xs = np.nonzero(valid)
    np.testing.assert_allclose(ys + off[0, ys, xs], 2.0)
    np.testing.assert_allclose(xs + off[1, ys, xs], 4.0)
    assert valid.sum() == 15 and (off[:, ~valid] == 0).all()


def test_gt_contour_separates_touching_instances_and_skips_crowd_and_stuff():
    label = np.full((6, 8), 7, np.uint8)  # road
    inst = np.full((6, 8), 7, np.int32)
    label[1:5, 1:7] = 26
    inst[1:5, 1:4] = 26001
    inst[1:5, 4:7] = 26002
    label[0, :] = 26
    inst[0, :] = 26          # a crowd region: no instance, no contour
    things = V.thing_instance_ids(label, inst)
    assert set(np.unique(things)) == {0, 26001, 26002}
    contour = V.gt_contour(things)
    assert contour[2, 3] == 1 and contour[2, 4] == 1  # both sides of the shared border
    assert contour[0].sum() == 0 and contour[5].sum() == 0
    assert contour[2, 2] == 0  # interior


def test_instances_get_distinct_colours_outlines_and_dimmed_background():
    inst = np.zeros((6, 9), np.int32)
    inst[1:5, 1:4] = 1
    inst[1:5, 4:8] = 2
    bg = np.full((6, 9, 3), 90, np.uint8)
    rgb = V.colorize_instances(inst, background=bg)
    assert rgb[0, 0].tolist() == [30, 30, 30]
    assert rgb[2, 3].tolist() == [255, 255, 255] and rgb[2, 4].tolist() == [255, 255, 255]
    assert rgb[2, 2].tolist() != rgb[2, 5].tolist()
    assert rgb[2, 2].tolist() != [255, 255, 255]


def test_panoptic_keeps_stuff_colours_and_shades_each_thing():
    train = np.zeros((6, 9), np.uint8)          # road
    train[1:5, 1:8] = 13                        # car
    seg = np.zeros((6, 9), np.int64)
    seg[1:5, 1:4] = 26001
    seg[1:5, 4:8] = 26002
    rgb = V.colorize_panoptic(train, seg)
    assert rgb[0, 0].tolist() == [128, 64, 128]
    assert rgb[2, 2].tolist() != rgb[2, 6].tolist()
    assert np.abs(rgb[2, 2].astype(int) - [0, 0, 142]).max() <= 40  # still car-coloured
    assert rgb[2, 3].tolist() == [255, 255, 255]                  # outline between them


def test_compose_panel_layout_and_missing_tiles():
    a = np.full((10, 20, 3), 200, np.uint8)
    panel = V.compose_panel([[("a", a), ("b", None)], [("c", a[..., 0])]],
                            tile_width=100, title="x", gap=4)
    tile_h = 50
    assert panel.shape == (30 + 2 * (22 + tile_h + 4) + 4, 2 * 100 + 3 * 4, 3)
    y0 = 30 + 4 + 22
    assert (panel[y0 + 10, 4 + 50] == 200).all()                  # image tile
    assert (panel[y0 + 2, 108 + 2] == V.MISSING_COLOR).all()      # missing tile
    with pytest.raises(ConfigError):
        V.compose_panel([[("a", None)]])


def test_training_curve_plots_loss_columns():
    df = pd.DataFrame({"iter": np.arange(1, 101), "loss": np.linspace(3, 1, 100),
                       "loss_semantic": np.linspace(2, 0.5, 100), "lr": np.linspace(5e-3, 0, 100),
                       "val_PQ": [np.nan] * 99 + [40.0], "empty": [np.nan] * 100})
    img = V.training_curve(df, title="run", size=(6, 3), dpi=50)
    assert img.shape == (150, 300, 3) and img.dtype == np.uint8
    assert (img < 128).any() and (img == 255).any()
    with pytest.raises(ConfigError):
        V.training_curve(df.iloc[:0])


# --- files: the runner and the CLI ---------------------------------------------------------

def _write_perfect_predictions(root, tmp_path):
    """Maps and official results equal to the ground truth, for the val split of ``root``."""
    maps, results = tmp_path / "maps", tmp_path / "results"
    annotations = []
    for s in list_samples(root, "val"):
        label, inst = read_ground_truth(s)
        train = LABEL_TO_TRAIN[label]
        things = V.thing_instance_ids(label, inst)
        off, _ = V.gt_offsets(things)
        formats.write_maps(formats.maps_path(maps, "val", s.stem), train_ids=train,
                           confidence=np.ones(train.shape, np.float32),
                           contour_prob=V.gt_contour(things).astype(np.float32),
                           offset_yx=off)
        write_png(formats.semantic_result_path(results, s.stem), label)
        lines, segments = [], []
        for k, iid in enumerate(np.unique(things[things > 0]), start=1):
            rel = formats.instance_mask_relpath(s.stem, k)
            write_png(formats.instance_txt_path(results, s.stem).parent / rel,
                      ((things == iid) * 255).astype(np.uint8))
            lines.append(f"{rel} {iid // 1000} 1.0")
        formats.instance_txt_path(results, s.stem).write_text("\n".join(lines) + "\n")
        pan = np.where(things > 0, things, label.astype(np.int64))
        pan[train == 255] = 0  # void: no segment (panoptic.json lists only categories)
        for sid in np.unique(pan[pan > 0]):
            segments.append({"id": int(sid), "category_id": int(sid // 1000 if sid >= 1000
                                                                  else sid)})
        write_png(formats.panoptic_png_path(results, s.stem), formats.panoptic_id_to_rgb(pan))
        annotations.append({"image_id": s.stem, "file_name": f"{s.stem}_panoptic.png",
                            "segments_info": segments})
    write_json(formats.panoptic_json_path(results), {"annotations": annotations})
    return maps, results


def test_visualize_cli_writes_a_panel_per_image_and_a_curve(synth_root, tmp_path):
    maps, results = _write_perfect_predictions(synth_root, tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    pd.DataFrame({"iter": [1, 2, 3], "loss": [3.0, 2.0, 1.5]}).to_csv(run / "metrics.csv",
                                                                      index=False)
    out = tmp_path / "vis"
    result = CliRunner().invoke(cli, ["visualize", "--root", str(synth_root), "--maps", str(maps),
                                      "--results", str(results), "--out", str(out), "--n", "2",
                                      "--tile-width", "128", "--run", str(run),
                                      "--workers", "1"])
    assert result.exit_code == 0, result.output
    pngs = sorted(p.name for p in out.glob("*.png"))
    stems = [s.stem for s in list_samples(synth_root, "val")][:2]
    assert pngs == sorted([f"{s}.png" for s in stems] + ["training_curve.png"])
    panel = read_png(out / f"{stems[0]}.png")
    assert panel.shape[1] == 2 * 128 + 3 * 4           # two columns: ground truth, prediction
    assert panel.shape[0] == 30 + 6 * (22 + 64 + 4) + 4  # six rows, 128x256 tiles of 64 px
    # with perfect predictions no prediction tile is "not available", and the semantic
    # prediction tile equals the ground-truth one
    for row in range(6):
        y = 30 + row * (22 + 64 + 4) + 4 + 22
        pred = panel[y:y + 64, 136:264]
        assert (pred == V.MISSING_COLOR).all(axis=-1).mean() < 0.5, row
        if row == 1:
            np.testing.assert_array_equal(pred, panel[y:y + 64, 4:132])


def test_visualize_rows_match_between_ground_truth_and_perfect_prediction(synth_root, tmp_path):
    maps, results = _write_perfect_predictions(synth_root, tmp_path)
    sample = list_samples(synth_root, "val")[0]
    label, inst = read_ground_truth(sample)
    annotation = read_panoptic_json(results)[sample.stem]
    train, seg = V.read_panoptic_result(annotation, label.shape)
    np.testing.assert_array_equal(train, LABEL_TO_TRAIN[label])
    inst_map, labels = V.read_instance_result(results, sample.stem, label.shape)
    things = V.thing_instance_ids(label, inst)
    assert inst_map.max() == len(np.unique(things[things > 0])) == len(labels)
    np.testing.assert_array_equal(inst_map > 0, things > 0)


def test_visualize_reports_bad_input_in_one_line(synth_root, tmp_path):
    maps, results = _write_perfect_predictions(synth_root, tmp_path)
    stem = list_samples(synth_root, "val")[0].stem
    formats.maps_path(maps, "val", stem).write_bytes(b"not a zip")
    result = CliRunner().invoke(cli, ["visualize", "--root", str(synth_root), "--maps", str(maps),
                                      "--out", str(tmp_path / "v"), "--n", "1", "--workers", "1"])
    assert result.exit_code == 1
    assert result.output.startswith("panoptool: error: ") and stem in result.output
    assert result.output.count("\n") == 1
    # a mask path that leaves the result folder
    txt = formats.instance_txt_path(results, stem)
    txt.write_text("../../../etc/passwd 26 1.0\n")
    with pytest.raises(InputError, match="leaves the folder"):
        V.read_instance_result(results, stem, (128, 256))
    # nothing to draw at all
    result = CliRunner().invoke(cli, ["visualize", "--out", str(tmp_path / "v")],
                                env={"CITYSCAPES_DATASET": ""})
    assert result.exit_code == 1 and "nothing to draw" in result.output


# --- results are read as report reads them (panoptool.io.results) ------------------------------

def _panoptic_tile(panel: np.ndarray) -> np.ndarray:
    """The prediction tile of the panoptic row (the sixth) of a 128-px-wide panel."""
    y = 30 + 5 * (22 + 64 + 4) + 4 + 22
    return panel[y:y + 64, 136:264]


def test_visualize_draws_the_panoptic_png_that_panoptic_json_names(synth_root, tmp_path):
    """file_name is honoured by visualize as by report (not a name made from the stem)."""
    from panoptool.evaluation.runner import evaluate

    _, results = _write_perfect_predictions(synth_root, tmp_path)
    stem = list_samples(synth_root, "val")[0].stem
    path = formats.panoptic_json_path(results)
    data = json.loads(path.read_text())
    formats.panoptic_png_path(results, stem).rename(results / "panoptic" / "renamed.png")
    data["annotations"][0]["file_name"] = "renamed.png"
    path.write_text(json.dumps(data))
    assert evaluate(synth_root, "val", results, workers=1, cache=False,
                    show_progress=False).metrics["PQ"] is not None
    out = tmp_path / "vis"
    result = CliRunner().invoke(cli, ["visualize", "--root", str(synth_root), "--results",
                                      str(results), "--out", str(out), "--n", "1",
                                      "--tile-width", "128", "--workers", "1"])
    assert result.exit_code == 0, result.output
    tile = _panoptic_tile(read_png(out / f"{stem}.png"))
    assert (tile == V.MISSING_COLOR).all(axis=-1).mean() < 0.5


def _string_category(data):
    data["annotations"][0]["segments_info"][0]["category_id"] = "7"


def _void_category(data):
    data["annotations"][0]["segments_info"][0]["category_id"] = 1


def _id_twice(data):
    segments = data["annotations"][0]["segments_info"]
    segments.append(dict(segments[0]))


def _file_name_leaves(data):
    data["annotations"][0]["file_name"] = "../../elsewhere.png"


def _no_segments_info(data):
    del data["annotations"][0]["segments_info"]


@pytest.mark.parametrize("edit", [_string_category, _void_category, _id_twice,
                                  _file_name_leaves, _no_segments_info])
def test_a_bad_panoptic_json_entry_is_the_same_error_in_report_and_visualize(
        synth_root, tmp_path, edit):
    _, results = _write_perfect_predictions(synth_root, tmp_path)
    results = results.resolve()
    path = formats.panoptic_json_path(results)
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    report = CliRunner().invoke(cli, ["report", "--root", str(synth_root), "--results",
                                      str(results), "--out", str(tmp_path / "rep"),
                                      "--no-cache", "--workers", "1"])
    vis = CliRunner().invoke(cli, ["visualize", "--root", str(synth_root), "--results",
                                   str(results), "--out", str(tmp_path / "vis"), "--n", "1",
                                   "--workers", "1"])
    assert report.exit_code == vis.exit_code == 1, (report.output, vis.output)
    line = report.output.strip()
    assert line.count("\n") == 0 and line.startswith(f"panoptool: error: {path}: "), line
    assert vis.output.strip() == line
