"""The ``panoptool`` command: a group whose subcommands are imported only when used.

Each subcommand lives in ``panoptool_cli/<module>.py`` as a click command named ``command``;
importing lazily keeps ``panoptool --help`` fast (torch is imported only by train/infer).
Library errors (:class:`~panoptool.errors.PanoptoolError`) become one line on stderr and
exit status 1.
"""

from __future__ import annotations

import importlib
import sys

import click

from panoptool import __version__
from panoptool.errors import PanoptoolError

#: subcommand name -> (module, one-line help shown in ``panoptool --help``)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("synth", "Make a synthetic dataset in the Cityscapes layout."),
    "make-targets": ("make_targets", "Semantic, contour and offset training targets."),
    "train": ("train", "Train the multi-task network (CPU/GPU, torchrun for DDP)."),
    "infer": ("infer", "Write prediction maps (<stem>_maps.npz) with a trained network."),
    "export": ("export", "The network with its maps step as ONNX / TorchScript."),
    "postprocess": ("postprocess", "Instances and panoptic results from prediction maps."),
    "predict": ("predict", "Panoptic results and overlays for any images, folders, videos."),
    "report": ("report", "mIoU / AP / PQ equal to the official evaluators; ablation tables."),
    "visualize": ("visualize", "Figure panels per image and training curves."),
    "ablate": ("ablate", "Run the paper's ablations (Tables I-V)."),
    "demo": ("demo", "Whole pipeline end to end on a small synthetic dataset."),
    "bench": ("bench", "Time each stage at Cityscapes size; writes reports/bench.md."),
    "convert": ("convert", "Cityscapes ground truth and results <-> COCO formats."),
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, (module, _) in SUBCOMMANDS.items() if _module_exists(module)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in SUBCOMMANDS or not _module_exists(SUBCOMMANDS[name][0]):
            return None
        module = importlib.import_module(f"panoptool_cli.{SUBCOMMANDS[name][0]}")
        return module.command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUBCOMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        from panoptool.runtime.guard import quiet_third_party
        quiet_third_party()
        try:
            return super().invoke(ctx)
        except PanoptoolError as exc:
            click.echo(f"panoptool: error: {exc}", err=True)
            ctx.exit(1)
        except OSError as exc:  # a file operation that bypassed panoptool.io.files: still one line
            where = f"{exc.filename}: " if exc.filename is not None else ""
            click.echo(f"panoptool: error: {where}{exc.strerror or exc}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("panoptool: interrupted; finished files are kept, run again to resume",
                       err=True)
            ctx.exit(130)


def _module_exists(module: str) -> bool:
    return importlib.util.find_spec(f"panoptool_cli.{module}") is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"],
                                              "max_content_width": 100})
@click.version_option(__version__, prog_name="panoptool")
def cli() -> None:
    """panoptool: panoptic segmentation from instance contours on Cityscapes-format data.

    \b
    Data flow (each stage reads only the files of the stage before it):
      synth / real Cityscapes -> make-targets -> train -> infer -> postprocess -> report
    """


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli())
