"""The training loop: exact resume, the run folder, checkpoint cadence, time budget."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from panoptool.errors import ConfigError, InputError, OutputError
from panoptool.training import loop
from panoptool.training.checkpoints import checkpoint_path, load_checkpoint, model_from_checkpoint
from panoptool.training.loop import train
from train_helpers import config_for, read_csv, weights


def test_resume_gives_the_same_weights_as_a_straight_run(tiny, tmp_path):
    straight = train(config_for(tiny, tmp_path / "a", workers=1), show_progress=False)
    assert straight.iterations == 4 and straight.stopped == "done"
    first = train(config_for(tiny, tmp_path / "b"), stop_after=2, show_progress=False)
    assert first.iterations == 2 and first.stopped == "stop_after"
    assert load_checkpoint(checkpoint_path(tmp_path / "b"))["iteration"] == 2
    # a killed run may have logged rows after its last checkpoint: they must go
    with open(tmp_path / "b" / "metrics.csv", "a") as fh:
        fh.write("3,9,9,9,9,9,9,9,0.1,9\n")
    second = train(config_for(tiny, tmp_path / "b"), resume=True, show_progress=False)
    assert second.iterations == 4
    wa, wb = weights(checkpoint_path(tmp_path / "a")), weights(checkpoint_path(tmp_path / "b"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    ra, rb = read_csv(tmp_path / "a" / "metrics.csv"), read_csv(tmp_path / "b" / "metrics.csv")
    assert [r["iter"] for r in rb] == ["1", "2", "3", "4"]
    assert [r["loss"] for r in ra] == [r["loss"] for r in rb]
    assert set(ra[0]) == {"iter", "loss", "loss_semantic", "loss_contour", "loss_offset",
                          "loss_wbce", "loss_huber", "loss_nms", "lr", "time"}
    # weights moved, and the optimizer state is in the checkpoint
    ckpt = load_checkpoint(checkpoint_path(tmp_path / "a"))
    assert ckpt["optimizer"]["state"], "momentum buffers missing"
    fresh = model_from_checkpoint(checkpoint_path(tmp_path / "a"))[0].state_dict()
    assert all(torch.equal(fresh[k], wa[k]) for k in wa)


def test_run_folder_config_and_provenance(tiny, tmp_path):
    train(config_for(tiny, tmp_path / "r", iters=1), show_progress=False)
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["stage"] == "train" and cfg["upstream"]["stage"] == "make-targets"
    assert cfg["settings"]["backbone"] == "resnet18" and cfg["settings"]["lambdas"] == [1, 50, 0.1]
    assert cfg["settings"]["network"]["neck"] == "separate"
    ckpt = torch.load(checkpoint_path(tmp_path / "r"), weights_only=True)
    assert json.loads(ckpt["config"]) == cfg
    assert not list((tmp_path / "r" / "checkpoints").glob(".tmp-*"))


def test_existing_run_needs_resume_or_overwrite(tiny, tmp_path):
    train(config_for(tiny, tmp_path / "r", iters=1), show_progress=False)
    with pytest.raises(OutputError, match="--resume"):
        train(config_for(tiny, tmp_path / "r", iters=1), show_progress=False)
    s = train(config_for(tiny, tmp_path / "r", iters=1), overwrite=True, show_progress=False)
    assert s.iterations == 1 and len(read_csv(tmp_path / "r" / "metrics.csv")) == 1
    # resuming a finished run does nothing more
    assert train(config_for(tiny, tmp_path / "r", iters=1), resume=True,
                 show_progress=False).iterations == 1
    with pytest.raises(InputError, match="resnet34"):
        train(config_for(tiny, tmp_path / "r", iters=1, backbone="resnet34"), resume=True,
              show_progress=False)
    with pytest.raises(ConfigError, match="lr"):
        train(config_for(tiny, tmp_path / "r", iters=1, lr=0.5), resume=True,
              show_progress=False)


def test_time_budget_fits_the_schedule_and_stops(tiny, tmp_path):
    c = config_for(tiny, tmp_path / "t", iters=100000, max_minutes=0.08)
    s = train(c, show_progress=False)
    assert s.stopped in ("done", "time budget")
    assert 1 <= s.iterations < 100000 and s.total_iters < 100000
    assert s.seconds < 0.08 * 60 + 20
    assert load_checkpoint(checkpoint_path(tmp_path / "t"))["iteration"] == s.iterations
    lr = pd.read_csv(tmp_path / "t" / "metrics.csv")["lr"].to_numpy()
    peak = int(lr.argmax())
    assert np.all(np.diff(lr[:peak + 1]) >= 0) and np.all(np.diff(lr[peak:]) <= 1e-12)


def test_resume_with_more_iterations_continues(tiny, tmp_path):
    train(config_for(tiny, tmp_path / "r", iters=1), show_progress=False)
    s = train(config_for(tiny, tmp_path / "r", iters=2), resume=True, show_progress=False)
    assert s.iterations == 2 and s.total_iters == 2
    assert [r["iter"] for r in read_csv(tmp_path / "r" / "metrics.csv")] == ["1", "2"]


@pytest.mark.parametrize("stop_after, saved", [(None, [2, 4, 5]), (3, [2, 3])])
def test_checkpoints_every_save_every_at_the_end_and_at_a_stop(tiny, tmp_path, monkeypatch,
                                                               stop_after, saved):
    real, seen = loop.save_checkpoint, []

    def recording(path, state):
        seen.append(state["iteration"])
        real(path, state)

    monkeypatch.setattr(loop, "save_checkpoint", recording)
    s = train(config_for(tiny, tmp_path / "r", iters=5, save_every=2), stop_after=stop_after,
              show_progress=False)
    assert seen == saved and s.iterations == saved[-1]
    ckpt = load_checkpoint(checkpoint_path(tmp_path / "r"))
    assert ckpt["iteration"] == saved[-1] and ckpt["total_iters"] == 5
    assert ckpt["schedule"]["poly"] == pytest.approx(saved[-1] / 5)


def test_new_network_and_loss_settings_reach_the_run(tiny, tmp_path):
    train(config_for(tiny, tmp_path / "r", iters=1, head_conv=8, nms_radius=1,
                     contour_huber_delta=0.2), show_progress=False)
    settings = json.loads((tmp_path / "r" / "config.json").read_text())["settings"]
    assert settings["network"]["head_conv"] == 8
    assert settings["loss"]["nms_radius"] == 1 and settings["loss"]["contour_huber_delta"] == 0.2
    assert "head_conv" not in settings and "preset" not in settings  # same flat keys as before
