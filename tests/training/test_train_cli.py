"""``panoptool train``: options made from the dataclass fields, presets, errors."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from panoptool.training.config import DEVICES, FIELDS, PRESETS, TrainConfig
from panoptool_cli.main import cli
from panoptool_cli.train import SETTING_OPTIONS, SHARED_OPTIONS, command, config_from_args
from train_helpers import read_csv


def _options() -> dict[str, click.Option]:
    return {p.name: p for p in command.params if isinstance(p, click.Option)}


def test_each_option_default_is_its_dataclass_field():
    options = _options()
    by_name = {s.name: s for s in SETTING_OPTIONS}
    for name in (*by_name, *SHARED_OPTIONS):
        option = options[name]
        value = by_name[name].value(option.default) if name in by_name else option.default
        assert value == TrainConfig.default(name), name
    assert list(options["device"].type.choices) == list(DEVICES)


def test_every_setting_but_the_label_space_and_the_paths_has_an_option():
    named = {s.name for s in SETTING_OPTIONS} | set(SHARED_OPTIONS)
    assert set(FIELDS) - named == {"root", "targets", "out", "num_classes"}
    flags = {opt for p in command.params for opt in p.opts}
    assert {"--head-conv", "--nms-radius", "--momentum", "--save-minutes"} <= flags


def test_help_explains_every_preset():
    text = CliRunner().invoke(cli, ["train", "--help"], terminal_width=100).output
    flat = " ".join(text.split())
    for preset in PRESETS.values():
        assert " ".join(preset.about.split()) in flat
    assert "cpu: --batch 2 --crop 256x256 --scale 0.75,1.25 --lr 0.01" in flat
    assert "paper: --batch 4 --crop 512x1024" in flat


@pytest.fixture
def root(tmp_path):
    (tmp_path / "data" / "gtFine").mkdir(parents=True)
    return str(tmp_path / "data")


def _args(root, *more):
    return ["--root", root, "--targets", "t", "--out", "o", *more]


def test_options_not_given_leave_the_preset_and_the_defaults(root):
    assert config_from_args(_args(root)) == TrainConfig(root=root, targets="t", out="o")
    cpu = config_from_args(_args(root, "--preset", "cpu"))
    assert cpu == TrainConfig(root=root, targets="t", out="o", preset="cpu")
    assert cpu.optim.batch == 2 and cpu.augment.crop == (256, 256)


def test_explicit_options_override_the_preset(root):
    c = config_from_args(_args(root, "--preset", "cpu", "--batch", "4", "--crop", "512x1024",
                               "--workers", "0", "--no-flip", "--head-conv", "16"))
    assert (c.optim.batch, c.augment.crop, c.run.workers) == (4, (512, 1024), 0)  # = defaults
    assert c.augment.scale == (0.75, 1.25) and c.optim.lr == 0.01  # the preset's
    assert c.augment.flip is False and c.network.head_conv == 16
    assert c.preset == "cpu"


def test_cli_preset_reaches_config_json(tiny, tmp_path):
    root, targets = tiny
    args = ["train", "--root", str(root), "--targets", str(targets), "--out",
            str(tmp_path / "p"), "--iters", "1", "--preset", "cpu", "--workers", "0",
            "--threads", "1", "--device", "cpu", "--lr", "0.02"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    settings = json.loads((tmp_path / "p" / "config.json").read_text())["settings"]
    assert settings["preset"] == "cpu"
    assert (settings["batch"], settings["crop"], settings["scale"], settings["semantic_top_k"]) \
        == (2, [256, 256], [0.75, 1.25], 0.25)
    assert settings["lr"] == 0.02 and settings["workers"] == 0  # explicit options win


@pytest.mark.parametrize("args, message", [
    (["--batch", "0"], "--batch must be >= 1"),
    (["--semantic-top-k", "0"], "semantic_top_k must be in (0, 1]"),
    (["--nms-radius", "0"], "nms_radius must be >= 1"),
    (["--crop", "64"], "--crop must have two values"),
    (["--lambdas", "1,x,2"], "--lambdas must be three numbers"),
])
def test_bad_values_are_one_line_from_the_dataclasses(root, args, message):
    result = CliRunner().invoke(cli, ["train", *_args(root, *args)])
    assert result.exit_code == 1 and message in result.output


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
