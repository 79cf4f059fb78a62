"""``panoptool ablate``: the paper's ablations (Tables I-V, and VI beyond the paper) as
:class:`Step` s, table by table; a network, a result or a report shared by several tables is
made once.

Every stage but ``train`` is a library call with its settings dataclass
(:mod:`panoptool.jobs.stages`); ``train`` still runs as its subcommand.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from panoptool.errors import ConfigError
from panoptool.evaluation.contour_score import ContourScoreConfig
from panoptool.io.formats import CONFIG_JSON
from panoptool.jobs import stages
from panoptool.jobs.steps import PathLike, Step
from panoptool.postprocess.config import (CITYSCAPES_PIXELS, PostprocessConfig, scale_area,
                                          scaled_config)
from panoptool.targets.core import TargetConfig

TABLES = ("I", "II", "III", "IV", "V", "VI")
#: The tables ``ablate`` makes unless ``--tables`` says otherwise (Table VI, beyond the
#: paper, on request: ``--tables ...,VI``).
DEFAULT_TABLES = ("I", "II", "III", "IV", "V")
TABLE_TITLES = {
    "I": "Table I: contour loss terms",
    "II": "Table II: contour dilation rate",
    "III": "Table III: instance refinement",
    "IV": "Table IV: minimum instance area",
    "V": "Table V: shared vs separate neck, ResNet depth",
    "VI": "Table VI: derivation, the paper's vs seeded (postprocess --derivation)",
}
ALL_LOSS = "wbce,huber,nms"
#: Tables that also show the contour head's own score (``report --maps``: ODS / OIS F).
CONTOUR_TABLES = ("I", "II")
CONTOUR_COLUMNS = ("contour_ODS", "contour_OIS")
#: The settings each table varies: its leading columns (``report --compare --settings``).
TABLE_SETTINGS = {
    "I": "train.contour_loss",
    "II": "make-targets.dilation",
    "III": "postprocess.split,postprocess.merge",
    "IV": "postprocess.min_area",
    "V": "train.backbone,train.neck",
    "VI": "make-targets.dilation,postprocess.derivation",
}


@dataclass(frozen=True)
class AblateConfig:
    """Settings of ``panoptool ablate``.

    ``budget_minutes`` is the total training time, split evenly over the distinct networks
    the chosen tables need (a network shared by several tables is trained once).
    ``train=False`` gives the oracle rows only (no network is trained).
    ``min_area`` and ``min_areas`` are in pixels of a 1024x2048 image (the paper's values);
    they are multiplied by ``area_scale`` (the dataset's image area / 1024x2048, see
    :func:`scale_area`), and postprocess's eps, min-samples and cell are scaled with them
    (:func:`~panoptool.postprocess.config.scaled_config`); ``area_scale=1`` uses them as
    given.
    """

    # metadata["help"]: the help of the `ablate` option made from the field
    split: str = "val"
    train_split: str = field(default="train", metadata={
        "help": "Split the networks are trained on."})
    budget_minutes: float = field(default=60.0, metadata={
        "help": "Total training time, split evenly over the distinct networks the tables "
                "need."})
    tables: tuple[str, ...] = field(default=DEFAULT_TABLES, metadata={
        "help": "Which tables: I loss terms, II dilation, III refinement, IV min-area, V neck "
                "and depth; VI (beyond the paper, on request) the paper's vs the seeded "
                "derivation (postprocess --derivation) on Table II's networks and the oracle "
                "at each of --dilations."})
    oracle: bool = field(default=True, metadata={
        "help": "Add oracle rows (ground-truth maps) to Tables II-IV and VI."})
    train: bool = field(default=True, metadata={
        "help": "Train networks for the network rows; --no-train gives the oracle rows of "
                "Tables II-IV only."})
    fmt: str = field(default="md", metadata={"help": "Table file format."})
    backbone: str = field(default="resnet18", metadata={
        "help": "Encoder of every network except Table V's."})
    neck: str = field(default="separate", metadata={
        "help": "Neck of every network except Table V's."})
    dilation: int = field(default=2, metadata={
        "help": "Contour dilation rate of every row except Table II's."})
    loss_terms: tuple[str, ...] = ("wbce", "wbce,huber", "wbce,nms", ALL_LOSS)
    dilations: tuple[int, ...] = field(default=(1, 2, 3), metadata={
        "help": "Table II: dilation rates."})
    min_areas: tuple[int, ...] = field(default=(1, 100, 300, 500), metadata={
        "help": "Table IV: min-area values, in pixels of a 1024x2048 image."})
    min_area: int = field(default=300, metadata={
        "help": "Min-area of every row except Table IV's, in pixels of a 1024x2048 image "
                "(see --scale-areas)."})
    area_scale: float = 1.0
    backbones: tuple[str, ...] = field(default=("resnet18", "resnet34"), metadata={
        "help": "Table V: encoders to compare."})
    necks: tuple[str, ...] = ("shared", "separate")
    device: str = "auto"
    workers: int = 0
    train_args: tuple[str, ...] = field(default=(), metadata={
        "help": "Extra options for every `panoptool train`, e.g. \"--batch 2 --crop 256x512\"."})

    def __post_init__(self):
        for name in ("tables", "loss_terms", "dilations", "min_areas", "backbones", "necks",
                     "train_args"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "tables", tuple(t.strip().upper() for t in self.tables))
        bad = [t for t in self.tables if t not in TABLES]
        if bad or not self.tables:
            raise ConfigError(f"--tables must be a comma list of {','.join(TABLES)}, got "
                              f"{','.join(self.tables) or 'nothing'}")
        if self.fmt not in ("md", "csv"):
            raise ConfigError(f"--format must be md or csv, got {self.fmt!r}")
        if self.train and not self.budget_minutes > 0:
            raise ConfigError(f"--budget-minutes must be > 0, got {self.budget_minutes}")
        if not self.train and not self.oracle:
            raise ConfigError("nothing to do: --no-train and --no-oracle leave no rows")
        if any(d < 1 for d in self.dilations) or self.dilation < 1:
            raise ConfigError(f"dilation rates must be >= 1, got {self.dilations}")
        if any(a < 0 for a in self.min_areas) or self.min_area < 0:
            raise ConfigError(f"min areas must be >= 0, got {self.min_areas}")
        if not self.area_scale > 0:
            raise ConfigError(f"area_scale must be > 0, got {self.area_scale}")
        if self.split == self.train_split:
            raise ConfigError(f"--split and --train-split are both {self.split!r}: evaluate "
                              f"on images the network did not see")


@dataclass(frozen=True, order=True)
class TrainRun:
    """The settings that tell one ablation network from another."""

    loss: str
    dilation: int
    backbone: str
    neck: str

    @property
    def name(self) -> str:
        return f"{self.backbone}-{self.neck}-d{self.dilation}-{self.loss.replace(',', '_')}"


@dataclass(frozen=True)
class Refinement:
    """Postprocessing settings varied by Tables III and IV."""

    split: bool = True
    merge: bool = True
    min_area: int = 300
    derivation: str = "paper"  # Table VI: postprocess --derivation

    @property
    def name(self) -> str:
        seeded = "" if self.derivation == "paper" else f"-{self.derivation}"
        return f"{'split' if self.split else 'nosplit'}-{'merge' if self.merge else 'nomerge'}" \
               f"-a{self.min_area}{seeded}"

    def config(self, scaled: PostprocessConfig, *, maps: bool) -> PostprocessConfig:
        """The derivation's settings of this refinement: ``scaled`` (the defaults with their
        pixel sizes scaled to the images) with split, merge, min-area and derivation set;
        ``maps``: on a network's maps, where the seeded derivation has no band limit
        (``band_eps`` 0, as ``postprocess --maps`` and ``predict`` choose)."""
        config = dataclasses.replace(scaled, split=self.split, merge=self.merge,
                                     min_area=self.min_area, derivation=self.derivation,
                                     band_eps=None)
        return config.on_maps() if maps else config


@dataclass(frozen=True)
class Row:
    """One row of an ablation table: a source of maps (a network or the oracle of a dilation
    rate) and the refinement applied."""

    label: str
    source: TrainRun | int  # a network, or the dilation rate of the oracle's targets
    refinement: Refinement

    @property
    def key(self) -> str:
        src = f"oracle-d{self.source}" if isinstance(self.source, int) else self.source.name
        return f"{src}__{self.refinement.name}"


def ablation_rows(config: AblateConfig) -> dict[str, list[Row]]:
    """The rows of every chosen table, as in the paper."""
    c = config
    base = TrainRun(ALL_LOSS, c.dilation, c.backbone, c.neck)
    area = scale_area(c.min_area, c.area_scale)
    default = Refinement(True, True, area)
    tables: dict[str, list[Row]] = {}
    for t in c.tables:
        rows: list[Row] = []
        if t == "I" and c.train:
            rows = [Row(loss.replace(",", "+"), TrainRun(loss, c.dilation, c.backbone, c.neck),
                        default) for loss in c.loss_terms]
        elif t == "II":
            if c.train:
                rows += [Row(f"network d{d}", TrainRun(ALL_LOSS, d, c.backbone, c.neck),
                             default) for d in c.dilations]
            if c.oracle:
                rows += [Row(f"oracle d{d}", d, default) for d in c.dilations]
        elif t in ("III", "IV"):
            if t == "III":
                variants = [("none", Refinement(False, False, area)),
                            ("split", Refinement(True, False, area)),
                            ("split+merge", default)]
            else:
                variants = [(f"min-area {a}", Refinement(True, True, scale_area(a, c.area_scale)))
                            for a in c.min_areas]
            if c.train:
                rows += [Row(f"network {name}", base, ref) for name, ref in variants]
            if c.oracle:
                rows += [Row(f"oracle {name}", c.dilation, ref) for name, ref in variants]
        elif t == "VI":
            seeded = dataclasses.replace(default, derivation="seeded")
            for kind, on in (("network", c.train), ("oracle", c.oracle)):
                if on:
                    rows += [Row(f"{kind} d{d} {ref.derivation}",
                                 TrainRun(ALL_LOSS, d, c.backbone, c.neck) if kind == "network"
                                 else d, ref)
                             for d in c.dilations for ref in (default, seeded)]
        elif t == "V" and c.train:
            rows = [Row(f"{b} {n} neck", TrainRun(ALL_LOSS, c.dilation, b, n), default)
                    for b in c.backbones for n in c.necks]
        if rows:
            tables[t] = rows
    if not tables:
        raise ConfigError(f"tables {','.join(c.tables)} have no rows with these settings "
                          f"(Tables I and V need trained networks)")
    return tables


def ablation_table_path(reports_dir: PathLike, table: str, fmt: str) -> Path:
    """``reports/ablation_table_<I..V>.<md|csv>``."""
    return Path(reports_dir) / f"ablation_table_{table}.{fmt}"


#: Tables are run cheapest first, so that a stopped run already has whole tables.
RUN_ORDER = ("III", "IV", "II", "VI", "I", "V")


class _AblatePlan:
    """The steps of the ablations, collected row by row; a step asked for twice is added once.

    Layout below ``runs_dir``: ``targets/d<k>/``, ``runs/<network>/``, ``maps/<network>/``,
    ``results/<row key>/``, ``reports/<row key>/``.
    """

    def __init__(self, root: PathLike, runs_dir: PathLike, reports_dir: PathLike,
                 config: AblateConfig, n_networks: int, minutes: float):
        self.root, self.runs_dir, self.reports_dir = str(root), Path(runs_dir), reports_dir
        self.config, self.n_networks, self.minutes = config, n_networks, minutes
        self.steps: list[Step] = []
        self.names: set[str] = set()
        self.n_trained = 0
        self.scaled = scaled_config(PostprocessConfig(),
                                    round(config.area_scale * CITYSCAPES_PIXELS))

    def add(self, step: Step) -> str:
        if step.name not in self.names:
            self.names.add(step.name)
            self.steps.append(step)
        return step.name

    def targets_dir(self, d: int) -> Path:
        return self.runs_dir / "targets" / f"d{d}"

    def maps_dir(self, net: TrainRun) -> Path:
        return self.runs_dir / "maps" / net.name

    def targets(self, d: int, split: str) -> str:
        """make-targets of one split at dilation ``d``; returns the step's name."""
        return self.add(Step(
            f"targets-d{d}-{split}", call=stages.make_targets, kwargs=dict(
                root=self.root, split=split, out=self.targets_dir(d),
                config=TargetConfig(dilation=d), workers=self.config.workers),
            outputs=(self.targets_dir(d) / split,), overwrite_on=("redo",),
            title=f"make-targets: {split}, dilation {d}"))

    def network(self, net: TrainRun) -> str:
        """train (the subcommand) and infer of one network; returns the infer step's name."""
        from panoptool.inference.maps import InferConfig

        c, run = self.config, self.runs_dir / "runs" / net.name
        if f"train-{net.name}" not in self.names:
            self.n_trained += 1
        dep = self.targets(net.dilation, c.train_split)
        self.add(Step(
            f"train-{net.name}",
            ("train", "--root", self.root, "--targets", self.targets_dir(net.dilation),
             "--out", run, "--backbone", net.backbone, "--neck", net.neck,
             "--contour-loss", net.loss, "--max-minutes", f"{self.minutes:.4g}",
             "--device", c.device, "--workers", str(c.workers), *c.train_args),
            outputs=(run / "checkpoints" / "last.pt",), after=(dep,),
            resume_args=("--resume",), redo_args=("--overwrite",),
            title=f"train {self.n_trained}/{self.n_networks}: {net.name}, "
                  f"{self.minutes:.3g} min"))
        infer = InferConfig(checkpoint=str(run / "checkpoints" / "last.pt"), root=self.root,
                            split=c.split, out=str(self.maps_dir(net)), device=c.device)
        return self.add(Step(
            f"infer-{net.name}", call=stages.infer, kwargs=dict(config=infer),
            outputs=(self.maps_dir(net) / CONFIG_JSON,), after=(f"train-{net.name}",),
            overwrite_on=("redo",), title=f"infer: {net.name}"))

    def row(self, row: Row) -> str:
        """postprocess and report of one row; returns the report step's name."""
        c, results = self.config, self.runs_dir / "results" / row.key
        network = isinstance(row.source, TrainRun)
        config = row.refinement.config(self.scaled, maps=network)
        if network:
            dep = self.network(row.source)
            call, source = stages.postprocess_maps, dict(maps=self.maps_dir(row.source))
        else:
            dep = self.targets(row.source, c.split)
            call, source = stages.postprocess_oracle, dict(
                root=self.root, split=c.split, targets=self.targets_dir(row.source))
        self.add(Step(f"postprocess-{row.key}", call=call, kwargs=dict(
            **source, out=results, config=config, workers=c.workers),
            outputs=(results / CONFIG_JSON,), after=(dep,),
            overwrite_on=("resume", "redo"), title=f"postprocess: {row.key}"))
        # a network's report also scores its contour maps (Tables I and II show it)
        maps = dict(maps=self.maps_dir(row.source), contour=ContourScoreConfig()) \
            if network else {}
        report = self.runs_dir / "reports" / row.key
        return self.add(Step(f"report-{row.key}", call=stages.report, kwargs=dict(
            root=self.root, split=c.split, results=results, out=report, **maps,
            workers=c.workers), outputs=(report / "metrics.json",),
            after=(f"postprocess-{row.key}",), title=f"report: {row.key}"))

    def table(self, t: str, rows: list[Row]) -> str:
        """The comparison table of the rows' reports."""
        from panoptool.evaluation.compare import DEFAULT_COLUMNS

        out = ablation_table_path(self.reports_dir, t, self.config.fmt)
        columns = DEFAULT_COLUMNS + CONTOUR_COLUMNS if t in CONTOUR_TABLES else None
        return self.add(Step(f"table-{t}", call=stages.compare_table, kwargs=dict(
            runs=[(r.label, self.runs_dir / "reports" / r.key) for r in rows],
            settings=TABLE_SETTINGS[t], out=out, columns=columns, fmt=self.config.fmt),
            outputs=(out,), after=tuple(f"report-{r.key}" for r in rows),
            title=TABLE_TITLES[t]))


def ablate_steps(root: PathLike, runs_dir: PathLike, reports_dir: PathLike,
                 config: AblateConfig) -> tuple[list[Step], dict[str, list[Row]], float]:
    """The steps of the ablations, table by table (cheapest first, see :data:`RUN_ORDER`);
    a network, a result or a report shared by several tables is made once.

    Layout below ``runs_dir``: ``targets/d<k>/`` (make-targets of both splits per dilation),
    ``runs/<network>/`` (train), ``maps/<network>/`` (infer),
    ``results/<source>__<refinement>/`` (postprocess), ``reports/<source>__<refinement>/``
    (report); the tables go to ``reports_dir``.

    Returns
    -------
    steps, the rows of each table (in the order of ``config.tables``), and the training
    minutes of each network.
    """
    tables = ablation_rows(config)
    networks = {r.source for rs in tables.values() for r in rs if isinstance(r.source, TrainRun)}
    minutes = config.budget_minutes / len(networks) if networks else 0.0
    steps = _AblatePlan(root, runs_dir, reports_dir, config, len(networks), minutes)
    for t in sorted(tables, key=RUN_ORDER.index):
        for row in tables[t]:
            steps.row(row)
        steps.table(t, tables[t])
    return steps.steps, tables, minutes
