"""Multi-stage jobs: the resumable step runner, `panoptool ablate` and `panoptool demo`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from panoptool.jobs import pipeline as P
from panoptool.errors import ConfigError, InputError
from panoptool_cli.main import cli


# --- the step runner, with a fake stage ------------------------------------------------------

class FakeStages:
    """Records the commands it is given; ``touch <file>`` creates a file, ``fail`` raises."""

    def __init__(self):
        self.calls: list[list[str]] = []

    def __call__(self, args):
        args = list(args)
        self.calls.append(args)
        if args[0] == "fail":
            raise InputError("some/file.png", "cannot decode image")
        if args[0] == "touch":
            Path(args[1]).parent.mkdir(parents=True, exist_ok=True)
            Path(args[1]).write_text("x")


def _steps(tmp_path, b_args=("touch",)):
    a, b, c = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "c.txt"
    return [P.Step("a", ("touch", a), outputs=(a,), redo_args=("--overwrite",)),
            P.Step("b", (*b_args, b), outputs=(b,), after=("a",), resume_args=("--resume",),
                   redo_args=("--overwrite",)),
            P.Step("c", ("touch", c), outputs=(c,), after=("b",))]


def test_steps_run_once_then_are_skipped(tmp_path):
    fake = FakeStages()
    state = tmp_path / "state"
    statuses = P.run_steps(_steps(tmp_path), state, fake)
    assert [s.action for s in statuses] == ["run", "run", "run"]
    assert [c[0] for c in fake.calls] == ["touch"] * 3
    assert sorted(p.name for p in state.glob("*.json")) == ["a.json", "b.json", "c.json"]
    assert (state / "a.log").is_file()
    fake.calls.clear()
    statuses = P.run_steps(_steps(tmp_path), state, fake)
    assert [s.action for s in statuses] == ["skip"] * 3 and fake.calls == []
    # options that do not change the outputs (--workers, --device) do not redo a step
    steps = _steps(tmp_path)
    steps[0] = P.Step("a", (*steps[0].args, "--workers", "7"), outputs=steps[0].outputs)
    assert [s.action for s in P.plan(steps, state)] == ["skip"] * 3


def test_interrupted_step_resumes_and_changed_step_redoes_its_dependents(tmp_path):
    fake = FakeStages()
    state = tmp_path / "state"
    P.run_steps(_steps(tmp_path), state, fake)
    # b was interrupted: its output exists but its marker does not
    (state / "b.json").unlink()
    fake.calls.clear()
    statuses = P.run_steps(_steps(tmp_path), state, fake)
    assert [s.action for s in statuses] == ["skip", "resume", "redo"]
    assert fake.calls[0][-1] == "--resume"        # b continued with its resume_args
    assert fake.calls[1] == ["touch", str(tmp_path / "c.txt")]  # c: no redo_args
    # a's settings change: a and everything after it is redone
    changed = _steps(tmp_path)
    changed[0] = P.Step("a", ("touch", tmp_path / "a.txt", "--extra"),
                        outputs=(tmp_path / "a.txt",), redo_args=("--overwrite",))
    fake.calls.clear()
    statuses = P.run_steps(changed, state, lambda args: fake(
        [a for a in args if a not in ("--extra", "--overwrite")]))
    assert [s.action for s in statuses] == ["redo", "redo", "redo"]
    # a deleted output is made again; redo=True redoes everything
    (tmp_path / "c.txt").unlink()
    assert [s.action for s in P.plan(changed, state)] == ["skip", "skip", "run"]
    assert [s.action for s in P.plan(changed, state, redo=True)] == ["redo", "redo", "run"]


def test_a_failing_step_stops_the_job_with_its_one_line_message(tmp_path):
    fake = FakeStages()
    state = tmp_path / "state"
    with pytest.raises(P.StepError) as info:
        P.run_steps(_steps(tmp_path, b_args=("fail",)), state, fake)
    assert str(info.value) == "b: some/file.png: cannot decode image"
    assert [c[0] for c in fake.calls] == ["touch", "fail"]  # c never ran
    assert not (state / "b.json").exists() and (state / "a.json").exists()


def test_plan_rejects_bad_step_lists(tmp_path):
    a = P.Step("a", ("touch", "x"))
    with pytest.raises(ConfigError, match="duplicate"):
        P.plan([a, a], tmp_path)
    with pytest.raises(ConfigError, match="do not come before"):
        P.plan([P.Step("b", ("touch", "y"), after=("a",)), a], tmp_path)
    with pytest.raises(ConfigError, match="must match"):
        P.Step("a b", ("touch",))


def test_invoke_runs_a_subcommand_and_maps_its_errors(tmp_path):
    from panoptool_cli.demo import invoke

    with pytest.raises(ConfigError, match="No such option .--bogus."):
        invoke(["visualize", "--bogus"])
    with pytest.raises(ConfigError, match="no such subcommand"):
        invoke(["no-such-stage"])
    with pytest.raises(InputError, match="file not found"):  # the stage's own error, unchanged
        invoke(["visualize", "--out", str(tmp_path), "--curve", str(tmp_path / "none.csv")])


# --- ablation plan -----------------------------------------------------------------------------

def test_ablation_trains_each_distinct_network_once_within_the_budget(tmp_path):
    config = P.AblateConfig(budget_minutes=90)
    steps, tables, minutes = P.ablate_steps("data", tmp_path / "abl", tmp_path / "rep", config)
    trains = [s for s in steps if s.args[0] == "train"]
    # I: 4 loss sets; II: d1, d3 new; V: resnet18 shared, resnet34 x2 new -> 9 networks
    assert len(trains) == 9 and minutes == pytest.approx(10.0)
    assert all(s.args[s.args.index("--max-minutes") + 1] == "10" for s in trains)
    assert len({s.name for s in steps}) == len(steps)
    assert list(tables) == ["I", "II", "III", "IV", "V"]
    assert [len(tables[t]) for t in tables] == [4, 6, 6, 8, 4]
    # Tables III and IV reuse one network and vary only postprocess options
    nets = {r.source for t in ("III", "IV") for r in tables[t] if isinstance(r.source, P.TrainRun)}
    assert nets == {P.TrainRun(P.ALL_LOSS, 2, "resnet18", "separate")}
    pp = {s.name: s for s in steps if s.args[0] == "postprocess"}
    none = pp["postprocess-oracle-d2__nosplit-nomerge-a300"].args
    assert "--oracle" in none and "--no-split" in none and "--no-merge" in none
    # every table is a `report --compare` over its rows' reports, after all of them
    table_i = next(s for s in steps if s.name == "table-I")
    assert table_i.args[0] == "report" and table_i.args.count("--compare") == 4
    assert table_i.outputs == (tmp_path / "rep" / "ablation_table_I.md",)
    order = [s.name for s in steps]
    assert all(order.index(d) < order.index(s.name) for s in steps for d in s.after)
    # postprocess-only tables come first
    assert order.index("table-III") < order.index("table-IV") < order.index("table-I")


def test_ablation_without_training_has_oracle_rows_only():
    tables = P.ablation_rows(P.AblateConfig(train=False))
    assert list(tables) == ["II", "III", "IV"]
    assert all(isinstance(r.source, int) for rs in tables.values() for r in rs)
    with pytest.raises(ConfigError, match="no rows"):
        P.ablation_rows(P.AblateConfig(train=False, tables=("I", "V")))
    with pytest.raises(ConfigError, match="--tables"):
        P.AblateConfig(tables=("VII",))
    with pytest.raises(ConfigError, match="did not see"):
        P.AblateConfig(split="train")


# --- the real stages ---------------------------------------------------------------------------

def _read_table(path: Path) -> list[dict]:
    lines = [l for l in path.read_text().splitlines() if l.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in l.strip("|").split("|")))) for l in lines[2:]]


def test_ablate_oracle_tables_end_to_end_and_resume(make_synth, tmp_path, monkeypatch):
    root = make_synth(n=3, height=128, width=256, seed=3)
    runs, reports = tmp_path / "abl", tmp_path / "reports"
    args = ["ablate", "--root", str(root), "--runs-dir", str(runs), "--reports-dir",
            str(reports), "--no-train", "--tables", "II,IV", "--min-areas", "1,300",
            "--workers", "1"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    # stdout holds the tables only; the stages' own printouts went to the step logs
    assert "## Table II" in result.stdout and "per class" not in result.stdout
    assert "per class" in (runs / ".steps" / "report-oracle-d1__split-merge-a5.log").read_text()
    table_ii = _read_table(reports / "ablation_table_II.md")
    assert [r["run"] for r in table_ii] == ["oracle d1", "oracle d2", "oracle d3"]
    assert [r["dilation"] for r in table_ii] == ["1", "2", "3"]
    assert all(float(r["PQ"]) > 50 for r in table_ii)  # ground-truth maps: near the top
    table_iv = _read_table(reports / "ablation_table_IV.md")
    # the paper's min-areas (1024x2048 pixels) scaled to 128x256: 1 -> 1, 300 -> 5
    assert [r["run"] for r in table_iv] == ["oracle min-area 1", "oracle min-area 300"]
    assert [r["min_area"] for r in table_iv] == ["1", "5"]
    assert list(table_iv[0])[:2] == ["run", "min_area"]  # the varied setting, no other
    assert "PQ_th" in table_iv[0] and "AP" in table_iv[0]
    # a second run finds everything done and calls no stage
    import panoptool_cli.demo as demo_cli

    def no_stage(args):
        raise AssertionError(f"stage called: {args}")

    monkeypatch.setattr(demo_cli, "invoke", no_stage)
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert "oracle d3" in again.output  # the tables are printed again


def test_ablate_checks_splits_first_and_stage_errors_are_one_line(make_synth, tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(make_synth(n=3, height=128, width=256, seed=3), root)
    base = ["ablate", "--root", str(root), "--runs-dir", str(tmp_path / "abl"),
            "--reports-dir", str(tmp_path / "rep"), "--tables", "IV", "--workers", "1"]
    # the training split is checked before anything runs
    result = CliRunner().invoke(cli, base)
    assert result.exit_code == 1
    assert result.output.splitlines()[-1].startswith("panoptool: error: ")
    assert "split 'train' not found" in result.output and "[1/" not in result.output
    # a stage's error names the step and the file, in one line
    bad = next((root / "gtFine" / "val").rglob("*_gtFine_labelIds.png"))
    bad.write_bytes(b"not a png")
    result = CliRunner().invoke(cli, [*base, "--no-train"])
    assert result.exit_code == 1
    last = result.output.splitlines()[-1]
    assert last.startswith("panoptool: error: targets-d2-val: ") and bad.name in last
    assert not (tmp_path / "rep").exists()


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
    # re-running skips every stage
    import panoptool_cli.demo as demo_cli

    monkeypatch.setattr(demo_cli, "invoke", lambda a: pytest.fail(f"stage called: {a}"))
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output


def test_every_step_speaks_the_stages_command_line(tmp_path):
    """Each generated command parses with the real stage's options (nothing is run)."""
    from panoptool_cli.main import LazyGroup

    demo = P.demo_steps(tmp_path / "demo", P.DemoConfig())
    ablate, _, _ = P.ablate_steps(tmp_path / "data", tmp_path / "abl", tmp_path / "rep",
                                  P.AblateConfig(area_scale=1 / 16,
                                                 train_args=("--batch", "2")))
    group = LazyGroup()
    seen = set()
    for step in [*demo, *ablate]:
        for extra in ((), step.resume_args, step.redo_args):
            cmd = group.get_command(None, step.args[0])
            assert cmd is not None, step.args[0]
            ctx = cmd.make_context(step.args[0], [*step.args[1:], *extra])
            seen.add(step.args[0])
            if step.args[0] == "train":
                assert ctx.params["max_minutes"] > 0
            if step.args[0] == "postprocess" and "--oracle" in step.args:
                assert ctx.params["dataset_split"] == "val" and ctx.params["oracle"]
            if step.args[0] == "postprocess":  # 1024x2048 pixel sizes scaled to 1/16 area
                assert (ctx.params["eps"], ctx.params["min_samples"], ctx.params["cell"]) \
                    == (5.0, 6, 1.0)
            if step.args[0] == "report" and "--compare" in step.args:
                assert ctx.params["settings"] in P.TABLE_SETTINGS.values()
    assert seen == {"synth", "make-targets", "train", "infer", "postprocess", "report",
                    "visualize"}


