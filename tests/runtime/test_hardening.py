"""Hardening (issue 13): workers die with their parent, write failures are one line, bad images
in infer/train, checkpoint parsing, output-folder locks, postprocess no-op re-runs."""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from panoptool.io import files as io
from panoptool.errors import InputError, OutputError
from panoptool.runtime.guard import LOCK_NAME, die_with_parent, output_lock
from panoptool_cli.main import cli

from procs import alive as _alive, children as _children

PANOPTOOL = [sys.executable, "-m", "panoptool_cli.main"]
ENV = {**os.environ, "PANOPTOOL_NO_PROGRESS": "1"}


def run_cli(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli, list(args))
    return r.exit_code, r.output


def one_error_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("panoptool: error:")]
    assert len(errors) == 1 and "Traceback" not in output, output
    return errors[0]


# --- 1. workers die with their parent ------------------------------------------------------



@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux /proc")
def test_sigkill_of_a_two_worker_run_leaves_no_worker(tmp_path):
    proc = subprocess.Popen([*PANOPTOOL, "synth", str(tmp_path / "data"), "--n", "400",
                             "--height", "128", "--width", "256", "--workers", "2"],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    workers: set[int] = set()
    while time.monotonic() < deadline and len(workers) < 2:
        workers = {c for c in _children(proc.pid) if _alive(c)}
        time.sleep(0.05)
    assert len(workers) >= 2, "the pool never started"
    time.sleep(0.3)  # the workers are busy writing images now
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(2.0)
    survivors = [pid for pid in workers if _alive(pid)]
    for pid in survivors:  # do not leak them into the rest of the suite
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"workers {survivors} outlived their parent by 2 s"


def test_die_with_parent_arms_the_kernel_signal():
    code = ("import os, sys; from panoptool.runtime.guard import die_with_parent; "
            "print(die_with_parent(os.getppid()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == ("pdeathsig" if sys.platform.startswith("linux") else "watchdog")
    # a worker whose parent is already gone (pid mismatch) exits at once
    code = "from panoptool.runtime.guard import die_with_parent; die_with_parent(1); print('alive')"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 1 and "alive" not in r.stdout
    assert die_with_parent.__module__ == "panoptool.runtime.guard"


# --- 2. write failures: one line naming the path --------------------------------------------

def test_output_error_names_path_and_errno():
    for code, words in [(errno.ENOSPC, "no space left"), (errno.EROFS, "read-only"),
                        (errno.EACCES, "permission denied"), (errno.EDQUOT, "quota"),
                        (errno.EFBIG, "too large")]:
        err = io.output_error("out/x.png", OSError(code, os.strerror(code)))
        assert isinstance(err, OutputError)
        assert str(err).startswith("out/x.png: cannot write: ") and words in str(err)
        assert errno.errorcode[code] in str(err) and "\n" not in str(err)


def _limit_file_size(limit: int):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_file_size_limit_is_one_line_in_a_real_run(tmp_path):
    out = tmp_path / "data"
    r = subprocess.run([*PANOPTOOL, "synth", str(out), "--n", "2", "--height", "64", "--width",
                        "128", "--workers", "1"], env=ENV, capture_output=True, text=True,
                       preexec_fn=_limit_file_size(2000))
    assert r.returncode == 1, r.stderr
    line = one_error_line(r.stderr)
    assert "cannot write" in line and "EFBIG" in line and str(out) in line
    # nothing half-written under a final name, no temporary left behind
    assert not list(out.rglob(".tmp-*"))
    for png in out.rglob("*.png"):
        io.read_png(png)


def test_disk_full_during_postprocess_and_report(synth_root, tmp_path, monkeypatch):
    out = tmp_path / "targets"
    code, _ = run_cli("make-targets", "--root", str(synth_root), "--split", "val",
                      "--out", str(out), "--workers", "1")
    assert code == 0
    real_replace = os.replace

    def full(src, dst):
        if "panoptic" in str(dst):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(io.os, "replace", full)
    res = tmp_path / "res"
    code, output = run_cli("postprocess", "--oracle", "--root", str(synth_root),
                           "--dataset-split", "val", "--targets", str(out), "--out", str(res),
                           "--workers", "1")
    assert code == 1
    line = one_error_line(output)
    assert "no space left on the device (ENOSPC)" in line and str(res) in line
    assert not list(res.rglob(".tmp-*")) and not (res / LOCK_NAME).exists()
    monkeypatch.setattr(io.os, "replace", real_replace)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_output_folder(synth_root, tmp_path):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        code, output = run_cli("make-targets", "--root", str(synth_root), "--split", "val",
                               "--out", str(out), "--workers", "1")
    finally:
        out.chmod(0o700)
    assert code == 1 and "permission denied" in one_error_line(output)


def test_output_folder_that_cannot_be_created(synth_root, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for stage in (["make-targets", "--root", str(synth_root), "--split", "val"],
                  ["postprocess", "--oracle", "--root", str(synth_root), "--dataset-split",
                   "val", "--targets", str(tmp_path)]):
        code, output = run_cli(*stage, "--out", str(blocker / "sub"), "--workers", "1")
        line = one_error_line(output)
        assert code == 1 and str(blocker) in line and "folder" in line, line


# --- locks and no-op re-runs ------------------------------------------------------------------

def test_a_second_run_into_a_locked_folder_refuses_at_once(tmp_path):
    with output_lock(tmp_path, "postprocess") as lock:
        assert lock.read_text().split() == ["postprocess", str(os.getpid())]
        t0 = time.monotonic()
        code = ("import sys; from panoptool.runtime.guard import output_lock\n"
                "from panoptool.errors import OutputError\n"
                "try:\n    output_lock(sys.argv[1], 'report').__enter__()\n"
                "except OutputError as e:\n    print(e)\n")
        r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                           text=True, check=True)
        assert f"another panoptool postprocess (pid {os.getpid()}) is writing here" in r.stdout
        assert time.monotonic() - t0 < 10
    assert not (tmp_path / LOCK_NAME).exists()  # removed on release
    with output_lock(tmp_path, "report"):  # and free again
        pass


def test_lock_of_a_killed_run_does_not_block(tmp_path):
    code = ("import os, sys; from panoptool.runtime.guard import output_lock\n"
            "lock = output_lock(sys.argv[1], 'make-targets'); lock.__enter__()\n"
            "os.kill(os.getpid(), 9)")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)])
    assert (tmp_path / LOCK_NAME).exists()  # stale file, but the kernel freed the lock
    with output_lock(tmp_path, "make-targets"):
        pass


