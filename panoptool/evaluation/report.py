"""Writing an evaluation: ``metrics.json``, ``per_class.csv``, ``summary.md`` and the report's
``config.json``."""

from __future__ import annotations

import os
from pathlib import Path

from panoptool.errors import ConfigError
from panoptool.evaluation.config import OUTPUT_FORMATS
from panoptool.evaluation.summary import EvaluationResult
from panoptool.evaluation.tables import to_markdown
from panoptool.io import formats
from panoptool.io.files import write_json, write_text
from panoptool.labels import CITYSCAPES

PathLike = str | os.PathLike


def summary_markdown(result: EvaluationResult) -> str:
    """The ``summary.md`` text: overall metrics and the per-class table."""
    shown = {k: v for k, v in result.metrics.items() if v is not None}
    lines = [f"# Evaluation of `{result.results_dir}`", "",
             f"Split `{result.split}` of `{result.root}`, {result.metrics['n_images']} images; "
             f"parts evaluated: {', '.join(result.parts)}. {_rules(result)}", "",
             *([f"subset: {result.subset}", ""] if result.subset else []),
             to_markdown([{k: (float(v) if k not in ('n_images', 'subset') else v)
                           for k, v in shown.items()}]),
             "", "## Per class", "",
             to_markdown(result.per_class.drop(columns=["train_id"]).dropna(axis=1, how="all")),
             ""]
    return "\n".join(lines)


def _rules(result: EvaluationResult) -> str:
    """What the numbers equal: cityscapesscripts' evaluators on Cityscapes; on another label
    space, which rules each metric follows."""
    if result.labels == CITYSCAPES:
        return "Metrics equal to cityscapesscripts' evaluators, in percent."
    return (f"Label space `{result.labels.name}` ({result.labels.num_classes} classes, "
            f"{len(result.labels.thing_train_ids)} things). PQ/SQ/RQ equal to panopticapi's "
            f"pq_compute; mIoU, iIoU and AP/AP50 by cityscapesscripts' rules on this label "
            f"space (crowd pixels count as their category, void is ignored); coco_AP by "
            f"pycocotools' COCOeval (crowd segments as iscrowd). In percent.")


def write_report(result: EvaluationResult, out_dir: PathLike,
                 formats_: tuple[str, ...] | list[str] = OUTPUT_FORMATS) -> list[Path]:
    """Write ``metrics.json`` (json), ``per_class.csv`` (csv) and ``summary.md`` (md).

    Every file is written atomically; ``config.json`` records how the numbers were made
    (evaluation settings + the results folder's own config as upstream).
    """
    unknown = [f for f in formats_ if f not in OUTPUT_FORMATS]
    if unknown:
        raise ConfigError(f"unknown report format(s) {unknown}; choose from "
                          f"{', '.join(OUTPUT_FORMATS)}")
    out_dir = Path(out_dir)
    from panoptool.runtime.guard import output_lock
    from panoptool.io.files import remove_stale_temporaries
    with output_lock(out_dir, "report"):
        remove_stale_temporaries(out_dir)
        return _write_report_files(result, out_dir, formats_)


def _write_report_files(result: EvaluationResult, out_dir: Path,
                        formats_: tuple[str, ...] | list[str]) -> list[Path]:
    written = []
    if "json" in formats_:
        write_json(out_dir / "metrics.json", result.metrics)
        written.append(out_dir / "metrics.json")
    if "csv" in formats_:
        write_text(out_dir / "per_class.csv", result.per_class.to_csv(index=False))
        written.append(out_dir / "per_class.csv")
    if "md" in formats_:
        write_text(out_dir / "summary.md", summary_markdown(result))
        written.append(out_dir / "summary.md")
    settings = dict(result.settings, root=result.root, results_dir=result.results_dir,
                    parts=list(result.parts))
    write_json(out_dir / formats.CONFIG_JSON,
               formats.stage_config("report", settings, result.results_config))
    written.append(out_dir / formats.CONFIG_JSON)
    return written
