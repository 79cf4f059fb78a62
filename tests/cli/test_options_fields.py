"""Every setting declared once: each command-line option that sets a field of a stage's settings
dataclass (or a keyword of its library function) has that field's default, and an option name
shared by several commands means the same there.

Options made by ``panoptool_cli.options.field_option`` take default and help from the field;
the others are matched to a field by their parameter name (or :data:`ALIASES`). ``train`` is
left out: its options are being rebuilt on the new TrainConfig (issue 15).
"""

from __future__ import annotations

import dataclasses
import inspect
import shlex

import click
import pytest

from panoptool.evaluation.contour_score import ContourScoreConfig
from panoptool.evaluation.runner import ReportConfig, evaluate
from panoptool.inference.maps import InferConfig
from panoptool.jobs.ablate import AblateConfig
from panoptool.jobs.demo import DemoConfig
from panoptool.postprocess.config import PostprocessConfig
from panoptool.predict.config import PredictConfig
from panoptool.synth.scenes import SynthConfig
from panoptool.targets.core import TargetConfig
from panoptool.visualize.render import VisualizeConfig
from panoptool_cli.main import LazyGroup
from panoptool_cli.options import FieldOption

#: command -> (arguments that make its options parse, the settings its options set: a
#: dataclass or a library function, whose keyword defaults count)
COMMANDS = {
    "synth": (["out"], [SynthConfig]),
    "make-targets": ([], [TargetConfig]),
    "postprocess": (["--out", "o"], [PostprocessConfig]),
    "predict": (["x.png", "--out", "o"], [PredictConfig, PostprocessConfig]),
    "infer": (["--out", "o"], [InferConfig]),
    "report": ([], [ReportConfig, evaluate]),
    "visualize": (["--out", "o"], [VisualizeConfig]),
    "demo": ([], [DemoConfig]),
    "ablate": (["--runs-dir", "r"], [AblateConfig]),
}

#: (command, parameter) -> (source, field, what the command makes of the option's value), or a
#: list of them for an option that sets several fields
ALIASES = {
    ("postprocess", "split_"): (PostprocessConfig, "split", None),
    ("predict", "split_"): (PostprocessConfig, "split", None),
    ("report", "no_cache"): (ReportConfig, "cache", lambda v: not v),
    ("report", "cache_dir"): (ReportConfig, "cache_dir", lambda v: v or ""),
    ("report", "contour_tolerance"): (ContourScoreConfig, "max_dist", None),
    ("report", "contour_nms"): (ContourScoreConfig, "nms", None),
    ("demo", "size"): [(DemoConfig, "height", lambda v: int(v.split("x")[0])),
                       (DemoConfig, "width", lambda v: int(v.split("x")[1]))],
    ("ablate", "train_args"): (AblateConfig, "train_args", lambda v: tuple(shlex.split(v))),
}

#: (command, parameter) whose default differs from its field's on purpose, and why
DIFFERENT = {
    ("postprocess", "min_area"): "None: 300, or 0 with --oracle (the command chooses)",
    ("infer", "root"): "None: $CITYSCAPES_DATASET (the command resolves it)",
}

#: fields that no option with a default sets, and why (every other field must have one)
NO_OPTION = {
    SynthConfig: set(), TargetConfig: set(), PostprocessConfig: set(),
    PredictConfig: {"inputs", "out", "checkpoint", "model",  # arguments without a default
                    "postprocess"},  # the derivation options
    InferConfig: {"out",  # a required option: no default
                  "channels_last"},  # automatic
    ReportConfig: set(), VisualizeConfig: set(),
    DemoConfig: {"dilation", "seed", "n_figures"},  # fixed by the demo
    AblateConfig: {"loss_terms", "necks",  # Table I and V's variants: the paper's
                   "area_scale"},  # --scale-areas measures it on the dataset
}

#: option names with another meaning in some commands, and why they keep it
ANOTHER_MEANING = {
    "--split": "the dataset split, except postprocess/predict's --split/--no-split refinement "
               "(postprocess names its dataset split --dataset-split for that reason)",
    "--workers": "processes of the stage's own work; infer's (and train's) load images",
}


