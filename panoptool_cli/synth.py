"""``panoptool synth``: a synthetic dataset in the Cityscapes layout or as COCO panoptic."""

from __future__ import annotations

from pathlib import Path

import click

from panoptool.runtime.pool import console
from panoptool.synth.scenes import FORMATS, SynthConfig, make_dataset
from panoptool_cli.options import field_option, workers_option


@click.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@field_option(SynthConfig, "n", "--n", "n", type=click.IntRange(min=1))
@field_option(SynthConfig, "height", type=click.IntRange(min=32))
@field_option(SynthConfig, "width", type=click.IntRange(min=32))
@field_option(SynthConfig, "seed", type=click.IntRange(min=0))
@field_option(SynthConfig, "split")
@click.option("--format", "format_", type=click.Choice(FORMATS), default="cityscapes",
              show_default=True,
              help="Layout to write: cityscapes (leftImg8bit/, gtFine/) or coco-panoptic (the "
                   "same scenes in COCO's layout: <split>/<stem>.png, annotations/"
                   "panoptic_<split>.json and annotations/panoptic_<split>/<stem>.png, the 19 "
                   "evaluated Cityscapes classes as categories, ids = label ids; labels "
                   "Cityscapes does not evaluate are void).")
@workers_option
def command(out, n, height, width, seed, split, format_, workers):
    """Write a synthetic street-scene dataset to OUT in the Cityscapes layout (or, with
    --format coco-panoptic, as a COCO-panoptic dataset in COCO's layout).

    \b
    OUT/leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png        RGB
    OUT/gtFine/<split>/<city>/<stem>_gtFine_labelIds.png          uint8 label ids
    OUT/gtFine/<split>/<city>/<stem>_gtFine_instanceIds.png       uint16 instance ids
    --format coco-panoptic:
    OUT/<split>/<stem>.png                                        RGB
    OUT/annotations/panoptic_<split>.json                         images, annotations, categories
    OUT/annotations/panoptic_<split>/<stem>.png                   segment id = R + 256 G + 256^2 B

    Scenes hold touching and overlapping cars, poles cutting cars in two, crowd regions,
    void borders and small far objects. OUT can then be used as --root of other stages.
    """
    config = SynthConfig(n=n, height=height, width=width, seed=seed, split=split)
    stems = make_dataset(out, config, workers=workers, format=format_)
    suffix = "" if format_ == "cityscapes" else f", {format_}"
    console.print(f"synth: wrote {len(stems)} images of {height}x{width} ({split}{suffix}) "
                  f"to {out}")