def test_ablate_trains_one_network_for_the_postprocess_only_table(tmp_path):
    from panoptool.synth.scenes import SynthConfig, make_dataset

    root = tmp_path / "data"
    make_dataset(root, SynthConfig(n=2, height=64, width=128, seed=0, split="train"),
                 show_progress=False)
    make_dataset(root, SynthConfig(n=2, height=64, width=128, seed=9, split="val"),
                 show_progress=False)
    result = CliRunner().invoke(cli, [
        "ablate", "--root", str(root), "--runs-dir", str(tmp_path / "abl"), "--reports-dir",
        str(tmp_path / "rep"), "--tables", "III", "--no-oracle", "--budget-minutes", "0.02",
        "--train-args", "--batch 1 --iters 2", "--workers", "1", "--device", "cpu",
        "--format", "csv"])
    assert result.exit_code == 0, result.output
    runs = list((tmp_path / "abl" / "runs").iterdir())
    assert [r.name for r in runs] == ["resnet18-separate-d2-wbce_huber_nms"]
    assert (runs[0] / "checkpoints" / "last.pt").is_file()
    import pandas as pd

    table = pd.read_csv(tmp_path / "rep" / "ablation_table_III.csv")
    assert table["run"].tolist() == ["network none", "network split", "network split+merge"]
    assert {"AP", "PQ", "PQ_th", "SQ_th", "RQ_th", "mIoU"} <= set(table.columns)
    assert table["mIoU"].nunique() == 1  # one network: refinement leaves semantics alone


