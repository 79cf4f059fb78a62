"""Options shared by several subcommands, as reusable decorators."""

from __future__ import annotations

import click

from panoptool.dataset import ENV_ROOT

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