# --- 3. bad images in infer and train ---------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(make_synth, tmp_path_factory):
    from panoptool.targets.core import TargetConfig, make_targets
    from panoptool.training.loop import TrainConfig, train
    root = make_synth(n=2, height=64, width=128, seed=7, split="train")
    targets = tmp_path_factory.mktemp("hard_targets")
    make_targets(root, "train", targets, TargetConfig(), workers=1, show_progress=False)
    run = tmp_path_factory.mktemp("hard_run")
    train(TrainConfig(root=str(root), targets=str(targets), out=str(run), iters=1, batch=2,
                      crop=(64, 128), workers=0, threads=1, device="cpu", neck="shared"),
          show_progress=False)
    return root, targets, run


def _corrupt_copy(root: Path, tmp_path: Path, split: str) -> tuple[Path, Path]:
    copy = tmp_path / "root"
    shutil.copytree(root, copy)
    image = sorted((copy / "leftImg8bit" / split).rglob("*_leftImg8bit.png"))[-1]
    image.write_bytes(image.read_bytes()[:60])  # truncated: header only
    return copy, image


@pytest.mark.parametrize("workers", ["0", "1"])
def test_infer_bad_image_stop_and_skip(tiny_run, tmp_path, workers):
    root, _, run = tiny_run
    copy, bad = _corrupt_copy(root, tmp_path, "train")
    args = ["infer", "--checkpoint", str(run / "checkpoints" / "last.pt"), "--root",
            str(copy), "--split", "train", "--device", "cpu", "--threads", "1",
            "--workers", workers]
    code, output = run_cli(*args, "--out", str(tmp_path / "m1"))
    line = one_error_line(output)
    assert code == 1 and str(bad) in line and "cannot decode" in line
    code, output = run_cli(*args, "--out", str(tmp_path / "m2"), "--on-bad-image", "skip")
    assert code == 0 and "skipped (--on-bad-image skip)" in output
    assert str(bad) in "".join(output.split())
    assert len(list((tmp_path / "m2").rglob("*_maps.npz"))) == 1


