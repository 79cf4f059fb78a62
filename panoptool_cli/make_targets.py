"""``panoptool make-targets``: semantic, contour and offset training targets."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from panoptool.targets.core import TargetConfig, make_targets
from panoptool_cli.options import field_option, overwrite_option, root_option, workers_option


@click.command()
@root_option
@click.option("--split", default="train", show_default=True,
              help="Dataset split: a folder below gtFine/ (Cityscapes), or a split of the "
                   "COCO-panoptic dataset (val2017, or a name in the description).")
@field_option(TargetConfig, "dilation", type=click.IntRange(min=1))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default="targets",
              show_default=True,
              help="Targets folder; files go to OUT/<split>/<city>/ (COCO panoptic: "
                   "OUT/<split>/), the settings, label space and dataset to OUT/config.json.")
@workers_option
@overwrite_option
def command(root, split, dilation, out, workers, overwrite):
    """Write the training targets of every image of a split (of a Cityscapes or a
    COCO-panoptic dataset; the classes are the dataset's, recorded in OUT/config.json).

    \b
    OUT/<split>/<city>/<stem>_semantic.png   uint8 trainIds, 255 = ignore
    OUT/<split>/<city>/<stem>_contour.png    uint8 0/1 instance contours (dilated)
    OUT/<split>/<city>/<stem>_offset.npz     centre offsets (instance_index, centers_yx)

    Images whose targets exist are skipped (resume) unless --overwrite.
    """
    summary = make_targets(root, split, out, TargetConfig(dilation=dilation), workers=workers,
                           overwrite=overwrite)
    table = Table(title=f"make-targets {split}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for row in summary.rows():
        table.add_row(row["quantity"], str(row["value"]))
    Console().print(table)  # the summary goes to stdout; progress went to stderr
