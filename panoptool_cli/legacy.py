"""Step markers of an earlier panoptool: ``demo`` and ``ablate`` folders made before their
stages became library calls hold, for each step, the subcommand it ran (``args``). This module
reads such a command line with the real subcommand's options and gives the settings the
library call of the same step records now (:attr:`panoptool.jobs.steps.Step.settings`), so
that an old folder resumes: a finished step whose command meant exactly the same call is
skipped, any other is redone.

Only what those versions of demo and ablate ran is read (synth, make-targets, infer,
postprocess, report, visualize). An old ``train`` marker is not read: its settings became
train's ``cpu`` preset in the same version, so an old demo folder trains once more.
"""

from __future__ import annotations

from typing import Sequence

import click


def _parse(args: Sequence[str]) -> tuple[str, dict] | None:
    from panoptool_cli.main import LazyGroup

    name = str(args[0]) if args else ""
    cmd = LazyGroup(name="panoptool").get_command(None, name)  # type: ignore[arg-type]
    if cmd is None:
        return None
    try:
        ctx = cmd.make_context(name, [str(a) for a in args[1:]], resilient_parsing=False)
    except (click.ClickException, click.exceptions.Exit):
        return None
    return name, ctx.params


def _postprocess(p: dict):
    from panoptool.jobs import stages
    from panoptool.postprocess.config import PostprocessConfig
    from panoptool_cli.options import postprocess_config

    if p["instance_format"] != "both":
        return None
    min_area = p["min_area"]
    if min_area is None:  # as the command chooses
        min_area = 0 if p["oracle"] else PostprocessConfig.min_area
    config = postprocess_config(
        split_=p["split_"], merge=p["merge"], min_area=min_area, eps=p["eps"],
        min_samples=p["min_samples"], cell=p["cell"], contour_threshold=p["contour_threshold"],
        connectivity=p["connectivity"], fill_contours=p["fill_contours"],
        derivation=p["derivation"], band_eps=p["band_eps"])
    if not p["oracle"]:
        config = config.on_maps()
    if p["oracle"]:
        return stages.postprocess_oracle, dict(root=p["root"], split=p["dataset_split"],
                                               targets=p["targets"], out=p["out"],
                                               config=config, workers=p["workers"])
    return stages.postprocess_maps, dict(maps=p["maps"], out=p["out"], config=config,
                                         workers=p["workers"])


#: report options that demo and ablate never gave: a command with another value is unknown
_REPORT_UNUSED = {"no_cache": False, "cache_dir": None, "instances": None,
                  "coco_gt": None, "coco_ap": True, "coco_backend": "pycocotools",
                  "boundary": False, "subset": False}


def _report(p: dict):
    from panoptool.evaluation.contour_score import ContourScoreConfig
    from panoptool.evaluation.metrics.boundary import DEFAULT_RATIO
    from panoptool.jobs import stages

    if any(p[k] != v for k, v in _REPORT_UNUSED.items()) or p["boundary_ratio"] != DEFAULT_RATIO:
        return None
    if p["compare"]:
        runs = [tuple(spec.split("=", 1)) for spec in p["compare"]]
        columns = p["columns"].split(",") if p["columns"] else None
        return stages.compare_table, dict(runs=runs, settings=p["settings"], out=p["out"],
                                          columns=columns, fmt=p["format_"] or "md")
    if p["results_dir"] is None or p["out"] is None or p["format_"] is not None:
        return None
    maps = {} if p["maps_dir"] is None else dict(
        maps=p["maps_dir"], contour=ContourScoreConfig(max_dist=p["contour_tolerance"],
                                                       nms=p["contour_nms"]))
    return stages.report, dict(root=p["root"], split=p["split"], results=p["results_dir"],
                               out=p["out"], **maps, workers=p["workers"])


def _call(name: str, p: dict):
    """The library call (function, keyword arguments) that subcommand ``name`` made of its
    parameters ``p``, as the jobs' steps make it; None for what the jobs do not run."""
    from panoptool.jobs import stages
    from panoptool.synth.scenes import SynthConfig
    from panoptool.targets.core import TargetConfig
    from panoptool.visualize.render import VisualizeConfig

    if name == "synth":
        return stages.synth, dict(out=p["out"], config=SynthConfig(
            n=p["n"], height=p["height"], width=p["width"], seed=p["seed"], split=p["split"]),
            workers=p["workers"])
    if name == "make-targets":
        return stages.make_targets, dict(root=p["root"], split=p["split"], out=p["out"],
                                         config=TargetConfig(dilation=p["dilation"]),
                                         workers=p["workers"])
    if name == "infer":
        from panoptool.inference.maps import InferConfig

        return stages.infer, dict(config=InferConfig(
            checkpoint=p["checkpoint"], root=p["root"], split=p["split"], out=p["out"],
            device=p["device"], amp=p["amp"], batch=p["batch"], threads=p["threads"],
            workers=p["workers"], model=p["model"]))
    if name == "postprocess":
        return _postprocess(p)
    if name == "report":
        return _report(p)
    if name == "visualize" and p["curve"] is None:
        return stages.visualize, dict(root=p["root"], out=p["out"], config=VisualizeConfig(
            split=p["split"], n=p["n"], tile_width=p["tile_width"]), maps=p["maps"],
            results=p["results"], targets=p["targets"], run=p["run"], workers=p["workers"])
    return None


def settings_of_command(args: Sequence[str]) -> dict | None:
    """The settings (:attr:`~panoptool.jobs.steps.Step.settings`) of the library call that the
    command line ``args`` (``["postprocess", "--maps", ...]``) stands for; None when it is not
    one that demo or ablate ran, or does not parse."""
    from panoptool.errors import PanoptoolError
    from panoptool.jobs.steps import Step

    parsed = _parse(args)
    if parsed is None:
        return None
    try:
        call = _call(*parsed)
        if call is None:
            return None
        return Step("legacy", call=call[0], kwargs=call[1]).settings
    except PanoptoolError:  # a setting the dataclass rejects: not a call of this version
        return None