def test_train_bad_image_writes_last_pt_and_skip_goes_on(tiny_run, tmp_path):
    root, targets, _ = tiny_run
    copy, bad = _corrupt_copy(root, tmp_path, "train")
    args = ["train", "--root", str(copy), "--targets", str(targets), "--batch", "1",
            "--crop", "64x128", "--workers", "0", "--threads", "1", "--device", "cpu",
            "--neck", "shared", "--iters", "6", "--save-every", "100"]
    code, output = run_cli(*args, "--out", str(tmp_path / "r1"))
    line = one_error_line(output)
    assert code == 1 and str(bad) in line
    from panoptool.training.loop import load_checkpoint
    ckpt = load_checkpoint(tmp_path / "r1" / "checkpoints" / "last.pt")
    done = ckpt["iteration"]  # 0 when the very first sample was the bad one
    # every iteration finished before the bad sample is in last.pt: resume starts there
    rows = (tmp_path / "r1" / "metrics.csv").read_text().splitlines()[1:]
    assert len(rows) == done
    code, output = run_cli(*args, "--out", str(tmp_path / "r2"), "--on-bad-image", "skip")
    assert code == 0 and "skipped (--on-bad-image skip)" in output
    assert load_checkpoint(tmp_path / "r2" / "checkpoints" / "last.pt")["iteration"] == 6


def test_train_writes_last_pt_when_an_error_ends_the_run(tiny_run, tmp_path, monkeypatch):
    from panoptool.training import loop as training
    root, targets, _ = tiny_run
    real = training._step
    calls = {"n": 0}

    def failing_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError(errno.EIO, "Input/output error")
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "_step", failing_step)
    config = training.TrainConfig(root=str(root), targets=str(targets),
                                  out=str(tmp_path / "r"), iters=10, batch=1, crop=(64, 128),
                                  workers=0, threads=1, device="cpu", neck="shared",
                                  save_every=100)
    with pytest.raises(OSError):
        training.train(config, show_progress=False)
    assert training.load_checkpoint(tmp_path / "r" / "checkpoints" / "last.pt")[
        "iteration"] == 3


# --- 4. checkpoints ---------------------------------------------------------------------------

