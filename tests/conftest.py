"""Shared fixtures: small synthetic Cityscapes-format datasets made by ``panoptool.synth.scenes``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("PANOPTOOL_NO_PROGRESS", "1")

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture(scope="session")
def make_synth(tmp_path_factory):
    """Factory ``make_synth(n=4, height=128, width=256, seed=0, split="val") -> root``.

    Datasets are cached per argument set for the whole test session; treat them as read-only.
    """
    from panoptool.synth.scenes import SynthConfig, make_dataset

    cache: dict[tuple, Path] = {}

    def factory(n: int = 4, height: int = 128, width: int = 256, seed: int = 0,
                split: str = "val") -> Path:
        key = (n, height, width, seed, split)
        if key not in cache:
            root = tmp_path_factory.mktemp(f"synth_{n}_{height}x{width}_s{seed}_{split}")
            make_dataset(root, SynthConfig(n=n, height=height, width=width, seed=seed,
                                           split=split), workers=1)
            cache[key] = root
        return cache[key]

    return factory


@pytest.fixture(scope="session")
def synth_root(make_synth) -> Path:
    """A small default synthetic val split: 4 images of 128x256."""
    return make_synth()


@pytest.fixture(autouse=True, scope="session")
def _private_panoptool_cache(tmp_path_factory):
    """predict's ONNX exports (and any other user-level cache) go to a temporary folder, not
    the home folder of whoever runs the tests; subprocesses inherit it."""
    import os
    os.environ["PANOPTOOL_CACHE"] = str(tmp_path_factory.mktemp("panoptool_cache"))
    yield
