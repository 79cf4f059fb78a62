"""Fixtures shared by the report tests (tests/evaluation): a small synthetic split and noisy
official-format results of it. Import them into a test module by name
(``from report_fixtures import results, root  # noqa: F401``)."""

from __future__ import annotations

import pytest

from official import make_results


@pytest.fixture(scope="module")
def root(make_synth):
    """A synthetic Cityscapes root with 3 validation images (one per test module)."""
    return make_synth(n=3)


@pytest.fixture()
def results(root, tmp_path):
    """Noisy results of ``root``'s val split (official formats)."""
    return make_results(root, "val", tmp_path / "res", "noisy", seed=4)
