"""The bad-input corpus of ``fixtures/bad/``: every case exits 1 with one line naming the file."""

from __future__ import annotations

import shutil
import sys

import pytest
from click.testing import CliRunner

from conftest import FIXTURES
from panoptool_cli.main import cli

sys.path.insert(0, str(FIXTURES / "bad"))
import cases as corpus  # noqa: E402


@pytest.fixture(scope="module")
def workspace(make_synth, tmp_path_factory):
    return corpus.build_workspace(tmp_path_factory.mktemp("bad_ws"), make_synth)


@pytest.mark.parametrize("name", list(corpus.CASES))
def test_bad_input_is_one_line_naming_the_file(name, workspace, tmp_path):
    ws = corpus.Workspace(tmp_path / "ws")
    shutil.copytree(workspace.base, ws.base, symlinks=True)
    argv, named, words = corpus.CASES[name](ws)
    before = {p: p.stat().st_mtime_ns for p in ws.base.rglob("*") if p.is_file()
              and not p.is_symlink() and p != named}
    try:
        result = CliRunner().invoke(cli, argv)
    finally:
        for held in ws.held:
            held.__exit__(None, None, None)
    output = result.output.strip()
    assert result.exit_code == 1, (name, output)
    lines = output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("panoptool: error: "), (name, output)
    assert f"{named}: " in lines[0] or f"{named.resolve()}: " in lines[0], (name, lines[0])
    assert words in lines[0], (name, lines[0])
    # nothing that existed before was changed or left half-written
    for p, mtime in before.items():
        if p.exists() and "report" not in p.parts:
            assert p.stat().st_mtime_ns == mtime or p.name == "config.json", (name, p)
    assert not list(ws.base.rglob(".tmp-*")), name
