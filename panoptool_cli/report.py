"""``panoptool report``: evaluate a results folder, or compare evaluated runs."""

from __future__ import annotations

import math
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from panoptool_cli.options import root_option, split_option, workers_option

#: Tables go to stdout; progress and messages (panoptool.runtime.pool.console) to stderr.
stdout = Console()


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _rich_table(df, title: str) -> Table:
    import pandas as pd

    table = Table(title=title)
    for col in df.columns:
        numeric = pd.api.types.is_numeric_dtype(df[col])
        table.add_column(str(col), justify="right" if numeric else "left")
    for row in df.itertuples(index=False, name=None):
        table.add_row(*[_fmt(v) for v in row])
    return table


def _rich_columns(columns: dict, title: str) -> Table:
    """A rich table from columns (name -> values), without pandas; numbers right-aligned."""
    table = Table(title=title)
    for name, values in columns.items():
        numeric = all(isinstance(v, (int, float, np.integer, np.floating))
                      and not isinstance(v, bool) for v in values)
        table.add_column(str(name), justify="right" if numeric else "left")
    for row in zip(*columns.values()):
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
                   "(official Cityscapes formats, with the label ids of the dataset's label "
                   "space: COCO's category ids on a COCO-panoptic --root); every part present "
                   "is evaluated. Refused if its config.json records another label space than "
                   "the dataset's.")
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
@click.option("--instances", "instances", type=click.Path(dir_okay=False, path_type=Path),
              help="COCO results JSON (RLE masks; ours, detectron2's or mmdetection's "
                   "coco_instances_results.json) to evaluate as the instance part. Default: "
                   "<results>/instances.json if present, else <results>/instance/*_pred.txt. "
                   "image_id is matched to the file stem (<stem> or <stem>_leftImg8bit.png); "
                   "category_id is the dataset's label id (Cityscapes labelId, COCO category "
                   "id), unless --coco-gt maps them.")
@click.option("--coco-gt", "coco_gt", type=click.Path(dir_okay=False, path_type=Path),
              help="COCO file (e.g. from 'convert instances-gt' or the network's own ground "
                   "truth JSON) whose images[].file_name maps the results' image ids to stems "
                   "and whose categories[].name (the dataset's class names) maps category ids "
                   "to label ids.")
@click.option("--coco-ap/--no-coco-ap", "coco_ap", default=True, show_default=True,
              help="Also compute COCO mask AP (coco_AP, coco_AP50, coco_AP75, coco_AP_S/M/L) "
                   "with pycocotools' COCOeval on the ground truth converted by detectron2's "
                   "rule (Cityscapes) or by panopticapi's (COCO-panoptic: one annotation per "
                   "thing segment, crowd ones iscrowd), when instances are evaluated.")
@click.option("--coco-backend", "coco_backend", default="pycocotools", show_default=True,
              type=click.Choice(["pycocotools", "faster-coco-eval"]),
              help="COCOeval implementation for COCO mask AP: pycocotools (the reference) or "
                   "faster-coco-eval (same numbers, about 4x faster; pip install "
                   "faster-coco-eval).")
@click.option("--boundary/--no-boundary", default=False, show_default=True,
              help="Also Boundary IoU (semantic part) and Boundary PQ/SQ/RQ (panoptic part), "
                   "Cheng et al. CVPR 2021: metrics.json keys boundary_*, per-class columns. "
                   "Off by default: it adds about as much time as the rest of the report "
                   "(reports/bench.md, section boundary).")
@click.option("--boundary-ratio", type=click.FloatRange(min=0, max=1, min_open=True,
                                                        max_open=True),
              default=0.02, show_default=True,
              help="Boundary width d as a fraction of the image diagonal "
                   "(d = round(ratio x diagonal) pixels, at least 1; 0.02 = 46 px at "
                   "1024x2048).")
@click.option("--maps", "maps_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also score the contour head: the contour_prob of these prediction maps "
                   "(<maps>/<split>/<city>/<stem>_maps.npz) against the ground truth's 1-px "
                   "thing-instance boundaries, BSDS-style ODS/OIS precision/recall/F "
                   "(keys contour_*). Alone (without --results) only this score.")
@click.option("--contour-tolerance", type=click.FloatRange(min=0, max=1, min_open=True,
                                                           max_open=True),
              default=0.0075, show_default=True,
              help="Contour score: matching distance as a fraction of the image diagonal "
                   "(BSDS's maxDist; 0.0075 = 17 px at 1024x2048).")
