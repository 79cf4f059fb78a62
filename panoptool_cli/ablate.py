"""``panoptool ablate``: the paper's ablations (Tables I-V) on a Cityscapes-format dataset."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import click

from panoptool.jobs.ablate import AblateConfig
from panoptool_cli.options import (device_option, field_option, overwrite_option, root_option,
                                   split_option, workers_option)

# see panoptool_cli/infer.py: sleeping OpenMP threads on a shared CPU; before torch's import
# (the train and infer steps import it)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _csv(kind):
    def convert(ctx, param, value):
        if value is None:
            return None
        try:
            return tuple(kind(v.strip()) for v in value.split(",") if v.strip())
        except ValueError:
            raise click.BadParameter(f"expected a comma list, got {value!r}") from None
    return convert


@click.command("ablate")
@root_option
@split_option
@field_option(AblateConfig, "train_split")
@click.option("--runs-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Working folder: targets, networks, maps, results and per-row reports.")
@click.option("--reports-dir", type=click.Path(file_okay=False, path_type=Path),
              default="reports", show_default=True,
              help="Where the tables go (ablation_table_<I..V>.<format>).")
@field_option(AblateConfig, "budget_minutes", type=click.FloatRange(min=0, min_open=True))
@field_option(AblateConfig, "fmt", "--format", "fmt", type=click.Choice(["md", "csv"]))
@field_option(AblateConfig, "tables", callback=_csv(str))
@field_option(AblateConfig, "oracle")
@field_option(AblateConfig, "train")
@field_option(AblateConfig, "backbone")
@field_option(AblateConfig, "neck", type=click.Choice(["shared", "separate"]))
@field_option(AblateConfig, "dilation", type=click.IntRange(min=1))
@field_option(AblateConfig, "min_area", type=click.IntRange(min=0))
@field_option(AblateConfig, "backbones", callback=_csv(str))
@field_option(AblateConfig, "min_areas", callback=_csv(int))
@click.option("--scale-areas/--no-scale-areas", default=True, show_default=True,
              help="Scale postprocess's pixel sizes to the dataset's image size: the "
                   "paper's values are for 1024x2048 Cityscapes images, so at 256x512 the "
                   "min-area 300 becomes 19, eps 20 becomes 5, min-samples 100 becomes 6 "
                   "and cell 4 becomes 1.")
@field_option(AblateConfig, "dilations", callback=_csv(int))
@field_option(AblateConfig, "train_args")
@device_option
@workers_option
@overwrite_option
@click.option("--dry-run", is_flag=True, help="Print the steps and what would run; run none.")
def command(root, split, train_split, runs_dir, reports_dir, budget_minutes, fmt, tables,
            oracle, train, backbone, neck, dilation, min_area, backbones, min_areas,
            scale_areas, dilations, train_args, device, workers, overwrite, dry_run):
    """Run the paper's ablations and write each as a table: Table I contour loss terms
    (wBCE / +Huber / +NMS / all), II dilation rate, III refinement (none / split /
    split+merge), IV min-area, V shared vs separate neck and ResNet depth. Training tables
    train one network per row within the budget; postprocess-only tables (III, IV) reuse one
    network. Tables II-IV also get oracle rows (the method on ground-truth maps).
    Resumable: run again to continue; finished steps are skipped.
    """
    from panoptool.io.datasets import open_dataset
    from panoptool.jobs.ablate import TABLE_TITLES, ablate_steps, ablation_table_path
    from panoptool.jobs.steps import plan, run_steps
    from panoptool.postprocess.config import CITYSCAPES_PIXELS
    from panoptool.runtime.pool import console
    from panoptool_cli.demo import invoke
    from panoptool_cli.legacy import settings_of_command

    dataset = open_dataset(root)
    root = dataset.root
    samples = dataset.samples(split)  # fail now, not after hours of training
    area_scale = 1.0
    if scale_areas:
        height, width = samples[0].read_ground_truth()[0].shape[:2]
        area_scale = height * width / CITYSCAPES_PIXELS
    config = AblateConfig(split=split, train_split=train_split, budget_minutes=budget_minutes,
                          area_scale=area_scale, tables=tables, oracle=oracle, train=train, fmt=fmt,
                          backbone=backbone, neck=neck, dilation=dilation, min_area=min_area,
                          backbones=backbones, min_areas=min_areas, dilations=dilations,
                          device=device, workers=workers, train_args=shlex.split(train_args))
    steps, table_rows, minutes = ablate_steps(root, runs_dir, reports_dir, config)
    if any(s.stage == "train" for s in steps):
        dataset.samples(train_split, need_images=True)
    n_nets = sum(1 for s in steps if s.name.startswith("train-"))
    console.print(f"ablate: {len(table_rows)} table(s), {n_nets} network(s) to train"
                  + (f" for {minutes:.3g} min each" if n_nets else "")
                  + f", {len(steps)} steps", highlight=False)
    state = runs_dir / ".steps"
    if dry_run:
        for status in plan(steps, state, redo=overwrite, legacy=settings_of_command):
            click.echo(f"{status.action:6s} {status.step.command_line}")
        return
    run_steps(steps, state, invoke, redo=overwrite, legacy=settings_of_command)
    for t in table_rows:
        path = ablation_table_path(reports_dir, t, fmt)
        click.echo(f"\n## {TABLE_TITLES[t]} ({path})\n")
        click.echo(path.read_text(encoding="utf-8").rstrip())
