"""``panoptool synth``: a synthetic dataset in the Cityscapes layout."""

from __future__ import annotations

from pathlib import Path

import click

from panoptool.runtime.pool import console
from panoptool.synth.scenes import SynthConfig, make_dataset
from panoptool_cli.options import field_option, workers_option


@click.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@field_option(SynthConfig, "n", "--n", "n", type=click.IntRange(min=1))
@field_option(SynthConfig, "height", type=click.IntRange(min=32))
@field_option(SynthConfig, "width", type=click.IntRange(min=32))
@field_option(SynthConfig, "seed", type=click.IntRange(min=0))
@field_option(SynthConfig, "split")
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
