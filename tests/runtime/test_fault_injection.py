"""Fault injection: make-targets, postprocess and report (2 workers) and train are killed with
SIGKILL (the process alone, as the OOM killer does) and SIGINT (the whole process group, as
Ctrl-C does) at seeded points, re-run, and their outputs compared with an uninterrupted run,
byte for byte; no temporary file, no lock and no live worker may remain."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from procs import alive as _alive, children as _children

PANOPTOOL = [sys.executable, "-m", "panoptool_cli.main"]
ENV = {**os.environ, "PANOPTOOL_NO_PROGRESS": "1"}
N_IMAGES = 8

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux /proc")




def interrupt(argv: list[str], ready: Callable[[int], bool], sig: int, delay: float) -> int:
    """Start ``panoptool argv``, wait until ``ready()``, then ``delay`` s, then send ``sig``
    (SIGINT to the process group, anything else to the process); return the exit status
    after checking that no child process outlives it by 2 s."""
    proc = subprocess.Popen([*PANOPTOOL, *argv], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 60
    while proc.poll() is None and not ready(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    children = _children(proc.pid)
    if proc.poll() is None:
        if sig == signal.SIGINT:
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(sig)
    code = proc.wait(timeout=60)
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    end = time.monotonic() + 2.0
    while any(_alive(c) for c in children) and time.monotonic() < end:
        time.sleep(0.05)
    survivors = [c for c in children if _alive(c)]
    for c in survivors:
        os.kill(c, signal.SIGKILL)
    assert not survivors, f"{argv[0]}: children {survivors} survived {signal.Signals(sig).name}"
    # Ctrl-C: the message and exit 130, or exit 0/1 ("Aborted!") when the signal came as
    # the run was ending; never a traceback
    assert "Traceback" not in stderr, stderr
    if sig == signal.SIGINT:
        assert code in (0, 1, 130, -signal.SIGINT), f"{argv[0]}: exit {code}\n{stderr}"
    return code


def complete(argv: list[str]) -> None:
    r = subprocess.run([*PANOPTOOL, *argv], env=ENV, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def count(folder: Path, pattern: str) -> Callable[[int], Callable[[int], bool]]:
    return lambda k: lambda pid: len(list(folder.rglob(pattern))) >= k


def workers_started(pid: int) -> bool:
    return len(_children(pid)) >= 2


@pytest.fixture(scope="module")
def reference(make_synth, tmp_path_factory):
    """Uninterrupted outputs of each stage (library calls; results do not depend on the
    number of workers)."""
    from panoptool.evaluation.runner import evaluate, write_report
    from panoptool.postprocess import PostprocessConfig, postprocess_oracle
    from panoptool.targets.core import TargetConfig, make_targets
    root = make_synth(n=N_IMAGES, height=128, width=256, seed=13)
    base = tmp_path_factory.mktemp("fault_ref")
    make_targets(root, "val", base / "targets", TargetConfig(), workers=1, show_progress=False)
    postprocess_oracle(root, "val", base / "targets", base / "results",
                       PostprocessConfig(min_area=0), workers=1, show_progress=False)
    write_report(evaluate(root, "val", base / "results", workers=2, cache=False,
                          show_progress=False), base / "report")
    return root, base


def _check_clean(folder: Path) -> None:
    assert not list(folder.rglob(".tmp-*")), "temporary file left"
    assert not list(folder.rglob(".panoptool.lock")), "lock file left"


@pytest.mark.parametrize("stage", ["make-targets", "postprocess", "report"])
def test_killed_stage_reruns_to_identical_outputs(stage, reference, tmp_path):
    root, ref = reference
    rng = np.random.default_rng(["make-targets", "postprocess", "report"].index(stage) + 13)
    out = tmp_path / "out"
    if stage == "make-targets":
        argv = ["make-targets", "--root", str(root), "--split", "val", "--out", str(out)]
        expected = tree(ref / "targets")
        progress = count(out, "*_offset.npz")
    elif stage == "postprocess":
        argv = ["postprocess", "--oracle", "--root", str(root), "--dataset-split", "val",
                "--targets", str(ref / "targets"), "--out", str(out), "--min-area", "0"]
        expected = tree(ref / "results")
        progress = count(out, "*_segments.json")
    else:
        argv = ["report", "--root", str(root), "--split", "val", "--results",
                str(ref / "results"), "--out", str(out), "--no-cache"]
        expected = tree(ref / "report")
        progress = None
    argv += ["--workers", "2"]
    k1 = int(rng.integers(1, N_IMAGES // 2 + 1))
    k2 = int(rng.integers(k1 + 1, N_IMAGES))
    for sig, k in ((signal.SIGKILL, k1), (signal.SIGINT, k2)):
        ready = progress(k) if progress else workers_started
        interrupt(argv, ready, sig, delay=float(rng.uniform(0.0, 0.3)))
    complete(argv)
    got = tree(out)
    assert got == expected, sorted(k for k in got if got.get(k) != expected.get(k))
    _check_clean(out)


def test_killed_training_resumes_to_the_same_weights(make_synth, tmp_path_factory, tmp_path):
    from panoptool.targets.core import TargetConfig, make_targets
    from panoptool.training.loop import TrainConfig, load_checkpoint, train
    root = make_synth(n=2, height=64, width=128, seed=7, split="train")
    targets = tmp_path_factory.mktemp("fault_targets")
    make_targets(root, "train", targets, TargetConfig(), workers=1, show_progress=False)
    iters = 5
    settings = dict(root=str(root), targets=str(targets), iters=iters, batch=1,
                    crop=(64, 128), threads=1, device="cpu", neck="shared", save_every=1)
    train(TrainConfig(out=str(tmp_path / "ref"), workers=0, **settings), show_progress=False)
    out = tmp_path / "run"
    argv = ["train", "--root", str(root), "--targets", str(targets), "--out", str(out),
            "--iters", str(iters), "--batch", "1", "--crop", "64x128", "--threads", "1",
            "--device", "cpu", "--neck", "shared", "--save-every", "1", "--workers", "1"]
    metrics = out / "metrics.csv"

    def rows(k):
        return lambda pid: metrics.is_file() and len(metrics.read_text().splitlines()) > k
    rng = np.random.default_rng(17)
    k1 = int(rng.integers(1, 3))
    k2 = int(rng.integers(k1 + 1, iters))
    interrupt(argv, rows(k1), signal.SIGKILL, delay=0.0)
    interrupt(argv + ["--resume"], rows(k2), signal.SIGINT, delay=0.0)
    complete(argv + ["--resume"])
    a = load_checkpoint(tmp_path / "ref" / "checkpoints" / "last.pt")
    b = load_checkpoint(out / "checkpoints" / "last.pt")
    assert a["iteration"] == b["iteration"] == iters
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key

    def losses(path):
        return [line.rsplit(",", 1)[0] for line in path.read_text().splitlines()]
    assert losses(metrics) == losses(tmp_path / "ref" / "metrics.csv")
    _check_clean(out)
