"""CLI of the foundation stages: ``panoptool synth`` and ``panoptool make-targets``."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from panoptool.io import formats
from panoptool.io.cityscapes import ENV_ROOT, list_samples
from panoptool_cli import main


def invoke(*args, env=None):
    return CliRunner().invoke(main.cli, list(args), env=env)


@pytest.mark.parametrize("name, options", [
    ("synth", ["--n", "--height", "--width", "--seed", "--split", "--workers"]),
    ("make-targets", ["--root", "--split", "--dilation", "--out", "--workers", "--overwrite"]),
])
def test_help_documents_every_option(name, options):
    result = invoke(name, "--help")
    assert result.exit_code == 0, result.output
    for option in options:
        assert option in result.output
    assert result.output.count("  --") >= len(options)


def test_synth_then_make_targets_end_to_end(tmp_path):
    data, out = tmp_path / "data", tmp_path / "targets"
    result = invoke("synth", str(data), "--n", "3", "--height", "64", "--width", "128",
                    "--seed", "2", "--split", "train", "--workers", "1")
    assert result.exit_code == 0, result.output
    samples = list_samples(data, "train", need_images=True)
    assert len(samples) == 3

    result = invoke("make-targets", "--root", str(data), "--split", "train", "--dilation", "3",
                    "--out", str(out), "--workers", "1")
    assert result.exit_code == 0, result.output
    assert "images done now" in result.stdout and "thing instances" in result.stdout
    for sample in samples:
        assert all(p.is_file() for p in formats.target_paths(out, "train", sample.stem).values())
    assert json.loads((out / "config.json").read_text())["settings"]["dilation"] == 3

    again = invoke("make-targets", "--root", str(data), "--split", "train", "--dilation", "3",
                   "--out", str(out), "--workers", "1")
    assert again.exit_code == 0
    assert "skipped" in again.stdout
    mixed = invoke("make-targets", "--root", str(data), "--split", "train", "--dilation", "1",
                   "--out", str(out))
    assert mixed.exit_code == 1
    assert mixed.stderr.strip().startswith("panoptool: error:")
    assert "dilation=3" in mixed.stderr and "--overwrite" in mixed.stderr


def test_make_targets_root_from_environment(synth_root, tmp_path):
    result = invoke("make-targets", "--split", "val", "--out", str(tmp_path / "t"),
                    "--workers", "1", env={ENV_ROOT: str(synth_root)})
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "t" / "val").rglob("*_offset.npz"))) == 4


def test_missing_root_is_one_line_and_exit_1(tmp_path):
    missing = tmp_path / "nowhere"
    result = invoke("make-targets", "--root", str(missing), "--out", str(tmp_path / "t"))
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0] == f"panoptool: error: {missing}: dataset root not found"
    result = invoke("make-targets", "--out", str(tmp_path / "t"), env={ENV_ROOT: ""})
    assert result.exit_code == 1 and "--root" in result.stderr


def test_bad_options_are_usage_errors(tmp_path):
    assert invoke("synth", str(tmp_path / "d"), "--n", "0").exit_code == 2
    assert invoke("synth", str(tmp_path / "d"), "--height", "8").exit_code == 2
    assert invoke("make-targets", "--dilation", "0").exit_code == 2
    bad_split = invoke("synth", str(tmp_path / "d"), "--split", "a/b", "--n", "1")
    assert bad_split.exit_code == 1 and "plain folder name" in bad_split.stderr
