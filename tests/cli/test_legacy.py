"""Markers of the earlier panoptool (panoptool_cli.legacy): the command lines that demo and
ablate recorded before their stages became library calls read as the same calls, so old
folders resume; any other command reads as something else.

``old_step_commands.json`` holds the command line of every non-train step, as that version
made them, of three plans: the demo at 64x128 and two ablations.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from panoptool.jobs import ablate as A
from panoptool.jobs import demo as D
from panoptool.jobs.steps import comparable
from panoptool_cli.legacy import settings_of_command

OLD = json.loads((Path(__file__).parent / "old_step_commands.json").read_text())

PLANS = {
    "demo-small": lambda: D.demo_steps("/D/demo", D.DemoConfig(
        minutes=0.05, n_train=4, n_val=2, height=64, width=128, workers=1, device="cpu")),
    "ablate-all": lambda: A.ablate_steps("/D/data", "/D/abl", "/D/rep", A.AblateConfig(
        tables=A.TABLES, area_scale=1 / 16, budget_minutes=81, train_args=("--batch", "2")))[0],
    "ablate-notrain": lambda: A.ablate_steps("/D/data", "/D/abl", "/D/rep", A.AblateConfig(
        train=False, tables=("II", "III", "IV", "VI"), area_scale=1 / 64, workers=1,
        fmt="csv"))[0],
}


@pytest.mark.parametrize("plan", sorted(PLANS))
def test_every_old_command_reads_as_the_steps_call(plan):
    # train's old command lines are not read: an old demo folder trains once again (its
    # settings became the cpu preset at the same time)
    steps = {s.name: s for s in PLANS[plan]() if not s.args and s.stage != "train"}
    assert set(steps) == set(OLD[plan])
    for name, args in OLD[plan].items():
        assert comparable(settings_of_command(args)) == comparable(steps[name].settings), name


def test_a_changed_or_foreign_command_reads_as_another_call():
    old = OLD["ablate-notrain"]
    same = comparable(settings_of_command(old["targets-d2-val"]))
    changed = [a if a != "2" else "3" for a in old["targets-d2-val"]]
    assert comparable(settings_of_command(changed)) != same
    pp = old["postprocess-oracle-d2__split-merge-a1"]
    assert settings_of_command([*pp, "--instance-format", "coco"]) is None
    assert settings_of_command([*old["report-oracle-d2__split-merge-a1"], "--boundary"]) is None
    assert settings_of_command(["report", "--bogus"]) is None  # does not parse
    assert settings_of_command(["no-such-stage"]) is None
    assert settings_of_command(["make-targets", "--dilation", "0"]) is None
