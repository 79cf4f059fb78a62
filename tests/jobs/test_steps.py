"""The resumable step runner of the jobs (panoptool.jobs.steps): commands and library calls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from panoptool.errors import ConfigError, InputError
from panoptool.jobs import steps as P
from panoptool.targets.core import TargetConfig


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


# --- library calls --------------------------------------------------------------------------

class FakeCalls:
    """A library function for call steps: records its keyword arguments, writes ``out``."""

    def __init__(self):
        self.calls: list[dict] = []

    def __call__(self, out, config, workers=0, overwrite=False):
        self.calls.append(dict(out=out, config=config, workers=workers, overwrite=overwrite))
        Path(out).write_text(str(config))
        return f"wrote {out}"


def _call_steps(tmp_path, fake, dilation=2, workers=1):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    return [P.Step("a", call=fake, kwargs=dict(out=a, config=TargetConfig(dilation=dilation),
                                               workers=workers),
                   outputs=(a,), overwrite_on=("redo",)),
            P.Step("b", call=fake, kwargs=dict(out=b, config=TargetConfig(dilation=1)),
                   outputs=(b,), after=("a",), overwrite_on=("resume", "redo"))]


def test_call_steps_record_their_settings_and_redo_when_a_field_changes(tmp_path):
    fake = FakeCalls()
    state = tmp_path / "state"
    statuses = P.run_steps(_call_steps(tmp_path, fake), state, invoke=None)
    assert [s.action for s in statuses] == ["run", "run"]
    assert [c["overwrite"] for c in fake.calls] == [False, False]
    marker = json.loads((state / "a.json").read_text())
    assert marker["settings"] == {"call": "FakeCalls", "out": str(tmp_path / "a.txt"),
                                  "config": {"dilation": 2}, "workers": 1}
    assert "args" not in marker and marker["seconds"] >= 0
    assert (state / "a.log").read_text() == f"wrote {tmp_path / 'a.txt'}\n"
    # the same settings: done; another worker count: still done (it does not change outputs)
    assert [s.action for s in P.plan(_call_steps(tmp_path, fake, workers=7), state)] == \
        ["skip", "skip"]
    # a dataclass field changes: that step is redone with overwrite, and its dependent too
    fake.calls.clear()
    statuses = P.run_steps(_call_steps(tmp_path, fake, dilation=3), state, invoke=None)
    assert [(s.action, s.reason) for s in statuses] == [
        ("redo", "its settings changed"), ("redo", "its input changed (a)")]
    assert [c["overwrite"] for c in fake.calls] == [True, True]
    assert fake.calls[0]["config"] == TargetConfig(dilation=3)


def test_an_interrupted_call_step_resumes_with_or_without_overwrite(tmp_path):
    fake = FakeCalls()
    state = tmp_path / "state"
    P.run_steps(_call_steps(tmp_path, fake), state, invoke=None)
    for name in ("a", "b"):
        (state / f"{name}.json").unlink()
    fake.calls.clear()
    statuses = P.run_steps(_call_steps(tmp_path, fake), state, invoke=None)
    assert [s.action for s in statuses] == ["resume", "resume"]
    # a resumes where it stopped (no overwrite); b's overwrite_on has "resume"
    assert [c["overwrite"] for c in fake.calls] == [False, True]


def test_call_step_errors_and_descriptions(tmp_path):
    def failing(out):
        raise InputError(out, "cannot decode image")

    step = P.Step("x", call=failing, kwargs=dict(out=tmp_path / "x.png"))
    with pytest.raises(P.StepError, match=r"^x: .*x.png: cannot decode image$"):
        P.run_steps([step], tmp_path / "state", invoke=None)
    assert step.stage == "failing" and step.settings == {"call": "failing",
                                                         "out": str(tmp_path / "x.png")}
    line = P.Step("t", call=FakeCalls(), kwargs=dict(out=Path("o"), config=TargetConfig())
                  ).command_line
    assert line == "FakeCalls(out='o', config=TargetConfig(dilation=2))"
    with pytest.raises(ConfigError, match="not both"):
        P.Step("y", ("touch",), call=failing)
    with pytest.raises(ConfigError, match="not both"):
        P.Step("y")
    with pytest.raises(ConfigError, match="overwrite_on"):
        P.Step("y", call=failing, overwrite_on=("run",))


def test_markers_of_an_earlier_version_are_read_through_legacy(tmp_path):
    """A call step whose marker holds a command line (written before the stages became
    library calls) is skipped when ``legacy`` reads that command as the same call."""
    fake = FakeCalls()
    state = tmp_path / "state"
    steps = _call_steps(tmp_path, fake)
    P.run_steps(steps, state, invoke=None)
    for step in steps:  # rewrite the markers as the earlier version did
        marker = json.loads((state / f"{step.name}.json").read_text())
        (state / f"{step.name}.json").write_text(json.dumps(
            {"args": ["old", step.name], "finished": marker["finished"]}))
    known = {("old", s.name): s.settings for s in steps}
    assert [s.action for s in P.plan(steps, state)] == ["redo", "redo"]  # no way to read them
    assert [s.action for s in P.plan(steps, state, legacy=lambda a: known.get(tuple(a)))] == \
        ["skip", "skip"]
    assert [s.action for s in P.plan(_call_steps(tmp_path, fake, dilation=3), state,
                                     legacy=lambda a: known.get(tuple(a)))] == ["redo", "redo"]
