"""Training loop: schedule, exact resume, checkpoints, time budget, errors."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from panoptool.errors import ConfigError, InputError, OutputError
from panoptool.training.checkpoints import checkpoint_path, load_checkpoint, model_from_checkpoint
from panoptool.training.config import OptimConfig, TrainConfig
from panoptool.training.loop import train
from panoptool.training.schedule import Schedule, learning_rate
from panoptool_cli.main import cli


@pytest.fixture(scope="module")
def tiny(make_synth, tmp_path_factory):
    """4 training images of 64x128 with their targets: (root, targets)."""
    from panoptool.targets.core import TargetConfig, make_targets
    root = make_synth(n=4, height=64, width=128, seed=3, split="train")
    targets = tmp_path_factory.mktemp("targets")
    make_targets(root, "train", targets, TargetConfig(dilation=2), workers=1,
                 show_progress=False)
    return root, targets


def config_for(tiny, out, **kwargs) -> TrainConfig:
    root, targets = tiny
    base = dict(root=str(root), targets=str(targets), out=str(out), iters=4, batch=2,
                crop=(64, 96), scale=(0.75, 1.25), workers=0, threads=1, device="cpu",
                warmup_iters=2, lr=0.01, save_every=100)
    base.update(kwargs)
    return TrainConfig(**base)


def weights(path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def read_csv(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_learning_rate_warmup_then_poly():
    c = OptimConfig(lr=0.01, warmup_iters=10, poly_power=0.9)
    lrs = [learning_rate(i, 100, c) for i in range(101)]
    assert lrs[0] == pytest.approx(0.001)
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:10]))  # warm-up rises
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # poly decays
    assert lrs[50] == pytest.approx(0.01 * 0.5 ** 0.9)
    assert lrs[100] == 0.0


@pytest.mark.parametrize("kwargs", [{"backbone": "vgg"}, {"neck": "x"}, {"batch": 0},
                                    {"lr": 0}, {"crop": (16, 64)}, {"scale": (2.0, 1.0)},
                                    {"contour_loss": ("wbce", "edge")}, {"lambdas": (1, 2)},
                                    {"device": "tpu"}])
def test_train_config_rejects_bad_settings(kwargs):
    with pytest.raises(ConfigError):
        TrainConfig(root="r", targets="t", out="o", **kwargs)


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


def test_truncated_or_foreign_checkpoint_is_an_input_error(tiny, tmp_path):
    train(config_for(tiny, tmp_path / "r", iters=1), show_progress=False)
    path = checkpoint_path(tmp_path / "r")
    data = path.read_bytes()
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated"):
        load_checkpoint(bad)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(InputError, match="not a panoptool checkpoint"):
        load_checkpoint(other)
    ckpt = torch.load(path, weights_only=True)
    ckpt["network"] = json.dumps({**json.loads(ckpt["network"]), "backbone": "resnet34"})
    wrong = tmp_path / "wrong.pt"
    torch.save(ckpt, wrong)
    with pytest.raises(InputError, match="do not fit a resnet34"):
        model_from_checkpoint(wrong)


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


@pytest.mark.parametrize("new_total", [150, 3000])
def test_schedule_has_no_jump_when_refitted(new_total):
    c = OptimConfig(lr=0.01, warmup_iters=50)
    s, rates = Schedule(c, 1000), []
    for i in range(120):
        rates.append(s.rate())
        s.step(i, 1000 if i < 30 else new_total)  # refit during the warm-up
    steps = np.abs(np.diff(rates))
    warmup = min(50, new_total // 10)
    assert steps.max() <= 0.9 * c.lr / warmup + 1e-12  # never more than a warm-up step
    peak = int(np.argmax(rates))  # rises through the warm-up, then only falls
    assert 30 < peak <= 50
    assert np.all(np.diff(rates[:peak + 1]) > 0) and np.all(np.diff(rates[peak:]) < 0)


def test_cli_train_and_errors(tiny, tmp_path):
    root, targets = tiny
    args = ["train", "--root", str(root), "--targets", str(targets), "--out",
            str(tmp_path / "c"), "--iters", "1", "--batch", "2", "--crop", "64x64",
            "--workers", "0", "--threads", "1", "--device", "cpu", "--contour-loss", "wbce,nms",
            "--lambdas", "1,10,0.5"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    cfg = json.loads((tmp_path / "c" / "config.json").read_text())
    assert cfg["settings"]["contour_loss"] == ["wbce", "nms"]
    assert cfg["settings"]["lambdas"] == [1.0, 10.0, 0.5]
    assert cfg["settings"]["crop"] == [64, 64]
    assert "loss_nms" in read_csv(tmp_path / "c" / "metrics.csv")[0]
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 1 and "panoptool: error:" in again.output
    bad = CliRunner().invoke(cli, args[:-4] + ["--contour-loss", "dice", "--resume"])
    assert bad.exit_code == 1 and "contour loss terms" in bad.output
    missing = CliRunner().invoke(cli, ["train", "--root", str(root), "--targets",
                                       str(tmp_path / "none"), "--out", str(tmp_path / "d")])
    assert missing.exit_code == 1 and "make-targets" in missing.output


def test_init_weights_loads_encoder(tiny, tmp_path):
    from test_model import torchvision_resnet_state  # noqa: PLC0415 (tests/ is on sys.path)
    state = torchvision_resnet_state("resnet18")
    path = tmp_path / "r18.pth"
    torch.save(state, path)
    train(config_for(tiny, tmp_path / "i", iters=1, init_weights=str(path), lr=1e-12),
          show_progress=False)
    w = weights(checkpoint_path(tmp_path / "i"))
    assert torch.allclose(w["encoder.conv1.weight"], state["conv1.weight"], atol=1e-6)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage")
    with pytest.raises(InputError, match="cannot read --init-weights file"):
        train(config_for(tiny, tmp_path / "j", iters=1, init_weights=str(bad)),
              show_progress=False)


def test_train_config_is_frozen_and_json_able():
    c = TrainConfig(root="r", targets="t", out="o")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.lr = 1.0  # type: ignore[misc]
    assert json.loads(json.dumps(c.settings()))["crop"] == [512, 1024]


# --- data pipeline -------------------------------------------------------------------------

def _two_boxes():
    import numpy as np
    index = np.zeros((40, 60), np.uint16)
    index[5:15, 10:30] = 1
    index[20:38, 35:55] = 2
    ys, xs = np.nonzero(index == 1)
    c1 = (ys.mean(), xs.mean())
    ys, xs = np.nonzero(index == 2)
    c2 = (ys.mean(), xs.mean())
    train_ids = np.where(index > 0, 13, 0).astype(np.uint8)
    contour = np.zeros_like(train_ids)
    return {"train_ids": train_ids, "contour": contour, "instance_index": index,
            "centers_yx": np.array([c1, c2], np.float32)}


@pytest.mark.parametrize("scale, tol", [(1.0, 1e-3), (1.5, 0.5)])
def test_augmented_offsets_point_to_the_augmented_instance_centres(scale, tol):
    import numpy as np
    from scipy import ndimage

    from panoptool.training.data import Augment, augment_sample
    targets = _two_boxes()
    image = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    crop = (round(40 * scale), round(60 * scale))  # the whole scaled image: no cut instances
    flipped = set()
    for seed in range(8):
        out = augment_sample(image, targets, crop, Augment(crop=crop, scale=(scale, scale)),
                             np.random.default_rng(seed))
        sem, off, valid = out["semantic"], out["offset_yx"], out["offset_valid"]
        assert out["image"].shape == (3,) + crop and sem.shape == crop
        assert np.array_equal(valid, sem == 13) and out["pixel_valid"].all()
        components, n = ndimage.label(valid)
        assert n == 2
        for k in (1, 2):
            ys, xs = np.nonzero(components == k)
            # every pixel points to its instance's centroid
            assert np.abs(ys + off[0, ys, xs] - ys.mean()).max() <= tol
            assert np.abs(xs + off[1, ys, xs] - xs.mean()).max() <= tol
        flipped.add(bool(valid[int(10 * scale), int(15 * scale)]))  # box 1 on the left?
    assert flipped == {True, False}  # flipped and unflipped samples were both drawn


def test_stream_two_processes_see_the_global_batch_of_one():
    from panoptool.training.data import StreamBatchSampler
    one = StreamBatchSampler(5, 4, seed=3)
    r0, r1 = (StreamBatchSampler(5, 2, seed=3, rank=r, world=2) for r in (0, 1))
    for t in range(7):
        assert one.batch_at(t) == r0.batch_at(t) + r1.batch_at(t)
    # each epoch visits every image once; augmentation seeds never repeat
    stream = [one.position(p) for p in range(15)]
    for e in range(3):
        assert sorted(i for i, _ in stream[5 * e: 5 * e + 5]) == [0, 1, 2, 3, 4]
    assert len({s for _, s in stream}) == 15
    resumed = StreamBatchSampler(5, 4, seed=3, start=2)
    assert next(iter(resumed)) == one.batch_at(2)


def test_padding_of_a_shrunk_image_is_ignored():
    import numpy as np
    from panoptool.training.data import Augment, augment_sample
    from panoptool.labels import IGNORE
    targets = _two_boxes()
    targets["contour"][5, 10:30] = 1
    image = np.full((40, 60, 3), 200, np.uint8)
    out = augment_sample(image, targets, (40, 60), Augment(crop=(40, 60), scale=(0.5, 0.5),
                                                           flip=False),
                         np.random.default_rng(0))
    pad = ~out["pixel_valid"]
    assert pad.sum() == 40 * 60 - 20 * 30
    assert (out["semantic"][pad] == IGNORE).all() and not out["offset_valid"][pad].any()
    assert (out["contour"][pad] == 0).all() and (out["image"][:, pad] == 0).all()
    assert out["contour"][~pad].sum() > 0


def test_resume_with_more_iterations_continues(tiny, tmp_path):
    train(config_for(tiny, tmp_path / "r", iters=1), show_progress=False)
    s = train(config_for(tiny, tmp_path / "r", iters=2), resume=True, show_progress=False)
    assert s.iterations == 2 and s.total_iters == 2
    assert [r["iter"] for r in read_csv(tmp_path / "r" / "metrics.csv")] == ["1", "2"]
