"""``panoptool predict``: any images and videos, equal to infer + postprocess, resumable,
sharded under torchrun, bad input named."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from panoptool.io import formats
from panoptool.errors import ConfigError, InputError
from panoptool.io.files import read_png
from panoptool.jobs.pipeline import scaled_postprocess_args
from panoptool.postprocess.config import CITYSCAPES_PIXELS
from panoptool.postprocess import PostprocessConfig
from panoptool.postprocess.panoptic import coco_categories
from panoptool.postprocess.config import scaled_config
from panoptool.predict.config import PredictConfig
from panoptool.predict.stream import list_sources, predict
from panoptool.training.loop import TrainConfig, checkpoint_path, train
from panoptool_cli.main import cli

from procs import alive as _alive, descendants as _descendants

COCO_IMAGES = (Path(__file__).resolve().parents[3] / "shared" / "data"
               / "coco_panoptic_sample" / "images")
FAST = ["--device", "cpu", "--threads", "1", "--workers", "1"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PANOPTOOL_NO_PROGRESS": "1"}


@pytest.fixture(scope="module")
def trained(make_synth, tmp_path_factory):
    """(val root, checkpoint) of a 2-iteration run on tiny data (as test_inference)."""
    from panoptool.targets.core import TargetConfig, make_targets
    root = make_synth(n=2, height=64, width=128, seed=7, split="train")
    val = make_synth(n=2, height=64, width=128, seed=8, split="val")
    targets = tmp_path_factory.mktemp("pred_targets")
    make_targets(root, "train", targets, TargetConfig(), workers=1, show_progress=False)
    run = tmp_path_factory.mktemp("pred_run")
    train(TrainConfig(root=str(root), targets=str(targets), out=str(run), iters=2, batch=2,
                      crop=(64, 128), workers=0, threads=1, device="cpu", neck="shared"),
          show_progress=False)
    return val, _lively(checkpoint_path(run), val, tmp_path_factory.mktemp("pred_ckpt"))


def _lively(ckpt: Path, val: Path, folder: Path) -> Path:
    """The 2-iteration network with its heads' outputs stretched, so that on the val images it
    predicts many classes, sparse contours and offsets of a few pixels: several segments and
    instances per image, for comparisons that a single-class prediction would pass vacuously."""
    from panoptool.training.data import normalize
    from panoptool.io.cityscapes import list_samples, read_image
    from panoptool.training.loop import model_from_checkpoint
    model, state = model_from_checkpoint(ckpt)
    model.eval()
    images = torch.stack([torch.from_numpy(normalize(read_image(s)))
                          for s in list_samples(val, "val")])
    with torch.no_grad():
        out = model(images)
        sem, con, off = (model.heads[k].out for k in ("semantic", "contour", "offset"))
        mean = out["semantic_logits"].mean(dim=(0, 2, 3))
        sem.weight *= 40
        sem.bias.copy_(40 * (sem.bias - mean))
        sem.bias[[11, 13]] += 2.0  # person, car
        con.weight *= 3
        con.bias.copy_(3 * (con.bias - out["contour_logits"].mean()) - 2.5)
        off.weight *= 4
        off.bias *= 4
    state["model"] = model.state_dict()
    path = folder / "lively.pt"
    torch.save(state, path)
    return path


def write_video(path: Path, n: int = 5, height: int = 48, width: int = 80, seed: int = 0):
    """A short MJPG video of moving rectangles."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (width, height))
    assert writer.isOpened()
    rng = np.random.default_rng(seed)
    for k in range(n):
        frame = np.full((height, width, 3), 90, np.uint8)
        frame[10:30, 5 + 8 * k:25 + 8 * k] = rng.integers(0, 255, 3)
        writer.write(frame)
    writer.release()