def _defaults(source) -> dict:
    if dataclasses.is_dataclass(source):
        return {f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING
                         else f.default) for f in dataclasses.fields(source)}
    return {k: p.default for k, p in inspect.signature(source).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _same(cli_value, field_value) -> bool:
    """Equal as settings: tuples and lists alike, a choice's text and its number alike."""
    if isinstance(cli_value, (list, tuple)) and isinstance(field_value, (list, tuple)):
        return list(map(str, cli_value)) == list(map(str, field_value))
    if isinstance(cli_value, str) and not isinstance(field_value, str):
        return cli_value == str(field_value)
    return cli_value == field_value and type(cli_value) is type(field_value)


def option_fields(name: str) -> list[tuple[click.Option, object, str, object, object]]:
    """(option, source, field, the option's default as the command uses it, the field's
    default) for every option of ``name`` that sets a field (an option given in
    :data:`COMMANDS`' arguments or required has no default to compare and is left out)."""
    args, sources = COMMANDS[name]
    cmd = LazyGroup().get_command(None, name)
    params = cmd.make_context(name, list(args)).params
    found = []
    for opt in cmd.params:
        if not isinstance(opt, click.Option) or opt.required or set(opt.opts) & set(args):
            continue
        value = params[opt.name]
        if (name, opt.name) in ALIASES:
            alias = ALIASES[(name, opt.name)]
            matches = [(source, field, convert(value) if convert else value)
                       for source, field, convert in (alias if isinstance(alias, list)
                                                      else [alias])]
        elif isinstance(opt, FieldOption):
            matches = [(*opt.field_of, value)]
        else:  # by name, in every source that has it
            matches = [(s, opt.name, value) for s in sources if opt.name in _defaults(s)]
        found += [(opt, source, field, v, _defaults(source).get(field, dataclasses.MISSING))
                  for source, field, v in matches]
    return found


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_default_is_its_field_default(name):
    wrong = [f"{name} {opt.opts[0]}: {value!r} != {source.__qualname__}.{field} = {default!r}"
             for opt, source, field, value, default in option_fields(name)
             if (name, opt.name) not in DIFFERENT and not _same(value, default)]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_field_has_its_option(name):
    covered = {(source, field) for _, source, field, _, _ in option_fields(name)}
    for source in COMMANDS[name][1]:
        if not dataclasses.is_dataclass(source):
            continue
        missing = [f.name for f in dataclasses.fields(source)
                   if (source, f.name) not in covered and f.name not in NO_OPTION[source]]
        assert not missing, f"{name}: no option sets {source.__qualname__}.{missing}"


def test_options_made_from_fields_carry_the_fields_help():
    for name in COMMANDS:
        for opt, source, field, _, _ in option_fields(name):
            if isinstance(opt, FieldOption):
                help_ = dataclasses.fields(source)[
                    [f.name for f in dataclasses.fields(source)].index(field)].metadata["help"]
                assert opt.help.startswith(help_), (name, opt.opts)


def test_report_and_evaluate_agree_on_the_contour_and_coco_defaults():
    """report passes its options to evaluate() and ContourScoreConfig, which the jobs call
    with their defaults: the defaults must be the same."""
    found = {(s, f): (v, d) for _, s, f, v, d in option_fields("report")}
    for key in [(evaluate, "coco_ap"), (evaluate, "coco_backend"), (evaluate, "subset"),
                (evaluate, "boundary_ratio"), (ReportConfig, "boundary_ratio"),
                (ContourScoreConfig, "max_dist"), (ContourScoreConfig, "nms")]:
        assert key in found and _same(*found[key]), key


def test_an_option_name_means_the_same_in_every_command():
    """Options of one name that set the same field are one definition (same default, type and
    help); a name shared by the shared decorators (options.py) has one help everywhere, but
    for the names in ANOTHER_MEANING."""
    from panoptool_cli import options as shared

    by_field: dict = {}
    for name in COMMANDS:
        for opt, source, field, _, _ in option_fields(name):
            by_field.setdefault((opt.opts[0], source, field), []).append((name, opt))
    for (flag, source, field), uses in by_field.items():
        kinds = {(o.default, str(o.type), o.help) for _, o in uses
                 if (_, o.name) not in DIFFERENT}
        helps = {o.help.split(" Default:")[0] for _, o in uses}
        assert len(kinds) <= 1 or len(helps) == 1, (flag, [n for n, _ in uses])
    decorators = {"--root": shared.root_option, "--split": shared.split_option,
                  "--workers": shared.workers_option, "--device": shared.device_option,
                  "--overwrite": shared.overwrite_option, "--amp": shared.amp_option}
    for flag, decorator in decorators.items():
        reference = next(p for p in decorator(lambda **kw: None).__click_params__)
        for name in [*COMMANDS, "convert", "export", "bench"]:
            cmd = LazyGroup().get_command(None, name)
            for opt in cmd.params:
                if flag in opt.opts and flag not in ANOTHER_MEANING:
                    assert (opt.help, opt.default) == (reference.help, reference.default), \
                        (name, flag)


def test_field_option_fails_loudly_on_a_field_without_help():
    from panoptool_cli.options import field_option

    with pytest.raises(KeyError, match="no field"):
        field_option(TargetConfig, "dilatation")
    with pytest.raises(KeyError, match="metadata"):
        field_option(AblateConfig, "necks")
