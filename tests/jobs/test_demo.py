"""`panoptool demo` (panoptool.jobs.demo): its steps, its library calls, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from panoptool.jobs import demo as D
from panoptool.jobs import stages
from panoptool.jobs.steps import Step
from panoptool_cli.main import cli


def test_demo_steps_call_the_library_with_the_stages_settings(tmp_path):
    config = D.DemoConfig(n_train=7, height=128, width=256, workers=3, device="cpu")
    steps = {s.name: s for s in D.demo_steps(tmp_path / "demo", config)}
    assert list(steps) == ["synth-train", "synth-val", "targets-train", "targets-val", "train",
                           "infer", "postprocess", "report", "visualize"]
    synth = steps["synth-train"].kwargs["config"]
    assert (synth.n, synth.height, synth.width, synth.seed, synth.split) == \
        (7, 128, 256, 0, "train")
    assert steps["synth-val"].kwargs["config"].seed == 1000
    assert steps["targets-val"].kwargs["config"].dilation == 2
    assert steps["targets-val"].overwrite_on == ("redo",)
    infer = steps["infer"].kwargs["config"]
    assert infer.device == "cpu" and infer.split == "val" and infer.checkpoint.endswith("last.pt")
    post = steps["postprocess"].kwargs["config"]  # the 1024x2048 pixel sizes at 1/64 area
    assert (post.min_area, post.eps, post.min_samples, post.cell) == (5, 2.5, 2, 0.5)
    assert steps["visualize"].kwargs["config"].n == config.n_figures
    train = steps["train"]
    assert train.kwargs["config"].preset == "cpu" and train.resumes
    assert train.kwargs["config"].optim.max_minutes == config.minutes
    for step in steps.values():  # every step a library call, no command string
        assert not step.args and getattr(stages, step.stage) is step.call


def test_demo_runs_every_stage_and_resumes(tmp_path, monkeypatch):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--minutes", "0.05", "--n-train", "4", "--n-val", "2",
            "--size", "64x128", "--workers", "1", "--device", "cpu"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "reports" / "demo" / "metrics.json").read_text())
    assert {"mIoU", "AP", "PQ"} <= set(metrics) and metrics["n_images"] == 2
    assert "PQ" in result.stdout.splitlines()[0]  # the metrics table on stdout
    assert (out / "figures" / "training_curve.png").is_file()
    assert len(list((out / "figures").glob("*_*_*.png"))) == 2
    assert (out / "runs" / "demo" / "checkpoints" / "last.pt").is_file()
    markers = {p.stem: json.loads(p.read_text()) for p in (out / ".steps").glob("*.json")}
    assert markers["postprocess"]["settings"]["config"]["min_area"] == 1  # 300 px at 1/256
    train = markers["train"]["settings"]
    assert train["call"] == "train" and train["config"]["preset"] == "cpu"
    assert train["config"]["optim"]["max_minutes"] == 0.05
    # re-running skips every stage
    monkeypatch.setattr(Step, "run", lambda self, *a: pytest.fail(f"step run: {self.name}"))
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output


def test_the_demo_trains_with_the_cpu_preset(tmp_path):
    """The demo's train step, parsed by ``panoptool train``, trains with the cpu preset's
    values (defined once, in panoptool.training.config.PRESETS) and records the preset."""
    from panoptool.training.config import PRESETS
    from panoptool_cli.train import config_from_args

    (tmp_path / "data" / "gtFine").mkdir(parents=True)
    step = next(s for s in D.demo_steps(tmp_path, D.DemoConfig(device="cpu"))
                if s.name == "train")
    config = step.kwargs["config"]
    # the library call trains exactly as the subcommand would with the same options
    assert config == config_from_args(["--root", config.run.root, "--targets",
                                       config.run.targets, "--out", config.run.out,
                                       "--max-minutes", str(D.DemoConfig().minutes),
                                       "--device", "cpu", *D.DEMO_TRAIN_ARGS])
    assert config.preset == "cpu" and config.settings()["preset"] == "cpu"
    for key, value in PRESETS["cpu"].settings.items():
        assert config.get(key) == value, key
    assert config.optim.max_minutes == D.DemoConfig().minutes  # the demo's own options stay


def test_figure_scripts_train_with_the_cpu_preset():
    """The figure script and make reports' ablations train like the demo, by naming the
    preset rather than copying its values (a copy would drift from it)."""
    from panoptool.training.config import PRESETS
    from panoptool_cli.train import SETTING_OPTIONS

    flags = {s.flag for s in SETTING_OPTIONS if s.name in PRESETS["cpu"].settings}
    scripts = Path(__file__).resolve().parents[2] / "scripts"
    for name, line in (("train_figure.sh", '" train '), ("make_reports.sh", "TRAIN_ARGS=")):
        text = (scripts / name).read_text().replace("\\\n", " ")
        command = next(t for t in text.splitlines() if line in t and not t.startswith("#"))
        assert "--preset cpu" in command, name
        assert not [f for f in flags if f"{f} " in command], (name, command)


def test_demo_on_coco_panoptic_data(tmp_path):
    """--dataset coco-panoptic: synth writes COCO's layout, every later stage reads it
    through --root (the format is found, not told), the metrics come out."""
    steps = {s.name: s for s in D.demo_steps(tmp_path / "c", D.DemoConfig(
        dataset="coco-panoptic"))}
    assert steps["synth-val"].kwargs["format"] == "coco-panoptic"
    assert "format" not in {s.name: s for s in D.demo_steps(tmp_path / "d", D.DemoConfig())
                            }["synth-val"].kwargs  # a Cityscapes demo's steps as before
    out = tmp_path / "demo"
    args = ["demo", "--dataset", "coco-panoptic", "--out", str(out), "--minutes", "0.05",
            "--n-train", "4", "--n-val", "2", "--size", "64x128", "--workers", "1",
            "--device", "cpu"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    data = out / "data"
    assert (data / "annotations" / "panoptic_val.json").is_file()
    assert not (data / "gtFine").exists()
    metrics = json.loads((out / "reports" / "demo" / "metrics.json").read_text())
    assert {"mIoU", "PQ"} <= set(metrics) and metrics["n_images"] == 2
    targets = json.loads((out / "targets" / "config.json").read_text())["settings"]
    assert targets["labels"]["name"] == "data" and len(targets["labels"]["categories"]) == 20
    with pytest.raises(Exception, match="dataset"):
        D.DemoConfig(dataset="kitti")
