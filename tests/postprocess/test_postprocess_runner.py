"""The postprocess runner and CLI: official files, oracle, determinism, bad input, resume."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from panoptool.io import formats
from panoptool.io.cityscapes import list_samples, read_ground_truth
from panoptool.io.files import read_png, save_npz, write_json
from panoptool.labels import LABEL_TO_TRAIN
from panoptool.targets.core import TargetConfig, compute_targets, make_targets
from panoptool_cli.main import cli

SMALL = ["--min-area", "0", "--eps", "5", "--min-samples", "20", "--cell", "2"]


def invoke(*args):
    return CliRunner().invoke(cli, ["postprocess", *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def maps_dir(make_synth, tmp_path_factory):
    """Maps made from the ground truth with some noise, for 2 images of 128x256."""
    root = make_synth(n=2)
    out = tmp_path_factory.mktemp("maps")
    rng = np.random.default_rng(0)
    for s in list_samples(root, "val"):
        label_ids, inst = read_ground_truth(s)
        t = compute_targets(label_ids, inst, TargetConfig(dilation=1))
        off, _ = formats.decode_offsets(t["instance_index"], t["centers_yx"])
        conf = rng.uniform(0.5, 1.0, label_ids.shape).astype(np.float32)
        formats.write_maps(formats.maps_path(out, "val", s.stem), train_ids=t["train_ids"],
                           confidence=conf, contour_prob=t["contour"] * 0.9, offset_yx=off)
    write_json(out / "config.json", formats.stage_config("infer", {"model": "test"}))
    return root, out


def result_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "config.json"}


def test_cli_writes_official_files_accepted_by_the_evaluators(maps_dir, tmp_path):
    from official import official_instance, official_panoptic, official_semantic

    root, maps = maps_dir
    out = tmp_path / "res"
    r = invoke("--maps", str(maps), "--out", str(out), "--workers", "1", *SMALL)
    assert r.exit_code == 0, r.output
    stems = [s.stem for s in list_samples(root, "val")]
    for stem in stems:
        assert formats.semantic_result_path(out, stem).is_file()
        assert formats.panoptic_png_path(out, stem).is_file()
        lines = formats.instance_txt_path(out, stem).read_text().splitlines()
        assert lines and all((out / "instance" / ln.split()[0]).is_file() for ln in lines)
    pan = json.loads(formats.panoptic_json_path(out).read_text())
    assert [a["image_id"] for a in pan["annotations"]] == sorted(stems)
    assert len(pan["categories"]) == 19
    config = json.loads((out / "config.json").read_text())
    assert config["stage"] == "postprocess" and config["settings"]["min_area"] == 0
    assert config["upstream"]["stage"] == "infer"
    work = tmp_path / "official"
    sem = official_semantic(root, "val", out, work)
    inst = official_instance(root, "val", out, work)
    pq = official_panoptic(root, "val", out, work)
    assert sem["averageScoreClasses"] > 0.99  # semantic maps are the ground truth
    assert inst["averages"]["allAp50%"] > 0.5
    assert pq["All"]["pq"] > 0.8


def test_output_is_deterministic_and_independent_of_workers(maps_dir, tmp_path):
    _, maps = maps_dir
    a, b = tmp_path / "a", tmp_path / "b"
    assert invoke("--maps", str(maps), "--out", str(a), "--workers", "1").exit_code == 0
    assert invoke("--maps", str(maps), "--out", str(b), "--workers", "2").exit_code == 0
    assert result_bytes(a) == result_bytes(b)
    assert json.loads((a / "config.json").read_text())["settings"]["min_area"] == 300  # default


def test_refuses_finished_results_resumes_and_overwrites(maps_dir, tmp_path):
    _, maps = maps_dir
    out = tmp_path / "res"
    assert invoke("--maps", str(maps), "--out", str(out), "--workers", "1").exit_code == 0
    first = result_bytes(out)
    # the same settings again: a no-op that says so (files untouched)
    r = invoke("--maps", str(maps), "--out", str(out))
    assert r.exit_code == 0 and "nothing to do" in r.output, r.output
    assert result_bytes(out) == first
    # other settings into the finished folder: refused
    r = invoke("--maps", str(maps), "--out", str(out), "--min-area", "7")
    assert r.exit_code == 1 and "already holds results" in r.output and "--overwrite" in r.output
    assert result_bytes(out) == first
    # an interrupted run: panoptic.json and one image missing -> resumed, same files
    formats.panoptic_json_path(out).unlink()
    stem = formats.stem_of_maps(formats.find_maps(maps)[0])
    (out / "panoptic" / f"{stem}_segments.json").unlink()
    r = invoke("--maps", str(maps), "--out", str(out), "--workers", "1")
    assert r.exit_code == 0 and "1 already done" in r.output
    assert result_bytes(out) == first
    # other settings into the unfinished folder: refused, naming the difference
    formats.panoptic_json_path(out).unlink()
    r = invoke("--maps", str(maps), "--out", str(out), "--min-area", "7")
    assert r.exit_code == 1 and "min_area" in r.output
    r = invoke("--maps", str(maps), "--out", str(out), "--min-area", "7", "--overwrite")
    assert r.exit_code == 0
    assert json.loads((out / "config.json").read_text())["settings"]["min_area"] == 7


def _bad_maps(folder: Path, problem: str) -> Path:
    h, w = 16, 32
    arrays = dict(train_ids=np.zeros((h, w), np.uint8), confidence=np.ones((h, w), np.float32),
                  contour_prob=np.zeros((h, w), np.float32),
                  offset_yx=np.zeros((2, h, w), np.float32))
    if problem == "nan":
        arrays["contour_prob"][3, 3] = np.nan
    elif problem == "shape":
        arrays["offset_yx"] = np.zeros((2, h, w + 1), np.float32)
    elif problem == "dtype":
        arrays["train_ids"] = arrays["train_ids"].astype(np.int32)
    elif problem == "trainid":
        arrays["train_ids"][0, 0] = 40
    path = formats.maps_path(folder, "val", "aachen_000000_000019")
    save_npz(path, **arrays)
    return path


@pytest.mark.parametrize("problem,words", [("nan", "NaN"), ("shape", "shape"),
                                           ("dtype", "uint8"), ("trainid", "unknown train")])
def test_bad_maps_give_one_line_naming_the_file(tmp_path, problem, words):
    maps = tmp_path / "maps"
    path = _bad_maps(maps, problem)
    out = tmp_path / "res"
    r = invoke("--maps", str(maps), "--out", str(out), "--workers", "1")
    assert r.exit_code == 1
    line = r.output.strip()
    assert "\n" not in line and str(path) in line and words in line
    assert not formats.panoptic_json_path(out).exists()
    assert not list(out.rglob("*.png")) and not list(out.rglob(".tmp-*"))


def test_empty_maps_folder_and_missing_options(tmp_path):
    (tmp_path / "maps").mkdir()
    r = invoke("--maps", str(tmp_path / "maps"), "--out", str(tmp_path / "res"))
    assert r.exit_code == 1 and "no *_maps.npz" in r.output and str(tmp_path / "maps") in r.output
    assert not (tmp_path / "res").exists()
    r = invoke("--out", str(tmp_path / "res"))
    assert r.exit_code == 1 and "--maps" in r.output
    r = invoke("--oracle", "--out", str(tmp_path / "res"))
    assert r.exit_code == 1 and "--targets" in r.output


def test_oracle_gives_back_the_ground_truth_instances(make_synth, tmp_path):
    """Property: ground-truth maps, post-processed, give back the ground truth (dilation 1,
    instances large enough to keep a core; crowd regions become instances, not counted)."""
    from panoptool.evaluation.runner import evaluate

    root = make_synth(n=2, height=256, width=512)
    targets = tmp_path / "targets"
    make_targets(root, "val", targets, TargetConfig(dilation=1), workers=1,
                 show_progress=False)
    out = tmp_path / "oracle"
    r = invoke("--oracle", "--root", str(root), "--targets", str(targets), "--out", str(out),
               "--workers", "1", "--min-area", "0", "--eps", "8", "--min-samples", "20",
               "--cell", "2")
    assert r.exit_code == 0, r.output
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["source"] == "oracle"
    assert config["upstream"]["settings"]["dilation"] == 1
    res = evaluate(root, "val", out, workers=1, cache=False).metrics
    assert res["mIoU"] == pytest.approx(100.0)
    assert res["PQ_st"] == pytest.approx(100.0)
    assert res["PQ"] >= 90 and res["AP50"] >= 85
    # instances of at least 200 px come back one to one with IoU > 0.9
    for s in list_samples(root, "val"):
        label_ids, inst = read_ground_truth(s)
        lines = formats.instance_txt_path(out, s.stem).read_text().splitlines()
        masks = [read_png(out / "instance" / ln.split()[0]) > 0 for ln in lines]
        for iid in np.unique(inst[inst >= 1000]):
            gt = inst == iid
            if LABEL_TO_TRAIN[iid // 1000] == 255 or gt.sum() < 200:
                continue
            ious = [np.logical_and(gt, m).sum() / np.logical_or(gt, m).sum() for m in masks]
            assert max(ious) > 0.9, (s.stem, int(iid), max(ious))


def test_oracle_config_keeps_the_split_refinement_setting(make_synth, tmp_path):
    """The dataset split must not overwrite the ``split`` refinement switch in config.json."""
    from panoptool.io.files import read_json
    from panoptool.postprocess.config import PostprocessConfig
    from panoptool.postprocess.runner import postprocess_oracle
    from panoptool.targets.core import TargetConfig, make_targets

    root = make_synth(n=2, height=64, width=128, seed=5)
    make_targets(root, "val", tmp_path / "targets", TargetConfig(dilation=2), workers=1)
    postprocess_oracle(root, "val", tmp_path / "targets", tmp_path / "res",
                       PostprocessConfig(split=False), workers=1)
    settings = read_json(tmp_path / "res" / "config.json")["settings"]
    assert settings["split"] is False and settings["dataset_split"] == "val"


def test_oracle_runs_without_min_area_unless_asked(make_synth, tmp_path):
    """min-area filters a network's noise; on ground-truth maps it is off by default, and an
    explicit --min-area still applies (Table IV's oracle rows)."""
    from panoptool.io.files import read_json

    root = make_synth(n=1, height=64, width=128, seed=5)
    make_targets(root, "val", tmp_path / "targets", TargetConfig(dilation=2), workers=1,
                 show_progress=False)
    for extra, expected in (((), 0), (("--min-area", "50"), 50)):
        out = tmp_path / f"res{expected}"
        r = invoke("--oracle", "--root", str(root), "--targets", str(tmp_path / "targets"),
                   "--out", str(out), "--workers", "1", *extra)
        assert r.exit_code == 0, r.output
        assert read_json(out / "config.json")["settings"]["min_area"] == expected


def test_derivation_options_default_to_the_config_and_are_shared():
    """postprocess and predict take the same derivation options, whose defaults are
    PostprocessConfig's (one definition: panoptool_cli.options.derivation_options)."""
    import dataclasses

    from panoptool.postprocess import PostprocessConfig
    from panoptool_cli.postprocess import command as post_cmd
    from panoptool_cli.predict import command as pred_cmd

    def options(cmd):
        return {p.name: p.default for p in cmd.params if isinstance(p, click.Option)}

    post, pred = options(post_cmd), options(pred_cmd)
    defaults = {f.name: f.default for f in dataclasses.fields(PostprocessConfig)}
    names = {"split_": "split", "connectivity": "connectivity"}
    for opt in ("split_", "merge", "eps", "min_samples", "cell", "contour_threshold",
                "connectivity", "fill_contours", "derivation", "band_eps"):
        assert post[opt] == pred[opt], opt
        want = defaults[names.get(opt, opt)]
        assert (int(post[opt]) if opt == "connectivity" else post[opt]) == want, opt