def mixed_folder(tmp_path: Path, val: Path) -> Path:
    """jpg + png of different sizes, the real COCO images among them, one in a subfolder."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for jpg in sorted(COCO_IMAGES.glob("*.jpg")):
        shutil.copy(jpg, folder / jpg.name)
    city = next((val / "leftImg8bit" / "val").iterdir())
    shutil.copy(next(city.glob("*.png")), folder / "sub" / "street.png")
    rng = np.random.default_rng(1)
    cv2.imwrite(str(folder / "sub" / "odd.jpg"), rng.integers(0, 255, (50, 70, 3), np.uint8))
    cv2.imwrite(str(folder / "grey.png"), rng.integers(0, 255, (33, 45), np.uint8))
    (folder / ".hidden").mkdir()
    cv2.imwrite(str(folder / ".hidden" / "skip.png"), np.zeros((8, 8, 3), np.uint8))
    (folder / "notes.txt").write_text("not an image")
    return folder


def decode_panoptic(path: Path) -> np.ndarray:
    return formats.rgb_to_panoptic_id(read_png(path, dtype=np.uint8, channels=3))


# --- pure parts -----------------------------------------------------------------------------

@pytest.mark.parametrize("size", [(256, 512), (128, 256), (64, 128), (512, 1024)])
def test_scaled_config_matches_how_demo_and_ablate_scale(size):
    h, w = size
    got = scaled_config(PostprocessConfig(), h * w)
    eps, min_samples, cell = scaled_postprocess_args(h * w / CITYSCAPES_PIXELS)[1::2]
    assert (got.eps, got.min_samples, got.cell) == (eps, min_samples, cell)
    assert got.min_area == max(1, round(300 * h * w / CITYSCAPES_PIXELS))
    assert scaled_config(PostprocessConfig(min_area=0), h * w).min_area == 0
    same = scaled_config(PostprocessConfig(), CITYSCAPES_PIXELS)
    assert same == PostprocessConfig()


def test_list_sources_names_are_unique_and_stable(tmp_path):
    (tmp_path / "f" / "a").mkdir(parents=True)
    for rel in ("a/x.png", "x.png", "x.jpg", "y.webp"):
        cv2.imwrite(str(tmp_path / "f" / rel), np.zeros((4, 4, 3), np.uint8))
    write_video(tmp_path / "clip.avi", n=3)
    sources = list_sources([tmp_path / "f", tmp_path / "clip.avi"])
    assert [s.name for s in sources] == ["a/x", "x_jpg", "x_png", "y", "clip"]
    assert [s.kind for s in sources] == ["image"] * 4 + ["video"]
    assert sources[-1].frames == 3 and sources[-1].frame_name(2) == "clip_000002"
    with pytest.raises(InputError, match="same output name"):
        list_sources([tmp_path / "f" / "y.webp", tmp_path / "f" / "y.webp"])
    with pytest.raises(InputError, match="nope.*not found"):
        list_sources([tmp_path / "nope"])
    # an output folder inside an input folder: its files are not inputs
    (tmp_path / "f" / "out" / "overlay").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "f" / "out" / "overlay" / "y.jpg"), np.zeros((4, 4, 3), np.uint8))
    assert [s.name for s in list_sources([tmp_path / "f"], exclude=tmp_path / "f" / "out")] \
        == ["a/x", "x_jpg", "x_png", "y"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no image"):
        list_sources([tmp_path / "empty"])
    (tmp_path / "fake.mp4").write_bytes(b"not a video" * 10)
    with pytest.raises(InputError, match="fake.mp4.*neither an image nor a video"):
        list_sources([tmp_path / "fake.mp4"])


def test_config_is_validated():
    with pytest.raises(ConfigError, match="exactly one"):
        PredictConfig(inputs=("a",), out="o")
    with pytest.raises(ConfigError, match="--format"):
        PredictConfig(inputs=("a",), out="o", checkpoint="c", formats=("png",))
    with pytest.raises(ConfigError, match="--batch"):
        PredictConfig(inputs=("a",), out="o", checkpoint="c", batch=0)


# --- end to end ----------------------------------------------------------------------------

def test_predict_folder_and_video_at_every_input_resolution(trained, tmp_path):
    val, ckpt = trained
    folder = mixed_folder(tmp_path, val)
    video = tmp_path / "drive.avi"
    write_video(video, n=5)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["predict", "--checkpoint", str(ckpt), str(folder),
                                      str(video), "--out", str(out), "--format",
                                      "panoptic,cityscapes,overlay", "--save-maps", *FAST])
    assert result.exit_code == 0, result.output
    expected = {"000000142238": (427, 640), "000000439180": (360, 640), "grey": (33, 45),
                "sub/odd": (50, 70), "sub/street": (64, 128),
                **{f"drive_{k:06d}": (48, 80) for k in range(5)}}
    data = json.loads((out / "panoptic.json").read_text())
    assert data["categories"] == coco_categories()
    assert [im["id"] for im in data["images"]] == list(expected)
    for im, ann in zip(data["images"], data["annotations"]):
        name = im["id"]
        assert (im["height"], im["width"]) == expected[name]
        ids = decode_panoptic(out / "panoptic" / f"{name}.png")
        assert ids.shape == expected[name]
        assert ann["file_name"] == f"{name}.png"
        segs = {s["id"]: s["area"] for s in ann["segments_info"]}
        present, counts = np.unique(ids[ids > 0], return_counts=True)
        assert dict(zip(present.tolist(), counts.tolist())) == segs
        sem = read_png(formats.semantic_result_path(out, name), dtype=np.uint8)
        assert sem.shape == expected[name]
        assert formats.instance_txt_path(out, name).is_file()
        maps = formats.read_maps(out / "maps" / f"{name}_maps.npz")
        assert maps["train_ids"].shape == expected[name]
        if not name.startswith("drive_"):
            overlay = cv2.imread(str(out / "overlay" / f"{name}.jpg"))
            assert overlay.shape == (*expected[name], 3)
    cap = cv2.VideoCapture(str(out / "overlay" / "drive.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    assert (cap.get(cv2.CAP_PROP_FRAME_HEIGHT), cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == (48, 80)
    cap.release()
    assert not list(out.rglob(".tmp-*"))
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["stage"] == "predict" and cfg["upstream"]["stage"] == "train"
    assert cfg["settings"]["min_area"] == 300 and cfg["settings"]["scale_areas"] is True
    # a second run finds everything done and writes nothing
    again = predict(PredictConfig(inputs=(str(folder), str(video)), out=str(out),
                                  checkpoint=str(ckpt), formats=("panoptic", "cityscapes",
                                                                 "overlay"),
                                  save_maps=True, device="cpu", threads=1, workers=1),
                    show_progress=False)
    assert again.skipped == 6 and again.frames == 0


def test_predict_equals_infer_plus_postprocess(trained, tmp_path):
    """Same network, same settings: identical panoptic and Cityscapes results."""
    val, ckpt = trained
    from panoptool.inference.maps import InferConfig, infer
    from panoptool.postprocess import postprocess_maps
    infer(InferConfig(checkpoint=str(ckpt), root=str(val), split="val",
                      out=str(tmp_path / "maps"), device="cpu", threads=1, workers=0),
          show_progress=False)
    post = PostprocessConfig(min_area=5, eps=2.0, min_samples=2, cell=1.0)
    postprocess_maps(tmp_path / "maps", tmp_path / "results", post, workers=1,
                     show_progress=False)
    # predict's pixel sizes are for 1024x2048 and scaled to the 64x128 images ...
    scale = CITYSCAPES_PIXELS / (64 * 128)
    config = PredictConfig(inputs=(str(val / "leftImg8bit" / "val"),), out=str(tmp_path / "p"),
                           checkpoint=str(ckpt), device="cpu", threads=1, workers=1,
                           postprocess=PostprocessConfig(min_area=round(5 * scale),
                                                         eps=32.0, min_samples=512,
                                                         cell=16.0),
                           formats=("panoptic", "cityscapes"), save_maps=True,
                           backend="torch")
    assert scaled_config(config.postprocess, 64 * 128) == post
    summary = predict(config, show_progress=False)
    assert summary.frames == 2
    ours = json.loads((tmp_path / "p" / "panoptic.json").read_text())
    theirs = json.loads((tmp_path / "results" / "panoptic.json").read_text())
    assert len(ours["annotations"]) == len(theirs["annotations"]) == 2
    n_segments = 0
    for a, b in zip(ours["annotations"], theirs["annotations"]):
        stem = b["image_id"]
        name = a["image_id"]
        assert name == f"{formats.city_of(stem)}/{stem}_leftImg8bit"
        assert a["segments_info"] == b["segments_info"]
        n_segments += len(a["segments_info"])
        assert np.array_equal(decode_panoptic(tmp_path / "p" / "panoptic" / f"{name}.png"),
                              decode_panoptic(formats.panoptic_png_path(tmp_path / "results",
                                                                        stem)))
        assert np.array_equal(read_png(formats.semantic_result_path(tmp_path / "p", name)),
                              read_png(formats.semantic_result_path(tmp_path / "results",
                                                                    stem)))
        lines_a = formats.instance_txt_path(tmp_path / "p", name).read_text().splitlines()
        lines_b = formats.instance_txt_path(tmp_path / "results", stem).read_text().splitlines()
        assert [l.split()[1:] for l in lines_a] == [l.split()[1:] for l in lines_b]
        saved = np.load(tmp_path / "p" / "maps" / f"{name}_maps.npz")
        inferred = np.load(formats.maps_path(tmp_path / "maps", "val", stem))
        for key in formats.MAPS_KEYS:
            assert np.array_equal(saved[key], inferred[key]), key
    assert n_segments >= 20
    assert sum(s["category_id"] >= 24 for a in ours["annotations"]
               for s in a["segments_info"]) >= 2  # thing instances
    assert ours["categories"] == theirs["categories"]




def test_killed_predict_resumes_without_redoing_and_leaves_no_partial_file(trained, tmp_path):
    val, ckpt = trained
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for k in range(10):
        cv2.imwrite(str(folder / f"f{k:02d}.png"), rng.integers(0, 255, (128, 256, 3), np.uint8))
    out = tmp_path / "out"
    args = [sys.executable, "-m", "panoptool_cli.main", "predict", "--checkpoint", str(ckpt),
            str(folder), "--out", str(out), *FAST, "--workers", "2"]
    proc = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    kids: set[int] = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        kids |= _descendants(proc.pid)
        if len(list((out / ".annotations").glob("*.json"))) >= 2:
            break
        time.sleep(0.01)
    assert proc.poll() is None, proc.stderr.read()[-2000:]
    kids |= _descendants(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(kids) >= 3  # a decoding process and two derivation workers
    for _ in range(200):  # no child outlives the parent
        if not any(_alive(k) for k in kids):
            break
        time.sleep(0.05)
    assert not [k for k in kids if _alive(k)]
    done = sorted(out.glob(".annotations/*.json"))
    assert 2 <= len(done) < 10 and not (out / "panoptic.json").exists()
    # A kill can land mid-write: what it leaves is hidden ``.tmp-`` debris (cleared on resume,
    # checked below), while anything under a final name is whole.
    finals = [p for p in out.rglob("*.png") if not p.name.startswith(".tmp-")]
    assert finals
    for png in finals:
        read_png(png)
    # what a kill in the middle of a PNG write leaves, planted so the resume always meets it
    (out / "panoptic" / ".tmp-killed.png").write_bytes(b"\x89PNG\r\n\x1a\n half")
    stamps = {p: p.stat().st_mtime_ns for p in done}
    summary = predict(PredictConfig(inputs=(str(folder),), out=str(out), checkpoint=str(ckpt),
                                    device="cpu", threads=1, workers=1), show_progress=False)
    assert summary.skipped == len(done) and summary.frames == 10 - len(done)
    assert {p: p.stat().st_mtime_ns for p in done} == stamps
    assert not list(out.rglob(".tmp-*"))
    data = json.loads((out / "panoptic.json").read_text())
    assert [a["image_id"] for a in data["annotations"]] == [f"f{k:02d}" for k in range(10)]
    # and the resumed results are those of an uninterrupted run
    fresh = tmp_path / "fresh"
    predict(PredictConfig(inputs=(str(folder),), out=str(fresh), checkpoint=str(ckpt),
                          device="cpu", threads=1, workers=1), show_progress=False)
    assert (fresh / "panoptic.json").read_bytes() == (out / "panoptic.json").read_bytes()
    for png in (fresh / "panoptic").glob("*.png"):
        assert png.read_bytes() == (out / "panoptic" / png.name).read_bytes()


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_torchrun_two_processes_equal_one_process(trained, tmp_path):
    val, ckpt = trained
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(4)
    for k, (h, w) in enumerate([(64, 128), (40, 60), (64, 96), (70, 50), (64, 128)]):
        cv2.imwrite(str(folder / f"im{k}.png"), rng.integers(0, 255, (h, w, 3), np.uint8))
    video = tmp_path / "cam.avi"
    write_video(video, n=4)
    common = ["predict", "--checkpoint", str(ckpt), str(folder), str(video), *FAST,
              "--format", "panoptic,cityscapes,overlay"]
    one = subprocess.run([sys.executable, "-m", "panoptool_cli.main", *common,
                          "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, env=ENV, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc-per-node", "2", "-m", "panoptool_cli.main", *common,
                          "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, env=ENV, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    # every frame exactly once: the ranks' counts add up to the 5 images + 4 frames
    counts = [int(n) for n in re.findall(r"rank \d of 2\): (\d+) frame", two.stderr)]
    assert len(counts) == 2 and sum(counts) == 9 and min(counts) > 0, two.stderr[-2000:]
    a, b = _tree(tmp_path / "one"), _tree(tmp_path / "two")
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []


# --- bad input -----------------------------------------------------------------------------

def test_bad_inputs_give_one_line_errors_and_keep_what_was_written(trained, tmp_path):
    val, ckpt = trained
    runner = CliRunner()
    res = runner.invoke(cli, ["predict", "--checkpoint", str(ckpt), str(tmp_path / "missing"),
                              "--out", str(tmp_path / "o1"), *FAST])
    assert res.exit_code == 1 and "panoptool: error:" in res.output
    assert "missing: input not found" in res.output
    # an unreadable image after good ones: the good ones' results stay
    folder = tmp_path / "imgs"
    folder.mkdir()
    for k in range(2):
        cv2.imwrite(str(folder / f"a{k}.png"), np.full((64, 64, 3), 40 * k, np.uint8))
    (folder / "z_broken.jpg").write_bytes(b"\xff\xd8 this is no jpeg")
    res = runner.invoke(cli, ["predict", "--checkpoint", str(ckpt), str(folder),
                              "--out", str(tmp_path / "o2"), *FAST])
    assert res.exit_code == 1
    assert "z_broken.jpg: cannot decode image" in res.output
    assert len(res.output.strip().splitlines()) == 1
    for k in range(2):
        assert (tmp_path / "o2" / "panoptic" / f"a{k}.png").is_file()
        assert (tmp_path / "o2" / ".annotations" / f"a{k}.json").is_file()
    # a video that breaks mid-way
    video = tmp_path / "v.avi"
    write_video(video, n=6)
    data = bytearray(video.read_bytes())
    n = len(data)
    data[n // 2: n // 2 + n // 6] = bytes(n // 6)
    broken = tmp_path / "broken.avi"
    broken.write_bytes(bytes(data))
    res = runner.invoke(cli, ["predict", "--checkpoint", str(ckpt), str(broken),
                              "--out", str(tmp_path / "o3"), *FAST])
    assert res.exit_code == 1
    assert re.search(r"broken\.avi: frame \d+ of 6 cannot be decoded", res.output), res.output
    assert not (tmp_path / "o3" / ".annotations" / "broken.video.json").exists()
    assert not list((tmp_path / "o3").rglob(".tmp-*"))
    # a checkpoint whose class count does not match the label table
    ckpt_dict = torch.load(ckpt, weights_only=True)
    from panoptool.model import PanopticContourNet
    net = json.loads(ckpt_dict["network"])
    net["num_classes"] = 7
    ckpt_dict["network"] = json.dumps(net)
    ckpt_dict["model"] = PanopticContourNet(**net).state_dict()
    seven = tmp_path / "seven.pt"
    torch.save(ckpt_dict, seven)
    res = runner.invoke(cli, ["predict", "--checkpoint", str(seven), str(folder / "a0.png"),
                              "--out", str(tmp_path / "o4"), *FAST])
    assert res.exit_code == 1
    assert "seven.pt: the network predicts 7 semantic classes; the label table has 19" \
        in res.output
    assert not (tmp_path / "o4").exists()
    # an ONNX file that is not a model: named (without the onnxruntime backend, or by it)
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"not a model")
    res = runner.invoke(cli, ["predict", "--model", str(fake), str(folder / "a0.png"),
                              "--out", str(tmp_path / "o5"), *FAST])
    assert res.exit_code == 1 and "panoptool: error:" in res.output and "fake.onnx" in res.output
    res = runner.invoke(cli, ["predict", "--model", str(fake), "--checkpoint", str(ckpt),
                              str(folder / "a0.png"), "--out", str(tmp_path / "o5"), *FAST])
    assert res.exit_code == 1 and "exactly one of --checkpoint" in res.output
    # other settings into a folder with results: refused, nothing lost
    res = runner.invoke(cli, ["predict", "--checkpoint", str(ckpt), str(folder / "a0.png"),
                              "--out", str(tmp_path / "o2"), "--min-area", "7", *FAST])
    assert res.exit_code == 1 and "other settings" in res.output
    assert (tmp_path / "o2" / "panoptic" / "a0.png").is_file()


def test_bench_predict_section(tmp_path):
    from panoptool.bench.core import BenchConfig, run_stage_here
    section = run_stage_here("predict", BenchConfig(quick=True, workers=1,
                                                    workdir=str(tmp_path)))
    steps = [row["step"] for row in section.rows]
    assert "network alone (TorchBackend, batch 1)" in steps
    assert "predict end to end" in steps and "predict --no-split end to end" in steps
    for row in section.rows:
        assert row["ms/frame"] > 0 and row["size"] == "128x256"
    e2e = next(r for r in section.rows if r["step"] == "predict end to end")
    assert float(e2e["end-to-end / network"].split()[0]) > 0 and e2e["frames/s"] > 0


def test_predict_backends_onnxruntime_by_default_on_the_cpu(trained, tmp_path, monkeypatch):
    """auto runs a checkpoint with onnxruntime on the CPU (exported once into the cache), its
    results agree with torch's; an exported --model gives the same as the checkpoint."""
    from panoptool.inference.onnx import export_onnx
    from panoptool.predict.stream import resolve_backend
    monkeypatch.setenv("PANOPTOOL_CACHE", str(tmp_path / "cache"))
    val, ckpt = trained
    images = str(val / "leftImg8bit" / "val")
    outs = {}
    for name, extra in (("auto", []), ("torch", ["--backend", "torch"])):
        outs[name] = tmp_path / name
        res = CliRunner().invoke(cli, ["predict", "--checkpoint", str(ckpt), images, "--out",
                                       str(outs[name]), "--format", "panoptic,cityscapes",
                                       *FAST, *extra])
        assert res.exit_code == 0, res.output
    cfg = json.loads((outs["auto"] / "config.json").read_text())
    assert cfg["settings"]["backend"] == "onnxruntime" and cfg["upstream"]["stage"] == "train"
    assert json.loads((outs["torch"] / "config.json").read_text())["settings"]["backend"] \
        == "torch"
    assert len(list((tmp_path / "cache" / "onnx").glob("*.onnx"))) == 1
    sems = {k: np.stack([read_png(p) for p in sorted((o / "semantic").rglob("*.png"))])
            for k, o in outs.items()}
    assert sems["auto"].shape == sems["torch"].shape and sems["auto"].size >= 2 * 64 * 128
    assert (sems["auto"] == sems["torch"]).mean() >= 0.999
    # an exported model runs as --model and equals the checkpoint through onnxruntime
    model = tmp_path / "net.onnx"
    export_onnx(ckpt, model, dynamic=True)
    res = CliRunner().invoke(cli, ["predict", "--model", str(model), images, "--out",
                                   str(tmp_path / "model"), "--format", "panoptic", *FAST])
    assert res.exit_code == 0, res.output
    for png in sorted((outs["auto"] / "panoptic").rglob("*.png")):
        other = tmp_path / "model" / "panoptic" / png.relative_to(outs["auto"] / "panoptic")
        assert np.array_equal(decode_panoptic(png), decode_panoptic(other))
    # what auto means elsewhere; onnxruntime refuses what it cannot do
    base = dict(inputs=("a",), out="o", checkpoint="c", device="cpu")
    assert resolve_backend(PredictConfig(**base, amp=True)) == "torch"
    with pytest.raises(ConfigError, match="--backend torch"):
        resolve_backend(PredictConfig(**base, backend="onnxruntime", amp=True))
    with pytest.raises(ConfigError, match="backend"):
        PredictConfig(**base, backend="tensorrt")
