"""``torchrun --nproc-per-node 2 -m panoptool_cli.main infer`` (gloo, CPU): every image once,
maps equal to one process's, one config.json."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from panoptool.io.cityscapes import list_samples
from panoptool.io.formats import maps_path
from panoptool.io.files import load_npz
from panoptool.runtime.sharding import Shard, shard_from_env
from panoptool.errors import ConfigError
from panoptool.training.loop import checkpoint_path


@pytest.fixture(scope="module")
def trained(make_synth, tmp_path_factory):
    from panoptool.targets.core import TargetConfig, make_targets
    from panoptool.training.loop import TrainConfig, train
    root = make_synth(n=2, height=64, width=128, seed=7, split="train")
    val = make_synth(n=5, height=64, width=128, seed=11, split="val")
    targets = tmp_path_factory.mktemp("shard_targets")
    make_targets(root, "train", targets, TargetConfig(), workers=1, show_progress=False)
    run = tmp_path_factory.mktemp("shard_run")
    train(TrainConfig(root=str(root), targets=str(targets), out=str(run), iters=2, batch=2,
                      crop=(64, 128), workers=0, threads=1, device="cpu", neck="shared"),
          show_progress=False)
    return val, checkpoint_path(run)


def _infer_args(val, ckpt, out) -> list[str]:
    return ["infer", "--checkpoint", str(ckpt), "--root", str(val), "--split", "val",
            "--out", str(out), "--device", "cpu", "--threads", "1", "--workers", "1"]


def test_two_gloo_processes_write_the_maps_of_one(trained, tmp_path):
    val, ckpt = trained
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PANOPTOOL_NO_PROGRESS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        env.pop(name, None)
    one = subprocess.run([sys.executable, "-m", "panoptool_cli.main",
                          *_infer_args(val, ckpt, tmp_path / "one")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc-per-node", "2", "-m", "panoptool_cli.main",
                          *_infer_args(val, ckpt, tmp_path / "two")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    # each rank wrote its own share: 5 images = 3 (rank 0) + 2 (rank 1)
    written = dict(re.findall(r"rank (\d) of 2\): (\d) images written", two.stderr))
    assert written == {"0": "3", "1": "2"}, two.stderr
    samples = list_samples(val, "val")
    assert len(samples) == 5
    for s in samples:
        a = load_npz(maps_path(tmp_path / "one", "val", s.stem))
        b = load_npz(maps_path(tmp_path / "two", "val", s.stem))
        assert a.keys() == b.keys()
        for key in a:  # byte for byte (the zip container also holds write times)
            assert a[key].dtype == b[key].dtype and a[key].tobytes() == b[key].tobytes(), key
    files = sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*")
                   if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "one")
                           for p in (tmp_path / "one").rglob("*") if p.is_file())
    c1 = json.loads((tmp_path / "one" / "config.json").read_text())
    c2 = json.loads((tmp_path / "two" / "config.json").read_text())
    assert c1["settings"].pop("out") != c2["settings"].pop("out")
    assert c1 == c2


def test_shard_from_env_and_take():
    shards = [shard_from_env({"RANK": str(r), "WORLD_SIZE": "3"}) for r in range(3)]
    items = list(range(10))
    parts = [s.take(items) for s in shards]
    assert sorted(sum(parts, [])) == items and [len(p) for p in parts] == [4, 3, 3]
    assert shards[0].main and not shards[1].main and shards[1].local_world == 3
    assert shard_from_env({}) == Shard()
    with pytest.raises(ConfigError, match="RANK"):
        shard_from_env({"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(ConfigError, match="WORLD_SIZE must be an integer"):
        shard_from_env({"WORLD_SIZE": "two"})
