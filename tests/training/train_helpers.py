"""Helpers of the training tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import csv

import torch

from panoptool.training.config import TrainConfig


def config_for(tiny, out, **kwargs) -> TrainConfig:
    """A 4-iteration CPU run on ``tiny`` into ``out`` (flat keywords override)."""
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
