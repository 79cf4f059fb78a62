"""``panoptool demo``: the whole pipeline on a small synthetic dataset, as :class:`Step` s.

Every stage is a library call with its settings dataclass (:mod:`panoptool.jobs.stages`);
``train`` trains with the ``cpu`` preset (:data:`DEMO_TRAIN_PRESET`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from panoptool.errors import ConfigError
from panoptool.io.formats import CONFIG_JSON
from panoptool.jobs import stages
from panoptool.jobs.steps import PathLike, Step
from panoptool.postprocess.config import (CITYSCAPES_PIXELS, PostprocessConfig, scale_area,
                                          scaled_config)
from panoptool.synth.scenes import SynthConfig
from panoptool.targets.core import TargetConfig
from panoptool.visualize.render import VisualizeConfig

#: The demo's training settings: train's ``cpu`` preset (panoptool.training.config.PRESETS),
#: those of the issue-6 figure (scripts/train_figure.sh), which learn most in minutes on a CPU.
DEMO_TRAIN_PRESET = "cpu"
#: The same as ``panoptool train`` options (for scripts that call the subcommand).
DEMO_TRAIN_ARGS = ("--preset", DEMO_TRAIN_PRESET)
#: What ``demo --dataset`` takes: the formats synth writes.
DATASET_FORMATS = ("cityscapes", "coco-panoptic")


@dataclass(frozen=True)
class DemoConfig:
    """Settings of ``panoptool demo``: sizes chosen so that everything fits in 15 minutes on
    2 CPU cores. ``metadata["help"]``: the help of the ``demo`` option made from a field
    (``--size`` sets ``height`` and ``width``)."""

    dataset: str = field(default="cityscapes", metadata={
        "help": "Format of the synthetic dataset the demo makes and runs on: cityscapes "
                "(gtFine/, leftImg8bit/) or coco-panoptic (COCO's layout: "
                "annotations/panoptic_<split>.json + PNGs, images in <split>/). Same scenes, "
                "same classes; the stages find the format from --root."})
    minutes: float = field(default=12.0, metadata={
        "help": "Training time budget in minutes; the other stages take under a minute on 2 "
                "cores."})
    n_train: int = field(default=120, metadata={"help": "Synthetic training images."})
    n_val: int = field(default=12, metadata={"help": "Synthetic validation images."})
    height: int = 256
    width: int = 512
    backbone: str = field(default="resnet18", metadata={
        "help": "Encoder of the network (resnet18/34/50/101)."})
    dilation: int = 2
    seed: int = 0
    device: str = "auto"
    workers: int = 0
    n_figures: int = 4

    @property
    def area_scale(self) -> float:
        return self.height * self.width / CITYSCAPES_PIXELS

    @property
    def min_area(self) -> int:
        """The paper's min-area (300 px at 1024x2048) scaled to the demo's image size."""
        return scale_area(300, self.area_scale)

    def __post_init__(self):
        if self.dataset not in DATASET_FORMATS:
            raise ConfigError(f"--dataset must be one of {', '.join(DATASET_FORMATS)}, got "
                              f"{self.dataset!r}")
        if not 0 < self.minutes <= 24 * 60:
            raise ConfigError(f"--minutes must be in (0, 1440], got {self.minutes}")
        for name in ("n_train", "n_val", "n_figures"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.height < 64 or self.width < 64 or self.height % 32 or self.width % 32:
            raise ConfigError(f"demo image size must be multiples of 32 and >= 64, got "
                              f"{self.height}x{self.width}")


def demo_layout(out: PathLike) -> dict[str, Path]:
    """Where the demo writes each stage's output."""
    out = Path(out)
    return {"data": out / "data", "targets": out / "targets", "run": out / "runs" / "demo",
            "maps": out / "maps" / "demo", "results": out / "results" / "demo",
            "report": out / "reports" / "demo", "figures": out / "figures",
            "state": out / ".steps"}


def demo_postprocess_config(config: DemoConfig) -> PostprocessConfig:
    """The derivation's defaults scaled to the demo's image size (min-area: ``min_area``)."""
    scaled = scaled_config(PostprocessConfig(), round(config.area_scale * CITYSCAPES_PIXELS))
    return dataclasses.replace(scaled, min_area=config.min_area)


