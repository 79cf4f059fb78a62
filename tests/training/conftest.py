"""Fixtures of the training tests: a tiny training set with its targets."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def tiny(make_synth, tmp_path_factory):
    """4 training images of 64x128 with their targets: (root, targets)."""
    from panoptool.targets.core import TargetConfig, make_targets
    root = make_synth(n=4, height=64, width=128, seed=3, split="train")
    targets = tmp_path_factory.mktemp("targets")
    make_targets(root, "train", targets, TargetConfig(dilation=2), workers=1,
                 show_progress=False)
    return root, targets
