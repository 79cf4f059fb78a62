"""``panoptool convert``: the panoptic ground truth equals createPanopticImgs; results conversions
round-trip and are read by the official evaluator."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from panoptool.convert import panoptic as cp
from panoptool.io import formats
from panoptool.errors import InputError
from panoptool.evaluation.runner import evaluate
from panoptool.io.files import read_png, write_png
from panoptool.evaluation.official import _official_environment
from panoptool_cli import main

from official import make_results


def _cli(*args):
    return CliRunner().invoke(main.cli, ["convert", *map(str, args)])


def _edge_case_ids(h: int, w: int) -> np.ndarray:
    """Instance ids of every kind: VOID labels, ignored labels with instances (caravan,
    trailer), crowd of thing classes, stuff, thing instances, one-pixel segments in corners."""
    inst = np.full((h, w), 7, np.uint16)  # road
    inst[:, : w // 8] = 0  # unlabeled
    inst[: h // 8, :] = 3  # out of roi
    inst[h // 4: h // 2, w // 4: w // 2] = 26  # car crowd
    inst[h // 4: h // 3, w // 2: w // 2 + 9] = 26001
    inst[h // 2: h // 2 + 5, 3 * w // 4: 3 * w // 4 + 7] = 29001  # caravan: ignored
    inst[h - 5:, w - 6:] = 30  # trailer crowd: ignored
    inst[h // 2 + 8: h // 2 + 12, 10: 30] = 24000  # instance k = 0
    inst[h - 1, 0] = 33  # bicycle crowd, one pixel
    inst[0, w - 1] = 24999  # one pixel, top right
    inst[h // 3, w // 3] = 21  # vegetation inside the crowd
    inst[h // 3 + 1, :] = 17  # a pole across everything
    return inst


@pytest.fixture(scope="module")
def gt_root(make_synth, tmp_path_factory):
    """A synthetic split plus one hand-made image of edge cases, in a second city."""
    src = make_synth(n=3, height=96, width=192, seed=3)
    root = tmp_path_factory.mktemp("convert_root")
    shutil.copytree(src / "gtFine", root / "gtFine")
    inst = _edge_case_ids(96, 192)
    folder = root / "gtFine" / "val" / "zurich"
    write_png(folder / "zurich_000001_000019_gtFine_instanceIds.png", inst)
    label = np.where(inst >= 1000, inst // 1000, inst).astype(np.uint8)
    write_png(folder / "zurich_000001_000019_gtFine_labelIds.png", label)
    return root


def _official(root: Path, out: Path, use_train_id: bool) -> None:
    from cityscapesscripts.preparation.createPanopticImgs import convert2panoptic

    out.mkdir(parents=True, exist_ok=True)
    with _official_environment(out):
        convert2panoptic(str(root / "gtFine"), str(out), use_train_id, ["val"])


def _assert_same_conversion(official: Path, ours: Path, base: str) -> dict:
    text = (ours / f"{base}.json").read_text()
    assert text == (official / f"{base}.json").read_text()  # same JSON, byte for byte
    data = json.loads(text)
    for ann in data["annotations"]:
        theirs = np.array(Image.open(official / base / ann["file_name"]))
        mine = read_png(ours / base / ann["file_name"])
        assert mine.dtype == theirs.dtype and np.array_equal(mine, theirs), ann["file_name"]
    return data


@pytest.mark.parametrize("category_ids", ["label", "train"])
def test_panoptic_gt_equals_create_panoptic_imgs(gt_root, tmp_path, category_ids):
    _official(gt_root, tmp_path / "official", category_ids == "train")
    r = _cli("panoptic-gt", "--root", gt_root, "--split", "val", "--out", tmp_path / "ours",
             "--category-ids", category_ids, "--workers", 2)
    assert r.exit_code == 0, r.output
    base = cp.output_name("val", category_ids)
    data = _assert_same_conversion(tmp_path / "official", tmp_path / "ours", base)
    assert len(data["annotations"]) == 4
    edge = {s["id"]: s for s in data["annotations"][-1]["segments_info"]}
    # ignored labels and VOID are no segments; crowd of things is iscrowd, stuff is not
    assert set(edge) == {7, 17, 21, 26, 33, 24000, 24999, 26001}
    assert edge[26]["iscrowd"] == 1 and edge[7]["iscrowd"] == 0 and edge[24000]["iscrowd"] == 0
    assert edge[24999]["bbox"] == [191, 0, 1, 1] and edge[33]["bbox"] == [0, 95, 1, 1]


def test_panoptic_gt_resumes_and_redoes_changed_images(gt_root, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(gt_root, root)
    out = tmp_path / "out"
    first = cp.convert_panoptic_gt(root, "val", out, workers=1, show_progress=False)
    assert (first.converted, first.skipped) == (4, 0)
    json_path = Path(first.json_path)
    again = cp.convert_panoptic_gt(root, "val", out, workers=1, show_progress=False)
    assert (again.converted, again.skipped) == (0, 4)
    # a changed ground-truth file, a lost PNG and an interrupted run (no JSON) are redone
    files = cp.gt_files(root, "val")
    inst = read_png(files[0])
    inst[:4, :4] = 24007
    write_png(files[0], inst)
    png = next(Path(first.png_dir).glob("zurich_*_panoptic.png"))
    png.unlink()
    json_path.unlink()
    redo = cp.convert_panoptic_gt(root, "val", out, workers=1, show_progress=False)
    assert (redo.converted, redo.skipped) == (2, 2)
    assert png.is_file()
    _official(root, tmp_path / "official", False)
    data = _assert_same_conversion(tmp_path / "official", out, "cityscapes_panoptic_val")
    assert 24007 in [s["id"] for s in data["annotations"][0]["segments_info"]]
    assert not list(out.rglob(".tmp-*"))


def test_panoptic_gt_bad_input_is_one_line_and_writes_no_json(gt_root, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(gt_root, root)
    files = cp.gt_files(root, "val")
    inst = read_png(files[1])
    inst[5, 5] = 40001  # label 40 does not exist
    write_png(files[1], inst)
    out = tmp_path / "out"
    r = _cli("panoptic-gt", "--root", root, "--out", out, "--workers", 1)
    assert r.exit_code == 1
    line = r.output.strip()
    assert line.startswith("panoptool: error: ") and "\n" not in line
    assert os.path.basename(files[1]) in line and "[40001]" in line
    assert not (out / "cityscapes_panoptic_val.json").exists()
    r = _cli("panoptic-gt", "--root", root, "--split", "nosuch", "--out", out)
    assert r.exit_code == 1 and "split 'nosuch' not found" in r.output


def test_results_to_official_is_read_by_the_official_evaluator(gt_root, tmp_path):
    from cityscapesscripts.evaluation import evalPanopticSemanticLabeling as m

    results = make_results(gt_root, "val", tmp_path / "res", "noisy", seed=2)
    ours = evaluate(gt_root, "val", results, workers=1, cache=False).metrics
    r = _cli("panoptic-results", "--to", "official", "--input", results, "--out",
             tmp_path / "submit")
    assert r.exit_code == 0, r.output
    gt_out = tmp_path / "gt"
    assert cp.convert_panoptic_gt(gt_root, "val", gt_out, workers=1,
                                  show_progress=False).images == 4
    work = tmp_path / "work"
    work.mkdir()
    # the official evaluator with its default prediction names below $CITYSCAPES_RESULTS
    with _official_environment(work):
        res = m.evaluatePanoptic(str(gt_out / "cityscapes_panoptic_val.json"),
                                 str(gt_out / "cityscapes_panoptic_val"),
                                 str(tmp_path / "submit" / "cityscapes_panoptic_val.json"),
                                 str(tmp_path / "submit" / "cityscapes_panoptic_val"),
                                 str(work / "result.json"))
    for ours_key, (group, key) in {"PQ": ("All", "pq"), "SQ_th": ("Things", "sq"),
                                   "RQ_st": ("Stuff", "rq")}.items():
        assert ours[ours_key] == pytest.approx(100 * res[group][key], abs=1e-6)


def test_results_round_trip_through_train_ids(gt_root, tmp_path):
    results = make_results(gt_root, "val", tmp_path / "res", "noisy", seed=5)
    before = evaluate(gt_root, "val", results, workers=1, cache=False).metrics
    official = cp.results_to_official(results, tmp_path / "submit", "val",
                                      category_ids="train")
    data = json.loads(Path(official.json_path).read_text())
    assert Path(official.json_path).name == "cityscapes_panoptic_val_trainId.json"
    assert {c["id"] for c in data["categories"]} == set(range(19))
    cats = {s["category_id"] for a in data["annotations"] for s in a["segments_info"]}
    assert cats <= set(range(19)) and cats
    back = cp.results_from_coco(official.json_path, tmp_path / "back")  # auto: train ids
    assert back.segments == official.segments
    after = evaluate(gt_root, "val", tmp_path / "back", workers=1, cache=False).metrics
    for key in ("PQ", "SQ", "RQ", "PQ_th", "PQ_st"):
        assert after[key] == pytest.approx(before[key], abs=1e-9), key
    for stem_png in (tmp_path / "back" / formats.PANOPTIC_DIR).glob("*.png"):
        assert stem_png.name.endswith("_panoptic.png")


def test_results_from_coco_bad_input(gt_root, tmp_path):
    results = make_results(gt_root, "val", tmp_path / "res", "noisy", seed=1)
    official = cp.results_to_official(results, tmp_path / "submit", "val")
    json_path = Path(official.json_path)
    data = json.loads(json_path.read_text())
    no_cats = dict(data)
    del no_cats["categories"]
    bad = tmp_path / "submit" / "cityscapes_panoptic_val_nocats.json"
    bad.write_text(json.dumps(no_cats))
    with pytest.raises(InputError, match="pass --category-ids label or train"):
        cp.results_from_coco(bad, tmp_path / "out", tmp_path / "submit" /
                             "cityscapes_panoptic_val")
    data["annotations"][0]["segments_info"][0]["category_id"] = 5  # neither label nor ...
    bad.write_text(json.dumps(data))
    r = _cli("panoptic-results", "--to", "panoptool", "--input", bad, "--out",
             tmp_path / "out", "--png-dir", tmp_path / "submit" / "cityscapes_panoptic_val")
    assert r.exit_code == 1
    assert "unknown category_id 5" in r.output and bad.name in r.output
    assert not (tmp_path / "out" / "panoptic.json").exists()


# --- PQ counting straight from the PNG's colours (panoptool.evaluation.metrics.panoptic) ----------------

@pytest.mark.parametrize("seed", range(4))
def test_rgb_segment_counts_equal_per_pixel_counts(seed):
    from panoptool.evaluation.metrics.gt import segment_ground_truth
    from panoptool.evaluation.metrics.panoptic import rgb_segment_counts, segment_prediction_counts

    rng = np.random.default_rng(seed)
    h, w = 37, 53
    # blocky ground truth and prediction (runs), plus single-pixel noise
    inst = np.repeat(rng.choice([0, 7, 11, 26, 26001, 26002, 24005], size=(h, 6)), 9,
                     axis=1)[:, :w].astype(np.int32)
    inst[rng.random((h, w)) < 0.05] = 21
    label = np.where(inst >= 1000, inst // 1000, inst).astype(np.uint8)
    gt = segment_ground_truth(label, inst)
    ids = np.array([0, 5, 70000, 2**24 - 1, 300, 26001], dtype=np.int64)
    pan = rng.choice(ids, size=(h, w // 4 + 1)).repeat(4, axis=1)[:, :w]
    pan[rng.random((h, w)) < 0.05] = 300
    listed = ids[1:] if seed % 2 else ids  # 0 listed (a segment) or not (VOID)
    rgb = formats.panoptic_id_to_rgb(pan)
    if seed >= 2:  # a 4th byte that varies on its own only splits runs
        rgb = np.concatenate([rgb, rng.integers(0, 256, (h, w, 1), dtype=np.uint8)], axis=2)
    counts, unlisted = rgb_segment_counts(gt, np.ascontiguousarray(rgb), listed)
    index = np.zeros((h, w), np.int64)
    for k, i in enumerate(listed, start=1):
        index[pan == i] = k
    assert np.array_equal(counts, segment_prediction_counts(gt, index, len(listed) + 1))
    assert unlisted.tolist() == []
    counts, unlisted = rgb_segment_counts(gt, formats.panoptic_id_to_rgb(pan), listed[2:])
    assert unlisted.tolist() == sorted(set(listed[:2].tolist()) - {0})


def test_report_json_and_tables_need_no_pandas(gt_root, tmp_path):
    import subprocess
    import sys

    results = make_results(gt_root, "val", tmp_path / "res", "noisy", seed=6)
    shutil.rmtree(results / "semantic")
    shutil.rmtree(results / "instance")
    code = ("import sys; from panoptool_cli.main import cli\n"
            "try:\n    cli(sys.argv[1:])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "assert 'pandas' not in sys.modules, 'pandas imported'\n")
    proc = subprocess.run([sys.executable, "-c", code, "report", "--root", str(gt_root),
                           "--results", str(results), "--out", str(tmp_path / "rep"),
                           "--format", "json", "--workers", "1", "--no-cache"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "PQ_th" in proc.stdout and "person" in proc.stdout
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    ours = evaluate(gt_root, "val", results, workers=1, cache=False)
    assert metrics["PQ"] == ours.metrics["PQ"]
    assert ours.per_class.loc[11, "PQ"] == pytest.approx(ours.per_class_table["PQ"][11],
                                                         nan_ok=True)


@pytest.mark.parametrize("stage", ["pq", "convert"])
def test_bench_stage_against_its_reference(stage, tmp_path):
    """The bench's pq stage asserts PQ equal to hotcoco's; convert asserts equality with
    createPanopticImgs and the resume; both on quick sizes."""
    from panoptool.bench.core import BenchConfig, run_stage_here

    section = run_stage_here(stage, BenchConfig(quick=True, workers=2, workdir=str(tmp_path)))
    assert section.title == stage and len(section.rows) >= 2
    if stage == "pq":
        assert {r["evaluator"] for r in section.rows} >= {"hotcoco pq_compute"}
        assert all(r["median s"] > 0 for r in section.rows)
        assert any("equal to hotcoco" in n for n in section.notes)
    else:
        assert section.rows[-1]["converter"] == "cityscapesscripts createPanopticImgs"