def _format_kwarg(config: DemoConfig) -> dict:
    """synth's ``format`` where it is not the default, so that the steps of a Cityscapes
    demo keep the settings they recorded before the option existed (no redo)."""
    return {} if config.dataset == "cityscapes" else {"format": config.dataset}


def _data_steps(p: dict[str, Path], config: DemoConfig) -> list[Step]:
    """synth and make-targets of both splits (synth in ``config.dataset``'s format; the
    other stages find it from the data folder)."""
    data, workers = str(p["data"]), config.workers
    size = dict(height=config.height, width=config.width)
    steps = []
    for split, n, seed, title in (
            ("train", config.n_train, config.seed,
             f"synth: {config.n_train} training images {config.height}x{config.width}"),
            ("val", config.n_val, config.seed + 1000,
             f"synth: {config.n_val} validation images")):
        steps.append(Step(f"synth-{split}", call=stages.synth, kwargs=dict(
            out=p["data"], config=SynthConfig(n=n, seed=seed, split=split, **size),
            workers=workers, **_format_kwarg(config)), outputs=(p["data"] / f"synth-{split}.json",), title=title))
    for split, title in (("train", "training split"), ("val", "validation split")):
        steps.append(Step(f"targets-{split}", call=stages.make_targets, kwargs=dict(
            root=data, split=split, out=p["targets"],
            config=TargetConfig(dilation=config.dilation), workers=workers),
            outputs=(p["targets"] / split,), after=(f"synth-{split}",),
            overwrite_on=("redo",), title=f"make-targets: {title}"))
    return steps


def demo_steps(out: PathLike, config: DemoConfig) -> list[Step]:
    """The demo: synth train + val, make-targets, train, infer, postprocess, report,
    visualize."""
    from panoptool.inference.maps import InferConfig  # imports torch: only where it runs
    from panoptool.training.config import TrainConfig

    p = demo_layout(out)
    data, workers = str(p["data"]), config.workers
    checkpoint = p["run"] / "checkpoints" / "last.pt"
    train = TrainConfig(root=data, targets=str(p["targets"]), out=str(p["run"]),
                        backbone=config.backbone, max_minutes=config.minutes,
                        device=config.device, preset=DEMO_TRAIN_PRESET)
    infer = InferConfig(checkpoint=str(checkpoint), root=data, split="val", out=str(p["maps"]),
                        device=config.device)
    return [
        *_data_steps(p, config),
        Step("train", call=stages.train, kwargs=dict(config=train),
             outputs=(checkpoint, p["run"] / "metrics.csv"), after=("targets-train",),
             overwrite_on=("redo",), resumes=True,
             title=f"train: {config.backbone}, {config.minutes:g} minutes"),
        Step("infer", call=stages.infer, kwargs=dict(config=infer),
             outputs=(p["maps"] / CONFIG_JSON,), after=("train", "synth-val"),
             overwrite_on=("redo",), title="infer: prediction maps of the validation split"),
        Step("postprocess", call=stages.postprocess_maps, kwargs=dict(
            maps=p["maps"], out=p["results"], config=demo_postprocess_config(config),
            workers=workers), outputs=(p["results"] / CONFIG_JSON,), after=("infer",),
            overwrite_on=("resume", "redo"), title="postprocess: instances and panoptic results"),
        Step("report", call=stages.report, kwargs=dict(
            root=data, split="val", results=p["results"], out=p["report"], workers=workers),
            outputs=(p["report"] / "metrics.json",), after=("postprocess",),
            title="report: mIoU / AP / PQ"),
        Step("visualize", call=stages.visualize, kwargs=dict(
            root=data, out=p["figures"], config=VisualizeConfig(split="val", n=config.n_figures),
            maps=p["maps"], results=p["results"], targets=p["targets"], run=p["run"],
            workers=workers),
            outputs=(p["figures"] / "training_curve.png",),
            after=("report", "targets-val"), title="visualize: figure panels, training curve"),
    ]
