"""``panoptool train``: train the multi-task network (CPU/GPU; DDP under torchrun).

The options that set a :class:`~panoptool.training.config.TrainConfig` field are made from
:data:`SETTING_OPTIONS`: each one's default (shown by ``--help``) is its dataclass field's, and
its validation is the dataclass's. Only the options given on the command line reach the
config; the others are left to ``--preset`` and to the dataclasses' defaults.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

# OpenMP threads that sleep instead of spinning while they wait: on a CPU shared with other
# processes (data-loader workers, other jobs) spinning threads made a training step 6-12x
# slower (measured on 2 cores); on an idle CPU it costs nothing measurable. Must be set
# before torch is imported (the training config's modules import it, below).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import click  # noqa: E402
from click.core import ParameterSource  # noqa: E402

from panoptool.errors import ConfigError  # noqa: E402
from panoptool.model.config import ARCHS, NECKS  # noqa: E402
from panoptool.training.config import PRESETS, TrainConfig  # noqa: E402
from panoptool_cli.options import (amp_option, device_option, on_bad_image_option,  # noqa: E402
                                   overwrite_option, root_option)


def _pair(text: str, sep: str, kind, name: str) -> tuple:
    try:
        values = tuple(kind(v) for v in text.lower().split(sep))
    except ValueError:
        raise ConfigError(f"--{name} must look like A{sep}B, got {text!r}") from None
    if len(values) != 2:
        raise ConfigError(f"--{name} must have two values separated by {sep!r}, got {text!r}")
    return values


def _terms(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _lambdas(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--lambdas must be three numbers like 1,50,0.1, got {text!r}") \
            from None


def _joined(sep: str) -> Callable[[tuple], str]:
    return lambda values: sep.join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


@dataclass(frozen=True)
class SettingOption:
    """A ``train`` option that sets the flat TrainConfig field ``name`` (``--name`` with
    dashes); ``parse`` / ``show`` convert between the option's text and the field's value
    where they differ (tuples); ``kind`` is the click type (default: the default's type)."""

    name: str
    help: str
    kind: object = None
    parse: Callable[[str], object] | None = None
    show: Callable[[object], str] | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def text(self, value) -> object:
        """``value`` as the option writes it."""
        return self.show(value) if self.show else value

    def value(self, text) -> object:
        """The field's value of the option's ``text``."""
        return self.parse(text) if self.parse else text

    def decorator(self):
        default = TrainConfig.default(self.name)
        if isinstance(default, bool) or self.kind is bool:
            return click.option(f"{self.flag}/--no-{self.flag[2:]}", self.name, default=default,
                                show_default=default is not None, help=self.help)
        return click.option(self.flag, self.name, type=self.kind or type(default),
                            default=self.text(default), show_default=default != "",
                            help=self.help)


#: The options of the TrainConfig fields, in ``--help`` order (after --root, --targets, --out,
#: --preset). ``--device`` and ``--amp`` are the shared options of panoptool_cli.options.
SETTING_OPTIONS = (
    SettingOption("split", "Training split (Cityscapes: a folder below gtFine/; COCO "
                           "panoptic: a split of the dataset)."),
    SettingOption("backbone", "ResNet encoder depth.", kind=click.Choice(ARCHS)),
    SettingOption("neck", "One neck for all heads, or one per head.", kind=click.Choice(NECKS)),
    SettingOption("head_conv", "Channels of a 3x3 conv block at the start of each head; 0 = "
                               "none (each head is Panoptic FPN's 1x1 classifier)."),
    SettingOption("fpn_channels", "FPN channels."),
    SettingOption("neck_channels", "Channels of each neck's output."),
    SettingOption("gn_groups", "GroupNorm groups."),
    SettingOption("contour_prior", "Initial probability of the contour output (its bias)."),
    SettingOption("offset_scale", "Offset head output x this = offset in pixels (architecture "
                                  "setting)."),
    SettingOption("iters", "Training iterations (with --max-minutes: the most)."),
    SettingOption("max_minutes", "Training-time budget in minutes (0 = none): the schedule is "
                                 "fitted to it from the measured speed and the run stops "
                                 "cleanly when it is spent."),
    SettingOption("batch", "Global batch (split over torchrun processes)."),
    SettingOption("lr", "Base learning rate (SGD; linear warm-up, then poly decay)."),
    SettingOption("momentum", "SGD momentum."),
    SettingOption("weight_decay", "SGD weight decay."),
    SettingOption("warmup_iters", "Warm-up iterations (at most a tenth of the schedule)."),
    SettingOption("poly_power", "Power of the poly decay of the learning rate."),
    SettingOption("crop", "Training crop HxW (clipped to the image size).", kind=str,
                  parse=lambda t: _pair(t, "x", int, "crop"), show=_joined("x")),
    SettingOption("scale", "Random rescaling range MIN,MAX.", kind=str,
                  parse=lambda t: _pair(t, ",", float, "scale"), show=_joined(",")),
    SettingOption("flip", "Random horizontal flips."),
    SettingOption("contour_loss", "Contour loss terms, comma-separated among wbce, huber, nms.",
                  kind=str, parse=_terms, show=_joined(",")),
    SettingOption("lambdas", "Weights of the semantic, contour and offset losses.", kind=str,
                  parse=_lambdas, show=_joined(",")),
    SettingOption("semantic_top_k", "Cross entropy over this fraction of each image's hardest "
                                    "pixels (hard-pixel mining; 1 = plain cross entropy)."),
    SettingOption("contour_huber_delta", "Huber delta on the contour probability."),
    SettingOption("offset_huber_delta", "Huber delta on the offsets, in pixels."),
    SettingOption("nms_radius", "The NMS loss compares 2 x this + 1 samples, 1 px apart, "
                                "along the boundary normal."),
    SettingOption("nms_tau", "Softmax temperature of the NMS loss."),
    SettingOption("nms_sigma", "Gaussian sigma (px) smoothing the ground-truth contour for "
                               "the NMS loss's normals."),
    SettingOption("workers", "Data-loader worker processes; 0 = auto (half the cores, 1..8)."),
    SettingOption("threads", "Torch CPU threads; 0 = the cores divided by the processes."),
    SettingOption("channels_last", "NHWC memory format (default off: slower training steps "
                                   "on CPU).", kind=bool),
    SettingOption("seed", "Seed of the initial weights and of the data order/augmentation."),
    SettingOption("init_weights", "Local torchvision ResNet state dict (.pth) for the encoder "
                                  "(ImageNet).",
                  kind=click.Path(dir_okay=False, path_type=str)),
    SettingOption("save_every", "Write checkpoints/last.pt every N iterations (and every "
                                "--save-minutes)."),
    SettingOption("save_minutes", "Write checkpoints/last.pt every this many minutes (and "
                                  "every --save-every iterations)."),
)
#: The TrainConfig fields set by the shared options (device_option, amp_option).
SHARED_OPTIONS = ("device", "amp")
_BY_NAME = {s.name: s for s in SETTING_OPTIONS}


def presets_epilog() -> str:
    """The presets' section of ``--help``: each preset's values as options, and why it
    exists."""
    keys = list(dict.fromkeys(k for p in PRESETS.values() for k in p.settings))
    lines = ["\b", "Presets (--preset NAME; options given explicitly override them):"]
    for p in PRESETS.values():
        values = {k: p.settings.get(k, TrainConfig.default(k)) for k in keys}
        shown = " ".join(f"{_BY_NAME[k].flag} {_BY_NAME[k].text(v)}" for k, v in values.items())
        text = f"{p.name}: {shown}: {p.about}."
        lines += textwrap.wrap(text, width=90, initial_indent="  ", subsequent_indent="      ")
    return "\n".join(lines)


def setting_options(func):
    """The options of the TrainConfig fields (and --preset) as one decorator."""
    options = [click.option("--preset", type=click.Choice(list(PRESETS)), default=None,
                            help="Named settings (see Presets below), recorded in "
                                 "config.json; options given explicitly override them.")]
    for s in SETTING_OPTIONS:
        options.append(s.decorator())
        if s.name == "nms_sigma":  # the shared options, where the old --help had them
            options += [device_option, amp_option]
    for option in reversed(options):
        func = option(func)
    return func


def config_from_options(ctx: click.Context, params: dict) -> TrainConfig:
    """The TrainConfig of the parsed ``params``: the preset, then the options given."""
    from panoptool.io.datasets import open_dataset

    given = {}
    for name in (*_BY_NAME, *SHARED_OPTIONS):
        if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None):
            given[name] = _BY_NAME[name].value(params[name]) if name in _BY_NAME \
                else params[name]
    return TrainConfig(root=str(open_dataset(params["root"]).root), targets=params["targets"],
                       out=params["out"], preset=params["preset"], **given)


