"""Table VI of ``ablate``: the paper's derivation vs the seeded one (issue 14)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from panoptool.jobs import ablate as P
from panoptool_cli.main import cli


def test_table_vi_reuses_table_ii_networks_and_varies_only_the_derivation(tmp_path):
    config = P.AblateConfig(tables=("II", "VI"), budget_minutes=30)
    steps, tables, minutes = P.ablate_steps("data", tmp_path / "abl", tmp_path / "rep", config)
    assert list(tables) == ["II", "VI"]
    rows = tables["VI"]
    assert [r.label for r in rows] == [f"{k} d{d} {v}" for k in ("network", "oracle")
                                       for d in (1, 2, 3) for v in ("paper", "seeded")]
    # no network beyond Table II's three; the paper rows are Table II's own results
    assert sum(s.stage == "train" for s in steps) == 3 and minutes == 10
    keys_ii = {r.key for r in tables["II"]}
    assert {r.key for r in rows if r.refinement.derivation == "paper"} == keys_ii
    pp = {s.name: s for s in steps if s.stage.startswith("postprocess")}
    for r in rows:
        step = pp[f"postprocess-{r.key}"]
        config = step.kwargs["config"]
        assert config.derivation == r.refinement.derivation
        # on a network's maps the seeded growth has no band limit, as `postprocess --maps`
        network = isinstance(r.source, P.TrainRun)
        assert config.band_eps == (0.0 if network and config.derivation == "seeded" else None)
    table = next(s for s in steps if s.name == "table-VI")
    assert len(table.kwargs["runs"]) == 12
    assert table.kwargs["settings"] == "make-targets.dilation,postprocess.derivation"
    order = [s.name for s in steps]
    assert order.index("table-II") < order.index("table-VI")
    # Table VI only on request: the default tables are the paper's
    assert "VI" not in P.AblateConfig().tables


def _read_table(path: Path) -> list[dict]:
    lines = [ln for ln in path.read_text().splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in ln.strip("|").split("|")))) for ln in lines[2:]]


def test_table_vi_oracle_rows_end_to_end(make_synth, tmp_path):
    root = make_synth(n=3, height=128, width=256, seed=3)
    runs, reports = tmp_path / "abl", tmp_path / "reports"
    r = CliRunner().invoke(cli, ["ablate", "--root", str(root), "--runs-dir", str(runs),
                                 "--reports-dir", str(reports), "--no-train", "--tables", "VI",
                                 "--dilations", "2,3", "--min-area", "0", "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "## Table VI" in r.stdout
    table = _read_table(reports / "ablation_table_VI.md")
    assert [row["run"] for row in table] == ["oracle d2 paper", "oracle d2 seeded",
                                             "oracle d3 paper", "oracle d3 seeded"]
    assert list(table[0])[:3] == ["run", "dilation", "derivation"]
    assert [row["derivation"] for row in table] == ["paper", "seeded"] * 2
    # ground-truth maps: the seeded derivation keeps the band-swallowed instances
    for paper, seeded in (table[0:2], table[2:4]):
        assert float(seeded["PQ_th"]) > float(paper["PQ_th"])
        assert float(seeded["AP"]) >= float(paper["AP"])
