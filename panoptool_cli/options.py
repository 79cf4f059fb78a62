"""Options shared by several subcommands, as reusable decorators, and options made from the
fields of a stage's settings dataclass (:func:`field_option`): the field holds the default and
the help (``metadata["help"]``), so that the command line and the library cannot disagree.
"""

from __future__ import annotations

import dataclasses

import click

from panoptool.io.cityscapes import ENV_ROOT

root_option = click.option(
    "--root", type=click.Path(path_type=str), envvar=ENV_ROOT,
    help=f"The dataset: a Cityscapes root (gtFine/, leftImg8bit/), a COCO-panoptic folder in "
         f"COCO's layout (annotations/panoptic_<split>.json, images in <split>/), or a "
         f"dataset description JSON (or a folder with panoptool_dataset.json) for any other "
         f"COCO-panoptic layout; see the README. Default: ${ENV_ROOT}.")

split_option = click.option(
    "--split", default="val", show_default=True,
    help="Dataset split: a folder below gtFine/ and leftImg8bit/ (Cityscapes), or a split "
         "of the COCO-panoptic dataset (val2017, or a name in the description).")

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



class FieldOption(click.Option):
    """A click option made from a dataclass field by :func:`field_option`; ``field_of`` is
    ``(dataclass, field name)``, for the tests that compare every default with its field."""

    def __init__(self, *args, field_of: tuple[type, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.field_of = field_of


def config_field(config: type, name: str) -> dataclasses.Field:
    """The field ``name`` of the dataclass ``config`` (a ``KeyError`` names a missing one)."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    if name not in fields:
        raise KeyError(f"{config.__name__} has no field {name!r}")
    return fields[name]


def field_default(config: type, name: str):
    """The declared default of a field (``dataclasses.MISSING`` if it has none).

    >>> from panoptool.postprocess.config import PostprocessConfig
    >>> field_default(PostprocessConfig, "eps")
    20.0
    """
    f = config_field(config, name)
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def as_option_text(value):
    """A field default as the command line spells it: a tuple as a comma list, else as is.

    >>> as_option_text(("I", "II")), as_option_text((1, 300)), as_option_text(2.5)
    ('I,II', '1,300', 2.5)
    """
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return value


def field_option(config: type, name: str, *param_decls: str, help_extra: str = "", **attrs):
    """A click option that sets the field ``name`` of the settings dataclass ``config``.

    Its default is the field's (shown in ``--help``; a tuple as a comma list, a
    :class:`click.Choice` value as text) and its help the field's ``metadata["help"]`` (plus
    ``help_extra``). ``param_decls`` default to ``--<name with dashes>``, and
    ``--<name>/--no-<name>`` for a bool. ``attrs`` go to :func:`click.option` (``type``,
    ``callback``, ...); a ``default`` there overrides the field's, for a command whose default
    depends on its other options: its help must say so (``help_extra``).
    """
    f = config_field(config, name)
    default = field_default(config, name)
    if not param_decls:
        flag = name.replace("_", "-")
        param_decls = (f"--{flag}/--no-{flag}",) if isinstance(default, bool) else (f"--{flag}",)
    if "help" not in f.metadata:
        raise KeyError(f"{config.__name__}.{name} has no metadata['help'] for its option")
    default = as_option_text(default)
    if isinstance(attrs.get("type"), click.Choice) and default is not None:
        default = str(default)
    attrs.setdefault("default", default)
    attrs.setdefault("show_default", attrs["default"] is not None)
    help_ = f.metadata["help"] + (f" {help_extra}" if help_extra else "")
    return click.option(*param_decls, cls=FieldOption, field_of=(config, name), help=help_,
                        **attrs)


def derivation_options(func):
    """The options of the derivation (``PostprocessConfig`` but min-area, whose default differs
    between commands), shared by ``postprocess`` and ``predict`` so that they mean the same;
    defaults and help come from the fields."""
    from panoptool.postprocess.config import DERIVATIONS, PostprocessConfig as C

    options = [
        field_option(C, "split", "--split/--no-split", "split_"),
        field_option(C, "merge"),
        field_option(C, "eps", type=float),
        field_option(C, "min_samples", type=click.IntRange(min=1)),
        field_option(C, "cell", type=float),
        field_option(C, "contour_threshold", type=float),
        field_option(C, "connectivity", type=click.Choice(["4", "8"])),
        field_option(C, "fill_contours"),
        field_option(C, "derivation", type=click.Choice(list(DERIVATIONS))),
        field_option(C, "band_eps", "--band-eps", "band_eps", type=click.FloatRange(min=0)),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def min_area_option(**attrs):
    """``--min-area`` (:attr:`PostprocessConfig.min_area`)."""
    from panoptool.postprocess.config import PostprocessConfig

    return field_option(PostprocessConfig, "min_area", type=click.IntRange(min=0), **attrs)


def postprocess_config(*, split_, merge, min_area, eps, min_samples, cell, contour_threshold,
                       connectivity, fill_contours, derivation, band_eps):
    """The :class:`PostprocessConfig` of the derivation options and ``--min-area``."""
    from panoptool.postprocess.config import PostprocessConfig

    return PostprocessConfig(contour_threshold=contour_threshold,
                             connectivity=int(connectivity), split=split_, merge=merge,
                             min_area=min_area, eps=eps, min_samples=min_samples, cell=cell,
                             fill_contours=fill_contours, derivation=derivation,
                             band_eps=band_eps)
