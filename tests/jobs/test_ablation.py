"""Ablation tables: differing settings as leading columns, metrics after them."""


import pytest
from click.testing import CliRunner

from panoptool.io import formats
from panoptool.evaluation.compare import compare_table, differing_settings, load_run, short_names
from panoptool.errors import ConfigError, InputError
from panoptool.io.files import write_json
from panoptool_cli import main

from official import make_results


def _report(folder, dilation, min_area, pq, backbone="resnet50"):
    targets = formats.stage_config("make-targets", {"dilation": dilation, "workers": 2})
    train = formats.stage_config("train", {"backbone": backbone, "loss": ["ce", "nms"]},
                                 targets)
    post = formats.stage_config("postprocess", {"min_area": min_area, "steps": ["split"]},
                                train)
    write_json(folder / "config.json",
               formats.stage_config("report", {"results_dir": str(folder)}, post))
    write_json(folder / "metrics.json", {"AP": pq / 2, "PQ": pq, "PQ_th": pq - 5,
                                         "mIoU": 70.0, "n_images": 3})
    return folder


def test_only_differing_settings_lead(tmp_path):
    a = _report(tmp_path / "a", 1, 300, 50.0)
    b = _report(tmp_path / "b", 2, 300, 52.5)
    c = _report(tmp_path / "c", 2, 0, 51.0)
    runs = [(name, *load_run(folder)) for name, folder in (("d1", a), ("d2", b), ("d2-", c))]
    table = compare_table(runs, ["AP", "PQ", "PQ_th", "SQ_th"])
    assert list(table.columns) == ["run", "dilation", "min_area", "AP", "PQ", "PQ_th", "SQ_th"]
    assert table["dilation"].tolist() == [1, 2, 2]
    assert table["PQ"].tolist() == [50.0, 52.5, 51.0]
    assert table["SQ_th"].isna().all()  # not in metrics.json


def test_chosen_settings_and_runs_without_a_setting(tmp_path):
    net = {"train.neck": "shared", "train.lr": 0.01, "make-targets.dilation": 2,
           "postprocess.min_area": 19, "postprocess.split": True}
    oracle = {"make-targets.dilation": 1, "postprocess.min_area": 19, "postprocess.split": True}
    runs = [("net", {"PQ": 50.0}, net), ("oracle", {"PQ": 90.0}, oracle)]
    # by default only what differs where both runs have it: not the training settings
    assert list(compare_table(runs, ["PQ"]).columns) == ["run", "dilation", "PQ"]
    table = compare_table(runs, ["PQ"], ["min_area", "train.neck"])
    assert list(table.columns) == ["run", "min_area", "neck", "PQ"]
    assert table["neck"].tolist() == ["shared", "-"]
    with pytest.raises(ConfigError, match="in none of the runs"):
        compare_table(runs, ["PQ"], ["nms_tau"])
    both = [("a", {}, {"train.split": "t", "postprocess.split": True}), ("b", {}, {})]
    with pytest.raises(ConfigError, match="ambiguous: give one of train.split, "
                                          "postprocess.split"):
        compare_table(both, ["PQ"], ["split"])


def test_helpers():
    cfgs = [{"a.x": 1, "a.workers": 1, "report.root": "p"}, {"a.x": 2, "a.workers": 4}]
    assert differing_settings(cfgs) == ["a.x"]
    assert short_names(["a.x", "b.x", "b.y"]) == {"a.x": "a.x", "b.x": "b.x", "b.y": "y"}
    with pytest.raises(ConfigError, match="unknown column"):
        compare_table([("r", {}, {})], ["XQ"])
    with pytest.raises(ConfigError, match="unique"):
        compare_table([("r", {}, {}), ("r", {}, {})], ["PQ"])


def test_cli_compare_writes_and_prints(tmp_path):
    a = _report(tmp_path / "a", 1, 300, 50.0, backbone="resnet18")
    b = _report(tmp_path / "b", 1, 300, 52.5)
    out = tmp_path / "table.md"
    r = CliRunner().invoke(main.cli, ["report", "--compare", f"r18={a}", "--compare",
                                      f"r50={b}", "--columns", "AP,PQ", "--out", str(out)])
    assert r.exit_code == 0, r.output
    text = out.read_text()
    assert text.splitlines()[0] == "| run | backbone | AP | PQ |"
    assert "| r18 | resnet18 | 25.00 | 50.00 |" in text
    assert "resnet18" in r.output
    r = CliRunner().invoke(main.cli, ["report", "--compare", f"x={a}", "--format", "csv",
                                      "--out", str(tmp_path / "t.csv")])
    assert r.exit_code == 0
    assert (tmp_path / "t.csv").read_text().startswith("run,mIoU,AP,PQ")


def test_compare_results_folder_needs_root_or_is_evaluated(make_synth, tmp_path):
    root = make_synth(n=3)
    res = make_results(root, "val", tmp_path / "res", "perfect")
    with pytest.raises(InputError, match="give --root"):
        load_run(res)
    metrics, _ = load_run(res, root=root, workers=1)
    assert metrics["PQ"] == pytest.approx(100.0)
    with pytest.raises(InputError, match="neither a report"):
        load_run(tmp_path)