@click.option("--contour-nms/--no-contour-nms", default=True, show_default=True,
              help="Contour score: thin contour_prob by non-maximum suppression across the "
                   "contour before thresholding (as the edge benchmarks' scoring does).")
@click.option("--subset", is_flag=True,
              help="Evaluate only the images that have predictions (default: every image of "
                   "the split, as the official evaluators); every output then says "
                   "'subset: N of M images'.")
def command(root, split, results_dir, out, format_, workers, no_cache, cache_dir, compare,
            columns, settings, instances, coco_gt, coco_ap, coco_backend, boundary,
            boundary_ratio, maps_dir, contour_tolerance, contour_nms, subset):
    """mIoU/iIoU, AP/AP50 and PQ/SQ/RQ equal to cityscapesscripts' evaluators (on a
    COCO-panoptic --root: PQ equal to panopticapi's pq_compute, COCO mask AP), or an
    ablation table of several runs.

    \b
    Evaluate:  panoptool report --root R --split val --results DIR [--out reports/NAME]
               [--boundary] [--maps MAPS]
    Contours:  panoptool report --root R --split val --maps MAPS [--out reports/NAME]
    Compare:   panoptool report --compare NAME=DIR --compare NAME=DIR [--columns AP,PQ]
               [--settings make-targets.dilation]

    Writes metrics.json (flat, percent), per_class.csv and summary.md into --out and prints
    the tables.
    """
    if bool(results_dir or maps_dir) == bool(compare):
        raise click.UsageError("give either --results DIR (and/or --maps MAPS) or one or more "
                               "--compare NAME=DIR")
    if compare:
        _compare(root, split, compare, columns, settings, format_, out, workers)
        return
    from panoptool.evaluation.config import OUTPUT_FORMATS
    from panoptool.evaluation.report import write_report
    from panoptool.evaluation.runner import evaluate

    formats_ = _formats(format_, ",".join(OUTPUT_FORMATS), OUTPUT_FORMATS)
    cache = False if no_cache else (cache_dir if cache_dir else True)
    result = None
    if results_dir:
        result = evaluate(root, split, results_dir, workers=workers, cache=cache,
                          instances=instances, coco_gt=coco_gt, coco_ap=coco_ap,
                          coco_backend=coco_backend, boundary=boundary,
                          boundary_ratio=boundary_ratio, subset=subset)
    if maps_dir:
        result = _score_contours(result, root, split, maps_dir, workers, contour_tolerance,
                                 contour_nms)
    source = results_dir or maps_dir
    out = out or Path("reports") / source.resolve().name
    written = write_report(result, out, formats_)
    shown = {k: v for k, v in result.metrics.items()
             if v is not None and k not in ("n_images", "subset")}
    scope = f"subset: {result.subset}" if getattr(result, "subset", None) else \
        f"{result.metrics['n_images']} images"
    stdout.print(_rich_columns({"metric": list(shown), "value": list(shown.values())},
                               f"{source.name}: {split}, {scope}"))
    # the per-class table without the columns of parts not evaluated (all NaN)
    per_class = {k: v.tolist() for k, v in result.per_class_table.columns.items()
                 if k not in ("train_id", "subset")
                 and not (v.dtype.kind == "f" and np.isnan(v).all())}
    extra = [c for c in per_class if c.startswith("boundary_")]
    if len(per_class) > 1 + len(extra):  # not for a contour score alone
        stdout.print(_rich_columns({k: v for k, v in per_class.items() if k not in extra},
                                   "per class"))
    if extra:  # a second table keeps both readable in 80 columns
        stdout.print(_rich_columns({k: per_class[k] for k in ["class", *extra]},
                                   "per class, boundary"))
    click.echo(f"written: {', '.join(str(p) for p in written)}", err=True)


def _score_contours(result, root, split, maps_dir, workers, tolerance, nms):
    """Add the contour score to ``result`` (or make a result of it alone)."""
    from panoptool.evaluation.contour_score import ContourScoreConfig, add_contour_score

    return add_contour_score(result, root, split, maps_dir,
                             ContourScoreConfig(max_dist=tolerance, nms=nms), workers)


def _compare(root, split, specs, columns, settings, format_, out, workers):
    from panoptool.evaluation.compare import DEFAULT_COLUMNS, compare_table, load_run, parse_run
    from panoptool.io.files import write_text
    from panoptool.evaluation.tables import to_markdown

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
