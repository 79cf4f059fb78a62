"""``panoptool ablate``: the paper's ablations (Tables I-V) on a Cityscapes-format dataset."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from panoptool_cli.options import (device_option, overwrite_option, root_option, split_option,
                                   workers_option)


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
@click.option("--train-split", default="train", show_default=True,
              help="Split the networks are trained on.")
@click.option("--runs-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Working folder: targets, networks, maps, results and per-row reports.")
@click.option("--reports-dir", type=click.Path(file_okay=False, path_type=Path),
              default="reports", show_default=True,
              help="Where the tables go (ablation_table_<I..V>.<format>).")
@click.option("--budget-minutes", type=click.FloatRange(min=0, min_open=True), default=60.0,
              show_default=True, help="Total training time, split evenly over the distinct "
                                      "networks the tables need.")
@click.option("--format", "fmt", type=click.Choice(["md", "csv"]), default="md",
              show_default=True, help="Table file format.")
@click.option("--tables", default="I,II,III,IV,V", show_default=True, callback=_csv(str),
              help="Which tables: I loss terms, II dilation, III refinement, IV min-area, "
                   "V neck and depth; VI (beyond the paper, on request) the paper's vs the "
                   "seeded derivation (postprocess --derivation) on Table II's networks and "
                   "the oracle at each of --dilations.")
@click.option("--oracle/--no-oracle", default=True, show_default=True,
              help="Add oracle rows (ground-truth maps) to Tables II-IV and VI.")
@click.option("--train/--no-train", "train", default=True, show_default=True,
              help="Train networks for the network rows; --no-train gives the oracle rows of "
                   "Tables II-IV only.")
@click.option("--backbone", default="resnet18", show_default=True,
              help="Encoder of every network except Table V's.")
@click.option("--neck", type=click.Choice(["shared", "separate"]), default="separate",
              show_default=True, help="Neck of every network except Table V's.")
@click.option("--dilation", type=click.IntRange(min=1), default=2, show_default=True,
              help="Contour dilation rate of every row except Table II's.")
@click.option("--min-area", type=click.IntRange(min=0), default=300, show_default=True,
              help="Min-area of every row except Table IV's, in pixels of a 1024x2048 image "
                   "(see --scale-areas).")
@click.option("--backbones", default="resnet18,resnet34", show_default=True,
              callback=_csv(str), help="Table V: encoders to compare.")
@click.option("--min-areas", default="1,100,300,500", show_default=True, callback=_csv(int),
              help="Table IV: min-area values, in pixels of a 1024x2048 image.")
@click.option("--scale-areas/--no-scale-areas", default=True, show_default=True,
              help="Scale postprocess's pixel sizes to the dataset's image size: the "
                   "paper's values are for 1024x2048 Cityscapes images, so at 256x512 the "
                   "min-area 300 becomes 19, eps 20 becomes 5, min-samples 100 becomes 6 "
                   "and cell 4 becomes 1.")
@click.option("--dilations", default="1,2,3", show_default=True, callback=_csv(int),
              help="Table II: dilation rates.")
@click.option("--train-args", default="", show_default=True,
              help="Extra options for every `panoptool train`, e.g. \"--batch 2 --crop "
                   "256x512\".")
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
    from panoptool.io.cityscapes import list_samples, resolve_root
    from panoptool.io.files import read_png
    from panoptool.jobs.pipeline import (CITYSCAPES_PIXELS, AblateConfig, TABLE_TITLES,
                                    ablate_steps, ablation_table_path, plan, run_steps)
    from panoptool.runtime.pool import console
    from panoptool_cli.demo import invoke

    root = resolve_root(root)
    samples = list_samples(root, split)  # fail now, not after hours of training
    area_scale = 1.0
    if scale_areas:
        height, width = read_png(samples[0].label_ids_path).shape[:2]
        area_scale = height * width / CITYSCAPES_PIXELS
    config = AblateConfig(split=split, train_split=train_split, budget_minutes=budget_minutes,
                          area_scale=area_scale, tables=tables, oracle=oracle, train=train, fmt=fmt,
                          backbone=backbone, neck=neck, dilation=dilation, min_area=min_area,
                          backbones=backbones, min_areas=min_areas, dilations=dilations,
                          device=device, workers=workers, train_args=shlex.split(train_args))
    steps, table_rows, minutes = ablate_steps(root, runs_dir, reports_dir, config)
    if any(s.args[0] == "train" for s in steps):
        list_samples(root, train_split)
    n_nets = sum(1 for s in steps if s.name.startswith("train-"))
    console.print(f"ablate: {len(table_rows)} table(s), {n_nets} network(s) to train"
                  + (f" for {minutes:.3g} min each" if n_nets else "")
                  + f", {len(steps)} steps", highlight=False)
    state = runs_dir / ".steps"
    if dry_run:
        for status in plan(steps, state, redo=overwrite):
            click.echo(f"{status.action:6s} {status.step.command_line}")
        return
    run_steps(steps, state, invoke, redo=overwrite)
    for t in table_rows:
        path = ablation_table_path(reports_dir, t, fmt)
        click.echo(f"\n## {TABLE_TITLES[t]} ({path})\n")
        click.echo(path.read_text(encoding="utf-8").rstrip())
