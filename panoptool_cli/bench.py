"""``panoptool bench``."""

from __future__ import annotations

from pathlib import Path

import click

from panoptool.bench.core import (STAGES, BenchConfig, available_stages, merge_report,
                             run_stage_isolated)
from panoptool.runtime.pool import console


@click.command()
@click.option("--stage", "stages", multiple=True, type=click.Choice(list(STAGES)),
              help="Stage to time (repeatable). Default: every stage.")
@click.option("--height", default=1024, show_default=True, help="Image height of the bench data.")
@click.option("--width", default=2048, show_default=True, help="Image width of the bench data.")
@click.option("--n", "n_images", default=8, show_default=True,
              help="Images per stage; make-targets times at least 32, so that the worker "
                   "pool's start-up is amortised (reports/bench.md's report figure used "
                   "--stage report --n 100).")
@click.option("--workers", default=0, show_default=True,
              help="Worker processes for stages that scale; 0 = all cores.")
@click.option("--out", default="reports/bench.md", show_default=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Markdown report; sections of stages not run are kept.")
@click.option("--quick", is_flag=True, help="Small sizes and counts (a smoke test).")
def command(stages, height, width, n_images, workers, out, quick):
    """Time each stage on synthetic data at full Cityscapes size (1024x2048).

    Prints a table per stage (ms per image, images per second, peak memory) and merges it
    into the Markdown report OUT.
    """
    config = BenchConfig(height=height, width=width, n_images=n_images, workers=workers,
                         quick=quick)
    chosen = list(stages) or available_stages()
    sections = {}
    for stage in chosen:
        with console.status(f"bench: {stage} ..."):
            section = run_stage_isolated(stage, config)
        console.print(section.to_markdown())
        sections[stage] = section
    merge_report(out, sections)
    console.print(f"written to {out}")
