"""`panoptool ablate` (panoptool.jobs.ablate): the plan of the paper's tables, its library
calls, and the ablations end to end."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from click.testing import CliRunner

from panoptool.errors import ConfigError
from panoptool.jobs import ablate as A
from panoptool.jobs import stages
from panoptool.jobs.steps import Step
from panoptool.postprocess.config import PostprocessConfig
from panoptool_cli.main import cli


def _by_stage(steps: list[Step], *stages_: str) -> dict[str, Step]:
    return {s.name: s for s in steps if s.stage in stages_}


# --- the plan ----------------------------------------------------------------------------------

def test_ablation_trains_each_distinct_network_once_within_the_budget(tmp_path):
    config = A.AblateConfig(budget_minutes=90)
    steps, tables, minutes = A.ablate_steps("data", tmp_path / "abl", tmp_path / "rep", config)
    trains = [s for s in steps if s.stage == "train"]
    # I: 4 loss sets; II: d1, d3 new; V: resnet18 shared, resnet34 x2 new -> 9 networks
    assert len(trains) == 9 and minutes == pytest.approx(10.0)
    assert all(s.args[s.args.index("--max-minutes") + 1] == "10" for s in trains)
    assert len({s.name for s in steps}) == len(steps)
    assert list(tables) == ["I", "II", "III", "IV", "V"]
    assert [len(tables[t]) for t in tables] == [4, 6, 6, 8, 4]
    # Tables III and IV reuse one network and vary only postprocess settings
    nets = {r.source for t in ("III", "IV") for r in tables[t] if isinstance(r.source, A.TrainRun)}
    assert nets == {A.TrainRun(A.ALL_LOSS, 2, "resnet18", "separate")}
    pp = _by_stage(steps, "postprocess_maps", "postprocess_oracle")
    none = pp["postprocess-oracle-d2__nosplit-nomerge-a300"]
    assert none.stage == "postprocess_oracle" and none.kwargs["split"] == "val"
    assert none.kwargs["config"] == PostprocessConfig(split=False, merge=False)
    assert none.overwrite_on == ("resume", "redo")
    # every table compares its rows' reports, after all of them
    table_i = next(s for s in steps if s.name == "table-I")
    assert table_i.stage == "compare_table" and len(table_i.kwargs["runs"]) == 4
    assert table_i.outputs == (tmp_path / "rep" / "ablation_table_I.md",)
    order = [s.name for s in steps]
    assert all(order.index(d) < order.index(s.name) for s in steps for d in s.after)
    # postprocess-only tables come first
    assert order.index("table-III") < order.index("table-IV") < order.index("table-I")


def test_ablation_without_training_has_oracle_rows_only():
    tables = A.ablation_rows(A.AblateConfig(train=False))
    assert list(tables) == ["II", "III", "IV"]
    assert all(isinstance(r.source, int) for rs in tables.values() for r in rs)
    with pytest.raises(ConfigError, match="no rows"):
        A.ablation_rows(A.AblateConfig(train=False, tables=("I", "V")))
    with pytest.raises(ConfigError, match="--tables"):
        A.AblateConfig(tables=("VII",))
    with pytest.raises(ConfigError, match="did not see"):
        A.AblateConfig(split="train")


def test_every_step_is_a_valid_call_or_train_command(tmp_path):
    """Each library step's keyword arguments bind to its function (nothing is run); the
    derivation's pixel sizes are scaled to the images; train parses with its options."""
    from panoptool_cli.main import LazyGroup

    config = A.AblateConfig(tables=A.TABLES, area_scale=1 / 16, train_args=("--batch", "2"))
    steps, _, _ = A.ablate_steps(tmp_path / "data", tmp_path / "abl", tmp_path / "rep", config)
    seen = set()
    for step in steps:
        seen.add(step.stage)
        if step.args:
            ctx = LazyGroup().get_command(None, "train").make_context(
                "train", [*step.args[1:], *step.redo_args])
            assert ctx.params["max_minutes"] > 0 and ctx.params["batch"] == 2
            continue
        kwargs = dict(step.kwargs, **({"overwrite": True} if step.overwrite_on else {}))
        inspect.signature(step.call).bind(**kwargs)
        assert getattr(stages, step.stage) is step.call
        if step.stage.startswith("postprocess"):  # 1024x2048 pixel sizes at 1/16 of the area
            c = step.kwargs["config"]
            assert (c.eps, c.min_samples, c.cell) == (5.0, 6, 1.0)
            assert c.band_eps == (0.0 if c.derivation == "seeded"
                                  and step.stage == "postprocess_maps" else None)
        if step.stage == "compare_table":
            assert step.kwargs["settings"] in A.TABLE_SETTINGS.values()
    assert seen == {"make_targets", "train", "infer", "postprocess_maps", "postprocess_oracle",
                    "report", "compare_table"}


