"""``panoptool synth``: a synthetic dataset in the Cityscapes layout."""

from __future__ import annotations

from pathlib import Path

import click

from panoptool.runtime.pool import console
from panoptool.synth.scenes import SynthConfig, make_dataset
from panoptool_cli.options import workers_option


@click.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--n", "n", type=click.IntRange(min=1), default=20, show_default=True,
              help="Number of images.")
@click.option("--height", type=click.IntRange(min=32), default=256, show_default=True,
              help="Image height in pixels (Cityscapes: 1024).")
@click.option("--width", type=click.IntRange(min=32), default=512, show_default=True,
              help="Image width in pixels (Cityscapes: 2048).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Random seed; the same seed gives the same images, whatever --workers.")
@click.option("--split", default="val", show_default=True,
              help="Split folder to write (below leftImg8bit/ and gtFine/).")
@workers_option
def command(out, n, height, width, seed, split, workers):
    """Write a synthetic street-scene dataset to OUT in the Cityscapes layout.

    \b
    OUT/leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png        RGB
    OUT/gtFine/<split>/<city>/<stem>_gtFine_labelIds.png          uint8 label ids
    OUT/gtFine/<split>/<city>/<stem>_gtFine_instanceIds.png       uint16 instance ids

    Scenes hold touching and overlapping cars, poles cutting cars in two, crowd regions,
    void borders and small far objects. OUT can then be used as --root of other stages.
    """
    config = SynthConfig(n=n, height=height, width=width, seed=seed, split=split)
    stems = make_dataset(out, config, workers=workers)
    console.print(f"synth: wrote {len(stems)} images of {height}x{width} ({split}) to {out}")
