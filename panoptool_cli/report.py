"""``panoptool report``: evaluate a results folder, or compare evaluated runs."""

from __future__ import annotations

import math
from pathlib import Path

import click
import pandas as pd
from rich.console import Console
from rich.table import Table

from panoptool_cli.options import root_option, split_option, workers_option

#: Tables go to stdout; progress and messages (panoptool.runner.console) to stderr.
stdout = Console()


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _rich_table(df, title: str) -> Table:
    table = Table(title=title)
    for col in df.columns:
        numeric = pd.api.types.is_numeric_dtype(df[col])
        table.add_column(str(col), justify="right" if numeric else "left")
    for row in df.itertuples(index=False, name=None):
        table.add_row(*[_fmt(v) for v in row])
    return table


def _formats(text: str | None, default: str, allowed: tuple[str, ...]) -> list[str]:
    chosen = [f.strip() for f in (text or default).split(",") if f.strip()]
    bad = [f for f in chosen if f not in allowed]
    if bad or not chosen:
        raise click.BadParameter(f"{text!r}: choose from {', '.join(allowed)}",
                                 param_hint="--format")
    return chosen


@click.command()
@root_option
@split_option
@click.option("--results", "results_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Results folder to evaluate: semantic/, instance/ and/or panoptic.json "
                   "(official Cityscapes formats); every part present is evaluated.")
@click.option("--out", type=click.Path(path_type=Path),
              help="Report: output folder (default reports/<results folder name>). "
                   "Compare: output file (default reports/compare.<format>).")
@click.option("--format", "format_", default=None,
              help="Report: comma-separated of md,csv,json (default all). "
                   "Compare: md or csv (default md).")
@workers_option
@click.option("--no-cache", is_flag=True,
              help="Do not read or write the ground-truth statistics cache.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of the ground-truth cache (default <root>/.panoptool_cache).")
@click.option("--compare", "compare", multiple=True, metavar="NAME=DIR",
              help="Compare runs instead (repeatable): DIR is a report folder (metrics.json) "
                   "or, with --root, a results folder to evaluate.")
@click.option("--columns", default=None,
              help="Compare: comma-separated metric columns "
                   "(default mIoU,AP,PQ,PQ_th,SQ_th,RQ_th,PQ_st).")
@click.option("--settings", default=None,
              help="Compare: comma-separated settings to show before the metrics, each a "
                   "full key of the runs' config chain (postprocess.min_area, "
                   "make-targets.dilation, train.neck) or a setting name only one stage has "
                   "(min_area). Default: every setting whose value differs between the runs "
                   "that have it.")
@click.option("--subset", is_flag=True,
              help="Evaluate only the images that have predictions (default: every image of "
                   "the split, as the official evaluators); every output then says "
                   "'subset: N of M images'.")
def command(root, split, results_dir, out, format_, workers, no_cache, cache_dir, compare,
            columns, settings, subset):
    """mIoU/iIoU, AP/AP50 and PQ/SQ/RQ equal to cityscapesscripts' evaluators, or an
    ablation table of several runs.

    \b
    Evaluate:  panoptool report --root R --split val --results DIR [--out reports/NAME]
    Compare:   panoptool report --compare NAME=DIR --compare NAME=DIR [--columns AP,PQ]
               [--settings make-targets.dilation]

    Writes metrics.json (flat, percent), per_class.csv and summary.md into --out and prints
    the tables.
    """
    if bool(results_dir) == bool(compare):
        raise click.UsageError("give either --results DIR or one or more --compare NAME=DIR")
    if compare:
        _compare(root, split, compare, columns, settings, format_, out, workers)
        return
    from panoptool.evaluate import OUTPUT_FORMATS, evaluate, write_report

    formats_ = _formats(format_, ",".join(OUTPUT_FORMATS), OUTPUT_FORMATS)
    cache = False if no_cache else (cache_dir if cache_dir else True)
    result = evaluate(root, split, results_dir, workers=workers, cache=cache, subset=subset)
    out = out or Path("reports") / results_dir.resolve().name
    written = write_report(result, out, formats_)
    shown = [{"metric": k, "value": v} for k, v in result.metrics.items()
             if v is not None and k not in ("n_images", "subset")]
    scope = f"subset: {result.subset}" if result.subset else \
        f"{result.metrics['n_images']} images"
    stdout.print(_rich_table(pd.DataFrame(shown), f"{results_dir.name}: {split}, {scope}"))
    per_class = result.per_class.drop(columns=["train_id"]).dropna(axis=1, how="all")
    stdout.print(_rich_table(per_class, "per class"))
    click.echo(f"written: {', '.join(str(p) for p in written)}", err=True)


def _compare(root, split, specs, columns, settings, format_, out, workers):
    from panoptool.ablation import DEFAULT_COLUMNS, compare_table, load_run, parse_run
    from panoptool.io import write_text
    from panoptool.tables import to_markdown

    fmt = _formats(format_, "md", ("md", "csv"))
    if len(fmt) != 1:
        raise click.BadParameter("compare writes one format: md or csv", param_hint="--format")
    cols = [c.strip() for c in columns.split(",")] if columns else list(DEFAULT_COLUMNS)
    runs = []
    for spec in specs:
        name, folder = parse_run(spec)
        metrics, config = load_run(folder, root=root, split=split, workers=workers)
        runs.append((name, metrics, config))
    names = [k.strip() for k in settings.split(",") if k.strip()] if settings else None
    table = compare_table(runs, cols, names)
    out = out or Path("reports") / f"compare.{fmt[0]}"
    text = table.to_csv(index=False) if fmt[0] == "csv" else to_markdown(table) + "\n"
    write_text(out, text)
    stdout.print(_rich_table(table, "comparison"))
    click.echo(f"written: {out}", err=True)