def test_the_demo_trains_with_the_cpu_preset(tmp_path):
    """The demo's train step, parsed by ``panoptool train``, trains with the cpu preset's
    values (defined once, in panoptool.training.config.PRESETS) and records the preset."""
    from panoptool.jobs.pipeline import DemoConfig, demo_steps
    from panoptool.training.config import PRESETS
    from panoptool_cli.train import config_from_args

    (tmp_path / "data" / "gtFine").mkdir(parents=True)
    step = next(s for s in demo_steps(tmp_path, DemoConfig(device="cpu")) if s.name == "train")
    config = config_from_args(step.args[1:])
    assert config.preset == "cpu" and config.settings()["preset"] == "cpu"
    for key, value in PRESETS["cpu"].settings.items():
        assert config.get(key) == value, key
    assert config.optim.max_minutes == DemoConfig().minutes  # the demo's own options stay


def test_figure_scripts_train_with_the_cpu_preset():
    """The figure script and make reports' ablations train like the demo, by naming the
    preset rather than copying its values (a copy would drift from it)."""
    from pathlib import Path

    from panoptool.training.config import PRESETS
    from panoptool_cli.train import SETTING_OPTIONS

    flags = {s.flag for s in SETTING_OPTIONS if s.name in PRESETS["cpu"].settings}
    scripts = Path(__file__).resolve().parents[2] / "scripts"
    for name, line in (("train_figure.sh", '" train '), ("make_reports.sh", "TRAIN_ARGS=")):
        text = (scripts / name).read_text().replace("\\\n", " ")
        command = next(t for t in text.splitlines() if line in t and not t.startswith("#"))
        assert "--preset cpu" in command, name
        assert not [f for f in flags if f"{f} " in command], (name, command)
