"""Checkpoints: unreadable or foreign files, init weights, what --resume refuses."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from panoptool.errors import ConfigError, InputError
from panoptool.training.checkpoints import checkpoint_path, load_checkpoint, model_from_checkpoint
from panoptool.training.loop import train
from train_helpers import config_for, weights


def _torchvision_resnet_state(depth: str) -> dict[str, torch.Tensor]:
    """tests/model/test_model.py's fake torchvision state dict (imported by path: that folder
    is on sys.path only when its tests were collected first)."""
    path = Path(__file__).resolve().parents[1] / "model" / "test_model.py"
    spec = importlib.util.spec_from_file_location("_model_tests", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.torchvision_resnet_state(depth)


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


def test_init_weights_loads_encoder(tiny, tmp_path):
    state = _torchvision_resnet_state("resnet18")
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


def test_resume_refuses_another_network_or_loss(tiny, tmp_path):
    train(config_for(tiny, tmp_path / "r", iters=1, head_conv=8), show_progress=False)
    with pytest.raises(InputError, match="head_conv: 8 -> 0"):
        train(config_for(tiny, tmp_path / "r", iters=2), resume=True, show_progress=False)
    with pytest.raises(ConfigError, match="loss.nms_radius: 2 -> 1"):
        train(config_for(tiny, tmp_path / "r", iters=2, head_conv=8, nms_radius=1),
              resume=True, show_progress=False)
    with pytest.raises(ConfigError, match=r"semantic_top_k: 1.0 -> 0.5\)"):  # listed once
        train(config_for(tiny, tmp_path / "r", iters=2, head_conv=8, semantic_top_k=0.5),
              resume=True, show_progress=False)
    # what does not change the result may change
    s = train(config_for(tiny, tmp_path / "r", iters=2, head_conv=8, save_every=7,
                         preset="paper"), resume=True, show_progress=False)
    assert s.iterations == 2


def test_checkpoint_rebuilds_the_network_it_trained(tiny, tmp_path):
    train(config_for(tiny, tmp_path / "r", iters=1, head_conv=8, neck_channels=32,
                     gn_groups=8), show_progress=False)
    model, ckpt = model_from_checkpoint(checkpoint_path(tmp_path / "r"))
    assert json.loads(ckpt["network"])["head_conv"] == 8
    assert model.config.neck_channels == 32
    assert model.heads["semantic"](torch.zeros(1, 32, 4, 4)).shape == (1, 19, 4, 4)