def config_from_args(args: list[str]) -> TrainConfig:
    """The TrainConfig that ``panoptool train ARGS`` trains with (nothing is run)."""
    with command.make_context("train", [str(a) for a in args]) as ctx:
        return config_from_options(ctx, ctx.params)


@click.command(epilog=presets_epilog())
@root_option
@click.option("--targets", type=click.Path(file_okay=False, path_type=str), required=True,
              help="make-targets output folder (holds <split>/ and config.json).")
@click.option("--out", type=click.Path(file_okay=False, path_type=str), required=True,
              help="Run folder: config.json, metrics.csv, checkpoints/last.pt.")
@setting_options
@click.option("--allow-partial", is_flag=True,
              help="Train from --init-weights even if they match under half of the "
                   "encoder's tensors (refused by default: usually the wrong file).")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out from checkpoints/last.pt (same settings).")
@on_bad_image_option
@overwrite_option
def command(allow_partial, resume, on_bad_image, overwrite, **params):
    """Train the network on a split's images and make-targets targets.

    The classes are the dataset's (Cityscapes or COCO panoptic); the targets must have been
    made with the same label space, which the checkpoint records.

    \b
    Example (15 minutes on CPU, with the settings that learn most there):
      panoptool train --root data --targets targets --out runs/r18 --preset cpu \\
          --max-minutes 15
    Several GPUs/machines: the same command under torchrun, e.g.
      torchrun --nproc-per-node 4 -m panoptool_cli.main train ...

    Ctrl-C writes checkpoints/last.pt and stops; --resume continues exactly there. An
    error (an unreadable image, a full disk) also writes last.pt before the run ends.
    """
    from panoptool.runtime.pool import console
    from panoptool.training.loop import train

    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    config = config_from_options(click.get_current_context(), params)
    summary = train(config, resume=resume, overwrite=overwrite, on_bad_image=on_bad_image,
                    allow_partial=allow_partial)
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun only the first process reports
    terms_text = ", ".join(f"{k} {v:.4g}" for k, v in summary.last_terms.items())
    console.print(f"train: {summary.iterations}/{summary.total_iters} iterations in "
                  f"{summary.seconds / 60:.1f} min ({summary.stopped}); {terms_text}; "
                  f"checkpoint {summary.checkpoint}")
