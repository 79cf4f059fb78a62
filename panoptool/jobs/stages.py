"""The stages as the jobs run them: each function calls the stage's library function with its
settings dataclass, exactly as the stage's subcommand does with its defaults, prints the
subcommand's one-line summary on the console (stderr) and returns the text the subcommand
prints on stdout (the step's log, see :mod:`.steps`).

The functions take paths as the subcommands pass them (text or :class:`~pathlib.Path`), so
that every file written, ``config.json`` included, is the one the subcommand writes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from panoptool.evaluation.contour_score import ContourScoreConfig
from panoptool.postprocess.config import PostprocessConfig
from panoptool.synth.scenes import SynthConfig
from panoptool.targets.core import TargetConfig
from panoptool.visualize.render import VisualizeConfig

if TYPE_CHECKING:  # its module imports torch, which the jobs without a network do not need
    from panoptool.inference.maps import InferConfig

PathLike = str | os.PathLike


def _console():
    from panoptool.runtime.pool import console

    return console


def synth(out: PathLike, config: SynthConfig, workers: int = 0,
          format: str = "cityscapes") -> None:
    """``panoptool synth OUT``: a synthetic dataset (:func:`~panoptool.synth.scenes.make_dataset`)
    in the Cityscapes layout or (``format="coco-panoptic"``) as COCO panoptic."""
    from panoptool.synth.scenes import make_dataset

    stems = make_dataset(Path(out), config, workers=workers, format=format)
    suffix = "" if format == "cityscapes" else f", {format}"
    _console().print(f"synth: wrote {len(stems)} images of {config.height}x{config.width} "
                     f"({config.split}{suffix}) to {Path(out)}")


def make_targets(root: PathLike, split: str, out: PathLike, config: TargetConfig,
                 workers: int = 0, overwrite: bool = False) -> str:
    """``panoptool make-targets``: the training targets of a split; returns the summary."""
    from panoptool.targets.core import make_targets as run

    summary = run(str(root), split, Path(out), config, workers=workers, overwrite=overwrite)
    rows = summary.rows()
    width = max(len(r["quantity"]) for r in rows)
    return "\n".join([f"make-targets {split}",
                      *(f"{r['quantity']:{width}s}  {r['value']}" for r in rows)])


def train(config, resume: bool = False, overwrite: bool = False) -> None:
    """``panoptool train``: the network (:func:`~panoptool.training.loop.train`), with the
    subcommand's summary line. ``config`` is a :class:`~panoptool.training.config.TrainConfig`."""
    from panoptool.training.loop import train as run

    summary = run(config, resume=resume, overwrite=overwrite)
    terms = ", ".join(f"{k} {v:.4g}" for k, v in summary.last_terms.items())
    _console().print(f"train: {summary.iterations}/{summary.total_iters} iterations in "
                     f"{summary.seconds / 60:.1f} min ({summary.stopped}); {terms}; "
                     f"checkpoint {summary.checkpoint}")


def infer(config: InferConfig, overwrite: bool = False) -> None:
    """``panoptool infer``: the prediction maps of a split (:func:`~panoptool.inference.maps.infer`)."""
    from panoptool.inference.maps import infer as run
    from panoptool.io.datasets import open_dataset

    open_dataset(config.root)  # the subcommand's check of --root, with its message
    summary = run(config, overwrite=overwrite)
    _console().print(f"infer: {summary.images - summary.skipped} images written, "
                     f"{summary.skipped} already there, {summary.ms_per_image:.0f} ms/image, "
                     f"maps in {summary.out}")


def postprocess_maps(maps: PathLike, out: PathLike, config: PostprocessConfig,
                     workers: int = 0, overwrite: bool = False) -> None:
    """``panoptool postprocess --maps``: results from a network's prediction maps."""
    from panoptool.postprocess.runner import postprocess_maps as run

    summary = run(str(maps), str(out), config, workers=workers, overwrite=overwrite,
                  instance_format="both")
    _console().print(summary.line())


def postprocess_oracle(root: PathLike, split: str, targets: PathLike, out: PathLike,
                       config: PostprocessConfig, workers: int = 0,
                       overwrite: bool = False) -> None:
    """``panoptool postprocess --oracle``: results from ground-truth maps (the targets)."""
    from panoptool.postprocess.runner import postprocess_oracle as run

    summary = run(str(root), split, str(targets), str(out), config, workers=workers,
                  overwrite=overwrite, instance_format="both")
    _console().print(summary.line())


def report(root: PathLike, split: str, results: PathLike, out: PathLike,
           maps: PathLike | None = None, contour: ContourScoreConfig = ContourScoreConfig(),
           workers: int = 0) -> str:
    """``panoptool report --results [--maps]``: evaluate a results folder (and score the
    contour head of ``maps``), write the report; returns ``summary.md``'s text."""
    from panoptool.evaluation.runner import OUTPUT_FORMATS, evaluate, summary_markdown, write_report

    result = evaluate(str(root), split, Path(results), workers=workers)
    if maps is not None:
        from panoptool.evaluation.contour_score import add_contour_score

        result = add_contour_score(result, str(root), split, maps, contour, workers)
    written = write_report(result, Path(out), list(OUTPUT_FORMATS))
    _console().print(f"written: {', '.join(str(p) for p in written)}", highlight=False)
    return summary_markdown(result)


def compare_table(runs: Sequence[tuple[str, PathLike]], settings: str, out: PathLike,
                  columns: Sequence[str] | None = None, fmt: str = "md") -> str:
    """``panoptool report --compare NAME=DIR ... --settings S [--columns C] --format F``: a
    table of evaluated runs (:func:`~panoptool.evaluation.compare.compare_table`); returns it."""
    from panoptool.errors import ConfigError
    from panoptool.evaluation.compare import DEFAULT_COLUMNS, compare_table as table_of, load_run
    from panoptool.evaluation.tables import to_markdown
    from panoptool.io.files import write_text

    if fmt not in ("md", "csv"):
        raise ConfigError(f"a comparison is written as md or csv, got {fmt!r}")
    loaded = [(name, *load_run(Path(folder))) for name, folder in runs]
    names = [k.strip() for k in settings.split(",") if k.strip()]
    table = table_of(loaded, list(columns or DEFAULT_COLUMNS), names)
    text = table.to_csv(index=False) if fmt == "csv" else to_markdown(table) + "\n"
    write_text(Path(out), text)
    _console().print(f"written: {Path(out)}", highlight=False)
    return to_markdown(table)


def visualize(root: PathLike, out: PathLike, config: VisualizeConfig, *,
              maps: PathLike | None = None, results: PathLike | None = None,
              targets: PathLike | None = None, run: PathLike | None = None,
              workers: int = 0) -> None:
    """``panoptool visualize``: figure panels of the first images, and the training curve of
    ``run``."""
    from panoptool.visualize.render import visualize_dataset, write_training_curve

    def path(p):
        return None if p is None else Path(p)

    out = Path(out)
    written = visualize_dataset(str(root), out, config, maps=path(maps), results=path(results),
                                targets=path(targets), workers=workers)
    if run is not None:
        written.append(write_training_curve(Path(run) / "metrics.csv",
                                            out / "training_curve.png", title=Path(run).name))
    _console().print(f"visualize: wrote {len(written)} PNG(s) to {out}")