class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_checkpoint_garbage_and_code_are_one_line(tiny_run, tmp_path):
    _, _, run = tiny_run
    good = (run / "checkpoints" / "last.pt").read_bytes()
    rng = np.random.default_rng(0)
    cases = {"empty": b"", "text": b"garbage", "half": good[: len(good) // 2],
             "proto": b"\x80\x02}q\x00.", "legacy": b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."}
    for k in range(8):
        flipped = bytearray(good)
        for pos in rng.integers(0, len(good), 6):
            flipped[pos] = int(rng.integers(0, 256))
        cases[f"flip{k}"] = bytes(flipped)
    from panoptool.training.loop import load_checkpoint
    for name, data in cases.items():
        path = tmp_path / f"{name}.pt"
        path.write_bytes(data)
        try:
            load_checkpoint(path)
        except InputError as exc:
            assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc), str(exc)
        else:
            assert name.startswith("flip")  # the flipped bytes fell in tensor data: valid
    code, output = run_cli("infer", "--checkpoint", str(tmp_path / "half.pt"), "--root",
                           str(tiny_run[0]), "--split", "train", "--out", str(tmp_path / "m"),
                           "--device", "cpu")
    assert code == 1 and "cannot read checkpoint" in one_error_line(output)
    evil = tmp_path / "evil.pt"
    torch.save({"format": "x", "payload": _Evil()}, evil)
    code, output = run_cli("infer", "--checkpoint", str(evil), "--root", str(tiny_run[0]),
                           "--split", "train", "--out", str(tmp_path / "m"), "--device", "cpu")
    line = one_error_line(output)
    assert "loading it would run code" in line and "never runs code" in line
    assert "system" in line and "pwned" not in output


def test_init_weights_matching_under_half_refuses_unless_allowed(tiny_run, tmp_path):
    from panoptool.model.resnet import ResNetEncoder
    root, targets, _ = tiny_run
    state = ResNetEncoder("resnet18").state_dict() if hasattr(ResNetEncoder, "__init__") else {}
    few = {k: v for k, v in list(state.items())[:3]}
    path = tmp_path / "few.pth"
    torch.save(few, path)
    args = ["train", "--root", str(root), "--targets", str(targets), "--batch", "1",
            "--crop", "64x128", "--workers", "0", "--threads", "1", "--device", "cpu",
            "--neck", "shared", "--iters", "1", "--init-weights", str(path)]
    code, output = run_cli(*args, "--out", str(tmp_path / "r1"))
    line = one_error_line(output)
    assert code == 1 and "--allow-partial" in line and str(path) in line
    code, output = run_cli(*args, "--out", str(tmp_path / "r2"), "--allow-partial")
    assert code == 0, output


# --- infer without ground truth and a second split ---------------------------------------------

def test_infer_on_a_split_without_ground_truth_and_a_second_split(tiny_run, tmp_path):
    root, _, run = tiny_run
    copy = tmp_path / "root"
    shutil.copytree(root, copy)
    shutil.copytree(copy / "leftImg8bit" / "train", copy / "leftImg8bit" / "test")
    out = tmp_path / "maps"
    base = ["infer", "--checkpoint", str(run / "checkpoints" / "last.pt"), "--root",
            str(copy), "--device", "cpu", "--threads", "1", "--out", str(out)]
    assert run_cli(*base, "--split", "train")[0] == 0
    code, output = run_cli(*base, "--split", "test")  # no gtFine/test at all
    assert code == 0, output
    assert len(list((out / "test").rglob("*_maps.npz"))) == 2
    assert len(list((out / "train").rglob("*_maps.npz"))) == 2
    settings = json.loads((out / "config.json").read_text())["settings"]
    assert settings["splits"] == ["test", "train"]


# --- 5. stems and cities with whitespace --------------------------------------------------------

def _rename_city(root: Path, old: str, new: str) -> None:
    for top in ("leftImg8bit", "gtFine"):
        folder = root / top / "val" / old
        for f in folder.iterdir():
            f.rename(folder / f.name.replace(old, new, 1))
        folder.rename(folder.parent / new)


def test_a_city_with_a_space_runs_end_to_end_and_equals_the_official_ap(make_synth, tmp_path):
    from panoptool.evaluation.official import official_instance
    root = tmp_path / "root"
    shutil.copytree(make_synth(n=2, height=64, width=128, seed=3), root)
    for city in {p.name for p in (root / "gtFine" / "val").iterdir()}:
        _rename_city(root, city, "são paulo")
        break
    stems = sorted(p.name for p in (root / "gtFine" / "val" / "são paulo").iterdir())
    assert stems[0].startswith("são paulo_000000_")
    targets, res, rep = tmp_path / "targets", tmp_path / "res", tmp_path / "rep"
    assert run_cli("make-targets", "--root", str(root), "--split", "val", "--out",
                   str(targets), "--workers", "1")[0] == 0
    assert run_cli("postprocess", "--oracle", "--root", str(root), "--dataset-split", "val",
                   "--targets", str(targets), "--out", str(res), "--workers", "1")[0] == 0
    txts = sorted((res / "instance").glob("são paulo_*_pred.txt"))
    assert txts
    for txt in txts:
        for line in txt.read_text().splitlines():
            assert len(line.split()) == 3 and line.startswith("masks/são%20paulo_"), line
    code, output = run_cli("report", "--root", str(root), "--split", "val", "--results",
                           str(res), "--out", str(rep), "--workers", "1")
    assert code == 0, output
    ours = json.loads((rep / "metrics.json").read_text())
    theirs = official_instance(root, "val", res, tmp_path / "official")
    assert ours["AP"] == pytest.approx(100 * theirs["averages"]["allAp"], abs=1e-6)


# --- 6. decompression bombs ------------------------------------------------------------------

def _bomb_png(path: Path, height: int, width: int) -> None:
    """A PNG whose header says height x width (its pixel data is a short zlib stream: the
    file is refused from its header, before a decoder would allocate the whole image)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\x00" * (width + 1) * min(height, 64), 9)
    path.write_bytes(io.PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body)
                     + chunk(b"IEND", b""))


def test_png_bomb_is_refused_from_its_header(tmp_path, monkeypatch):
    bomb = tmp_path / "bomb.png"
    _bomb_png(bomb, 20000, 20000)  # 400 Mpx announced, a few KB on disk
    assert bomb.stat().st_size < 1 << 20
    decoded = []
    monkeypatch.setattr(io.cv2, "imdecode", lambda *a: decoded.append(1))
    with pytest.raises(InputError, match="more than the limit"):
        io.read_png(bomb)
    from panoptool.evaluation.runner import read_result_png
    small = tmp_path / "small.png"
    _bomb_png(small, 64, 128)
    with pytest.raises(InputError, match=r"size 128x64 \(from the PNG header\) differs"):
        read_result_png(small, "semantic", (32, 64))
    assert not decoded  # refused before any decoding


def test_npz_arrays_larger_than_the_image_are_refused_unloaded(tmp_path, monkeypatch):
    from panoptool.io import formats
    h, w = 8, 16
    arrays = dict(train_ids=np.zeros((h, w), np.uint8), confidence=np.ones((h, w), np.float16),
                  contour_prob=np.zeros((h, w), np.float16),
                  offset_yx=np.zeros((2, h, w), np.float16))
    big = tmp_path / "x_maps.npz"
    np.savez_compressed(big, **arrays, junk=np.zeros((1000, 1000), np.uint8))
    loaded = []
    monkeypatch.setattr(io.np, "load", lambda *a, **k: loaded.append(1))
    with pytest.raises(InputError, match="larger than the maps of a 16x8 image; not loaded"):
        formats.read_maps(big)
    wrong = tmp_path / "y_maps.npz"
    np.savez_compressed(wrong, **{**arrays, "offset_yx": np.zeros((2, 4 * h, w), np.float16)})
    with pytest.raises(InputError, match="offset_yx must have shape"):
        formats.read_maps(wrong)
    with pytest.raises(InputError, match="larger than the limit of 100"):
        io.load_npz(big, max_elements=100)
    assert not loaded


# --- 7. results: symlinks, panoptic.json types, report --subset -------------------------------

@pytest.fixture()
def results(synth_root, tmp_path):
    from official import make_results
    out = tmp_path / "res"
    make_results(synth_root, "val", out, scenario="noisy", seed=5)
    return synth_root, out


def test_semantic_png_symlinked_outside_is_refused(results, tmp_path):
    root, res = results
    png = sorted((res / "semantic").glob("*.png"))[0]
    outside = tmp_path / "outside.png"
    shutil.move(png, outside)
    png.symlink_to(outside)
    code, output = run_cli("report", "--root", str(root), "--split", "val", "--results",
                           str(res), "--out", str(tmp_path / "rep"), "--no-cache")
    line = one_error_line(output)
    assert code == 1 and str(png) in line and "outside the results folder" in line
    png.unlink()
    png.symlink_to(Path("..") / "semantic_store.png")  # a link that stays inside: accepted
    shutil.move(outside, res / "semantic_store.png")
    code, output = run_cli("report", "--root", str(root), "--split", "val", "--results",
                           str(res), "--out", str(tmp_path / "rep"), "--no-cache")
    assert code == 0, output


def test_panoptic_json_value_types_are_checked(results, tmp_path):
    root, res = results
    path = res / "panoptic.json"
    data = json.loads(path.read_text())
    seg = data["annotations"][0]["segments_info"][0]
    seg["category_id"] = str(seg["category_id"])
    path.write_text(json.dumps(data))
    code, output = run_cli("report", "--root", str(root), "--split", "val", "--results",
                           str(res), "--out", str(tmp_path / "rep"), "--no-cache")
    line = one_error_line(output)
    assert code == 1 and str(path) in line and "category_id must be an integer, got str" in line


def test_report_subset_evaluates_only_predicted_images(results, tmp_path):
    from panoptool.evaluation.runner import evaluate
    root, res = results
    stems = sorted(p.name[: -len("_pred_labelIds.png")] for p in (res / "semantic").glob("*"))
    drop = stems[0]
    # the same results without image `drop`, and a dataset root without it
    sub = tmp_path / "sub"
    shutil.copytree(res, sub)
    for f in list(sub.rglob(f"{drop}*")):
        f.unlink()
    data = json.loads((sub / "panoptic.json").read_text())
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != drop]
    (sub / "panoptic.json").write_text(json.dumps(data))
    code, output = run_cli("report", "--root", str(root), "--split", "val", "--results",
                           str(sub), "--out", str(tmp_path / "r0"), "--no-cache")
    assert code == 1 and f"no semantic result for image {drop}" in one_error_line(output)
    code, output = run_cli("report", "--root", str(root), "--split", "val", "--results",
                           str(sub), "--out", str(tmp_path / "r1"), "--no-cache", "--subset")
    assert code == 0, output
    n = len(stems)
    assert f"subset: {n - 1} of {n} images" in " ".join(output.split())
    metrics = json.loads((tmp_path / "r1" / "metrics.json").read_text())
    assert metrics["subset"] == f"{n - 1} of {n} images" and metrics["n_images"] == n - 1
    assert f"subset: {n - 1} of {n} images" in (tmp_path / "r1" / "summary.md").read_text()
    assert f"{n - 1} of {n} images" in (tmp_path / "r1" / "per_class.csv").read_text()
    small = tmp_path / "small_root"
    shutil.copytree(root, small, ignore=shutil.ignore_patterns(f"{drop}*", ".panoptool_cache"))
    expected = evaluate(small, "val", sub, workers=1, cache=False, show_progress=False)
    for key, value in expected.metrics.items():
        assert metrics[key] == pytest.approx(value, abs=1e-9) if value is not None \
            else metrics[key] is None, key
    # default unchanged: no subset key
    full = evaluate(root, "val", res, workers=1, cache=False, show_progress=False)
    assert "subset" not in full.metrics and full.subset is None
