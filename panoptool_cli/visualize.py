"""``panoptool visualize``: figure panels per image and a run's training curve."""

from __future__ import annotations

from pathlib import Path

import click

from panoptool_cli.options import root_option, split_option, workers_option


@click.command("visualize")
@root_option
@split_option
@click.option("--maps", type=click.Path(file_okay=False, path_type=Path),
              help="Prediction maps folder (infer's --out): semantic, contour probability and "
                   "centre-offset panels.")
@click.option("--results", type=click.Path(file_okay=False, path_type=Path),
              help="Results folder (postprocess's --out): instance and panoptic panels.")
@click.option("--targets", type=click.Path(file_okay=False, path_type=Path),
              help="Targets folder (make-targets' --out): show the contour target at its "
                   "dilation rate (default: the 1-px ground-truth contour).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the PNGs: <stem>.png per image, training_curve.png.")
@click.option("--n", "n", type=click.IntRange(min=1), default=8, show_default=True,
              help="Number of images (the first ones of the split that have predictions).")
@click.option("--tile-width", type=click.IntRange(min=64), default=512, show_default=True,
              help="Width of each tile of a panel, in pixels.")
@click.option("--run", type=click.Path(file_okay=False, path_type=Path),
              help="A training run folder (train's --out): also plot its metrics.csv.")
@click.option("--curve", type=click.Path(dir_okay=False, path_type=Path),
              help="A metrics.csv to plot as training_curve.png (overrides --run's).")
@workers_option
def command(root, split, maps, results, targets, out, n, tile_width, run, curve, workers):
    """Figure panels per image like the paper's: image, semantic, contour, centre offsets
    (colour wheel: direction = hue, length = brightness), instances, panoptic; ground truth
    beside prediction, each part whose data is given. With --run or --curve, also a
    training-curve plot. Without a dataset root (--root or $CITYSCAPES_DATASET), only the
    curve is drawn.
    """
    from panoptool.errors import ConfigError
    from panoptool.runtime.pool import console
    from panoptool.visualize.render import VisualizeConfig, visualize_dataset, write_training_curve

    metrics_csv = curve or (run / "metrics.csv" if run is not None else None)
    if root is None and metrics_csv is None:
        raise ConfigError("nothing to draw: give --root (or set $CITYSCAPES_DATASET) for "
                          "panels, or --run/--curve for a training curve")
    written = []
    if root is not None:
        written += visualize_dataset(root, out, VisualizeConfig(split=split, n=n,
                                                                tile_width=tile_width),
                                     maps=maps, results=results, targets=targets,
                                     workers=workers)
    if metrics_csv is not None:
        written.append(write_training_curve(metrics_csv, out / "training_curve.png",
                                            title=run.name if run is not None else ""))
    console.print(f"visualize: wrote {len(written)} PNG(s) to {out}")
