"""Bad results given to ``report``: the library's InputError and the CLI's one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from panoptool.errors import InputError
from panoptool.evaluation.runner import evaluate
from panoptool_cli import main


def run_report(*args):
    return CliRunner().invoke(main.cli, ["report", *map(str, args)])


def expect_report_error(root: Path, results: Path, fragment: str, path_fragment: str) -> None:
    """``evaluate`` raises one line holding both fragments; ``report`` exits 1 with it."""
    with pytest.raises(InputError) as info:
        evaluate(root, "val", results, workers=1, cache=False)
    message = str(info.value)
    assert fragment in message and path_fragment in message, message
    assert "\n" not in message
    r = run_report("--root", root, "--results", results, "--out", results.parent / "o",
                   "--workers", 1, "--no-cache")
    assert r.exit_code == 1
    assert r.output.strip().startswith("panoptool: error:") and fragment in r.output


def val_stems(root: Path) -> list[str]:
    from panoptool.io.cityscapes import list_samples
    return [s.stem for s in list_samples(root, "val")]
