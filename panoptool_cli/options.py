"""Options shared by several subcommands, as reusable decorators."""

from __future__ import annotations

import click

from panoptool.io.cityscapes import ENV_ROOT

root_option = click.option(
    "--root", type=click.Path(file_okay=False, path_type=str), envvar=ENV_ROOT,
    help=f"Cityscapes dataset root (holds gtFine/ and leftImg8bit/). Default: ${ENV_ROOT}.")

split_option = click.option(
    "--split", default="val", show_default=True,
    help="Dataset split (folder below gtFine/ and leftImg8bit/).")

workers_option = click.option(
    "--workers", type=click.IntRange(min=0), default=0, show_default=True,
    help="Worker processes; 0 = all cores.")

overwrite_option = click.option(
    "--overwrite", is_flag=True,
    help="Redo work whose output already exists (default: skip it and resume).")

device_option = click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
    help="Where the network runs; auto = cuda if available, else cpu.")

amp_option = click.option(
    "--amp", is_flag=True, help="Mixed precision (float16 on CUDA, bfloat16 on CPU).")

on_bad_image_option = click.option(
    "--on-bad-image", type=click.Choice(["stop", "skip"]), default="stop", show_default=True,
    help="An image (or its targets) that cannot be read: stop with one line naming the "
         "file, or skip it (logged on stderr) and go on.")


def derivation_options(func):
    """The options of the derivation (``PostprocessConfig`` but min-area, whose default differs
    between commands), shared by ``postprocess`` and ``predict`` so that they mean the same."""
    options = [
        click.option("--split/--no-split", "split_", default=True, show_default=True,
                     help="Split instances whose predicted centres form several clusters."),
        click.option("--merge/--no-merge", default=True, show_default=True,
                     help="Join same-class instances whose mean predicted centres are closer "
                          "than --eps."),
        click.option("--eps", type=float, default=20.0, show_default=True,
                     help="Clustering radius in pixels (split and merge)."),
        click.option("--min-samples", type=click.IntRange(min=1), default=100, show_default=True,
                     help="DBSCAN min_samples (pixels) for the split."),
        click.option("--cell", type=float, default=4.0, show_default=True,
                     help="Grid cell (pixels) on which predicted centres are clustered."),
        click.option("--contour-threshold", type=float, default=0.5, show_default=True,
                     help="Pixels with contour probability above this separate instances."),
        click.option("--connectivity", type=click.Choice(["4", "8"]), default="4",
                     show_default=True, help="Neighbourhood of the connected components."),
        click.option("--fill-contours/--no-fill-contours", default=True, show_default=True,
                     help="Give contour pixels back to the nearest instance of their class."),
        click.option("--derivation", type=click.Choice(["paper", "seeded"]), default="paper",
                     show_default=True,
                     help="How instances are derived. paper: connected components of the thing "
                          "mask minus the contours, then split / merge / min-area, then contour "
                          "pixels filled back (an object lying wholly inside the contour band is "
                          "lost). seeded: the components are first grown over the contour band "
                          "(each band pixel joins the same-class instance whose mean centre is "
                          "nearest its predicted centre, within --eps) and band pixels that no "
                          "instance takes become instances of their own, so no thing region is "
                          "lost; split / merge / min-area / fill-back then run as in paper."),
        click.option("--band-eps", "band_eps", type=click.FloatRange(min=0), default=None,
                     help="With --derivation seeded: a contour-band pixel joins an instance "
                          "only if its predicted centre is within this many pixels of the "
                          "instance's mean centre; band pixels pointing farther, to a centre "
                          "of their own (at least --min-samples of them), become an "
                          "instance; 0 = no limit: only band regions that no instance "
                          "reaches become instances. Default: 0 on a network's maps (its "
                          "offsets in the band are too rough for the limit: it made more "
                          "false instances than it recovered, see README), --eps with "
                          "--oracle."),
    ]
    for option in reversed(options):
        func = option(func)
    return func
