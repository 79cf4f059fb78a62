"""``panoptool bench`` sections of the foundation stages (quick sizes)."""

from __future__ import annotations

import pytest

from panoptool.bench.core import BenchConfig, merge_report, run_stage_here


@pytest.mark.parametrize("stage, steps", [
    ("synth", {"make_scene (paint, in memory)", "make_dataset (paint + write 3 PNGs)"}),
    ("make-targets", {"compute_targets (in memory)", "make_targets (read + compute + write)"}),
])
def test_stage_bench_has_rows(stage, steps, tmp_path):
    section = run_stage_here(stage, BenchConfig(quick=True, workers=2, workdir=str(tmp_path)))
    assert section.title == stage
    assert {row["step"] for row in section.rows} == steps
    for row in section.rows:
        assert row["ms/image"] > 0 and row["images/s"] > 0 and row["peak MiB"] > 0
        assert row["size"] == "64x128"
    assert {row["workers"] for row in section.rows} == {1, 2}
    text = merge_report(tmp_path / "bench.md", {stage: section})
    assert f"<!-- stage:{stage} -->" in text and "ms/image" in text


def test_datasets_bench_times_both_formats_and_the_real_sample(tmp_path):
    section = run_stage_here("datasets", BenchConfig(quick=True, workers=1,
                                                     workdir=str(tmp_path)))
    formats = {(row["format"], row["stage"]) for row in section.rows}
    stages = {"make-targets", "postprocess --oracle", "report (warm GT cache)"}
    assert formats == {(f, s) for f in ("cityscapes", "coco-panoptic") for s in stages}
    assert sum(row["data"].startswith("real COCO sample") for row in section.rows) == 3
    assert all(float(row["ms / megapixel"]) > 0 for row in section.rows)
    assert "identical PQ" in section.notes[0]