def test_ablate_tables_i_and_ii_show_the_contour_score(tmp_path):
    steps, tables, _ = A.ablate_steps("root", tmp_path / "abl", tmp_path / "rep",
                                      A.AblateConfig(budget_minutes=90))
    by_name = {s.name: s for s in steps}
    for t in ("I", "II", "III", "IV", "V"):
        columns = by_name[f"table-{t}"].kwargs["columns"]
        assert (columns is not None) == (t in ("I", "II"))
        if columns is not None:
            assert columns[-2:] == ("contour_ODS", "contour_OIS") and "PQ_th" in columns
    for t in ("I", "II"):
        for row in tables[t]:
            kwargs = by_name[f"report-{row.key}"].kwargs
            if isinstance(row.source, A.TrainRun):  # network rows score their maps
                assert kwargs["maps"] == tmp_path / "abl" / "maps" / row.source.name
            else:  # oracle rows have no maps
                assert "maps" not in kwargs


# --- the real stages ---------------------------------------------------------------------------

def _read_table(path: Path) -> list[dict]:
    lines = [ln for ln in path.read_text().splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in ln.strip("|").split("|")))) for ln in lines[2:]]


def test_ablate_oracle_tables_end_to_end_and_resume(make_synth, tmp_path, monkeypatch):
    root = make_synth(n=3, height=128, width=256, seed=3)
    runs, reports = tmp_path / "abl", tmp_path / "reports"
    args = ["ablate", "--root", str(root), "--runs-dir", str(runs), "--reports-dir",
            str(reports), "--no-train", "--tables", "II,IV", "--min-areas", "1,300",
            "--workers", "1"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    # stdout holds the tables only; the stages' own summaries went to the step logs
    assert "## Table II" in result.stdout and "Per class" not in result.stdout
    assert "Per class" in (runs / ".steps" / "report-oracle-d1__split-merge-a5.log").read_text()
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
    # a second run finds everything done and runs no step
    monkeypatch.setattr(Step, "run", lambda self, *a: pytest.fail(f"step run: {self.name}"))
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert "oracle d3" in again.output  # the tables are printed again
    dry = CliRunner().invoke(cli, [*args, "--dry-run"])
    assert dry.exit_code == 0 and "\nskip   make_targets(root=" in dry.output
    assert "\nrun" not in dry.output and "\nredo" not in dry.output


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


@pytest.mark.parametrize("fmt", ["cityscapes", "coco-panoptic"])
def test_ablate_trains_one_network_for_the_postprocess_only_table(tmp_path, fmt):
    """Also on a COCO-panoptic --root (COCO's layout): the same steps, found from the data."""
    from panoptool.synth.scenes import SynthConfig, make_dataset

    root = tmp_path / "data"
    make_dataset(root, SynthConfig(n=2, height=64, width=128, seed=0, split="train"),
                 show_progress=False, format=fmt)
    make_dataset(root, SynthConfig(n=2, height=64, width=128, seed=9, split="val"),
                 show_progress=False, format=fmt)
    assert (root / "annotations").is_dir() == (fmt == "coco-panoptic")
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
