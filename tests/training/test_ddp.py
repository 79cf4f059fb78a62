"""Two CPU processes under torchrun (gloo) train exactly like one process with the same
global batch."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
import torch

from panoptool.model import PanopticContourNet
from panoptool.training.checkpoints import checkpoint_path


def read_csv(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def tiny(make_synth, tmp_path_factory):
    from panoptool.targets.core import TargetConfig, make_targets
    root = make_synth(n=4, height=64, width=128, seed=5, split="train")
    targets = tmp_path_factory.mktemp("ddp_targets")
    make_targets(root, "train", targets, TargetConfig(), workers=1, show_progress=False)
    return root, targets


def _train_args(tiny, out) -> list[str]:
    root, targets = tiny
    return ["train", "--root", str(root), "--targets", str(targets), "--out", str(out),
            "--iters", "3", "--batch", "4", "--crop", "64x96", "--scale", "0.75,1.25",
            "--lr", "0.01", "--warmup-iters", "1", "--workers", "0", "--threads", "1",
            "--device", "cpu"]


def test_two_gloo_processes_equal_one_process(tiny, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PANOPTOOL_NO_PROGRESS": "1"}
    single = subprocess.run([sys.executable, "-m", "panoptool_cli.main",
                             *_train_args(tiny, tmp_path / "one")],
                            capture_output=True, text=True, env=env, timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc-per-node", "2", "-m", "panoptool_cli.main",
                          *_train_args(tiny, tmp_path / "two")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one = torch.load(checkpoint_path(tmp_path / "one"), weights_only=True)
    two = torch.load(checkpoint_path(tmp_path / "two"), weights_only=True)
    assert one["iteration"] == two["iteration"] == 3
    assert json.loads(two["config"])["settings"]["world_size"] == 2
    for key, w1 in one["model"].items():
        assert torch.allclose(w1, two["model"][key], rtol=1e-4, atol=1e-6), key
    # the same losses at every iteration (averaged over the two processes' halves)
    rows1 = read_csv(tmp_path / "one" / "metrics.csv")
    rows2 = read_csv(tmp_path / "two" / "metrics.csv")
    assert len(rows1) == len(rows2) == 3
    for r1, r2 in zip(rows1, rows2):
        assert float(r1["loss"]) == pytest.approx(float(r2["loss"]), rel=1e-4)
    # and the runs really trained: most tensors moved away from the seeded initialisation
    torch.manual_seed(0)
    fresh = PanopticContourNet().state_dict()
    moved = sum(not torch.equal(fresh[k], one["model"][k]) for k in fresh)
    assert moved > len(fresh) // 2
