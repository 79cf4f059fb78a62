"""The CLI frame: lazy subcommands, help, and library errors as one line + exit 1."""

import click
from click.testing import CliRunner

from panoptool.errors import InputError
from panoptool_cli import main


def test_help_lists_existing_subcommands():
    result = CliRunner().invoke(main.cli, ["--help"])
    assert result.exit_code == 0
    assert "bench" in result.output
    for name in main.LazyGroup().list_commands(None):
        sub = CliRunner().invoke(main.cli, [name, "--help"])
        assert sub.exit_code == 0, (name, sub.output)
        assert "--help" in sub.output


def test_panoptool_error_becomes_one_line_and_exit_1(monkeypatch):
    @click.command()
    def failing():
        raise InputError("some/file.png", "cannot decode image")

    monkeypatch.setitem(main.SUBCOMMANDS, "failing", ("bench", "test"))
    monkeypatch.setattr(main.LazyGroup, "get_command",
                        lambda self, ctx, name: failing if name == "failing" else None)
    result = CliRunner().invoke(main.cli, ["failing"])
    assert result.exit_code == 1
    assert result.output.strip() == "panoptool: error: some/file.png: cannot decode image"


def test_unknown_subcommand_is_usage_error():
    result = CliRunner().invoke(main.cli, ["no-such-stage"])
    assert result.exit_code == 2
