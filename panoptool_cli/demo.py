"""``panoptool demo``: the whole pipeline on a small synthetic dataset it makes itself."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import click

from panoptool.jobs.demo import DemoConfig
from panoptool_cli.options import device_option, field_option, overwrite_option, workers_option

# see panoptool_cli/infer.py: sleeping OpenMP threads on a shared CPU; before torch's import
# (the demo's train and infer steps import it)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def invoke(args: Sequence[str]) -> None:
    """Run one panoptool subcommand in this process, e.g. ``invoke(["report", "--root", R])``.

    Library errors propagate unchanged (the caller turns them into the one-line message);
    an option the stage rejects or a non-zero exit becomes a :class:`ConfigError`.
    """
    from panoptool.errors import ConfigError
    from panoptool_cli.main import LazyGroup

    name, rest = str(args[0]), [str(a) for a in args[1:]]
    cmd = LazyGroup(name="panoptool").get_command(None, name)  # type: ignore[arg-type]
    if cmd is None:
        raise ConfigError(f"panoptool {name}: no such subcommand in this installation")
    try:
        code = cmd.main(args=rest, prog_name=f"panoptool {name}", standalone_mode=False)
    except click.ClickException as exc:
        raise ConfigError(f"panoptool {name}: {exc.format_message()}") from exc
    except click.exceptions.Abort:
        raise KeyboardInterrupt from None
    if isinstance(code, int) and code != 0:
        raise ConfigError(f"panoptool {name} exited with status {code}")


@click.command("demo")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default="demo",
              show_default=True, help="Folder for everything the demo writes.")
@field_option(DemoConfig, "dataset", type=click.Choice(["cityscapes", "coco-panoptic"]))
@field_option(DemoConfig, "minutes", type=click.FloatRange(min=0, min_open=True))
@field_option(DemoConfig, "n_train", type=click.IntRange(min=1))
@field_option(DemoConfig, "n_val", type=click.IntRange(min=1))
@click.option("--size", default=f"{DemoConfig.height}x{DemoConfig.width}", show_default=True,
              help="Image size HxW of the synthetic dataset (multiples of 32).")
@field_option(DemoConfig, "backbone")
@device_option
@workers_option
@overwrite_option
def command(out, dataset, minutes, n_train, n_val, size, backbone, device, workers, overwrite):
    """Run the whole pipeline on a small synthetic dataset (Cityscapes layout, or COCO
    panoptic with --dataset coco-panoptic): synth (train + val),
    make-targets, train (a few minutes, CPU or GPU), infer, postprocess, report, visualize.
    Prints the metrics and where everything was written. Run it again to continue an
    interrupted demo; finished steps are skipped.
    """
    from panoptool.jobs.demo import demo_layout, demo_steps
    from panoptool.jobs.steps import run_steps
    from panoptool_cli.legacy import settings_of_command

    try:
        height, width = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected HxW such as 256x512, got {size!r}",
                                 param_hint="--size") from None
    config = DemoConfig(dataset=dataset, minutes=minutes, n_train=n_train, n_val=n_val, height=height,
                        width=width, backbone=backbone, device=device, workers=workers)
    steps = demo_steps(out, config)
    run_steps(steps, demo_layout(out)["state"], invoke, redo=overwrite,
              legacy=settings_of_command)
    _summary(out)


def _summary(out: Path) -> None:
    from panoptool.io.files import read_json
    from panoptool.jobs.demo import demo_layout
    from panoptool.runtime.pool import console
    from panoptool.evaluation.tables import to_markdown

    p = demo_layout(out)
    metrics = read_json(p["report"] / "metrics.json")
    keys = [k for k in ("mIoU", "AP", "AP50", "PQ", "SQ", "RQ", "PQ_th", "PQ_st")
            if k in metrics]
    click.echo(to_markdown([{k: float(metrics[k]) for k in keys}]))
    console.print("\n[bold]demo: written[/bold]")
    for what, key in (("dataset", "data"), ("targets", "targets"), ("network", "run"),
                      ("prediction maps", "maps"), ("results", "results"),
                      ("metrics", "report"), ("figures", "figures")):
        console.print(f"  {what:16s} {p[key]}", highlight=False)
