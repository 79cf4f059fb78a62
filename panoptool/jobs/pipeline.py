"""Multi-stage jobs: ``panoptool demo`` (the whole pipeline) and ``panoptool ablate`` (the
paper's Tables I-V), as lists of :class:`Step`.

A step is one panoptool subcommand with its arguments, the files it produces and the steps
whose files it reads. Steps run through the same command-line contract a user types (the
caller passes an ``invoke`` function that runs one subcommand in this process), so every
stage shows its own progress bar and every stage error reaches the user as panoptool's
one-line message.

Resuming works like ``make``: after a step succeeds, a small marker
``<state>/<step>.json`` records its arguments. On the next run a step is skipped when its
marker holds the same arguments, its outputs exist and no step it depends on ran again since;
a step that was interrupted (outputs but no marker) is continued with its ``resume_args``
(e.g. ``train --resume``); a step whose arguments or inputs changed is redone with its
``redo_args`` (e.g. ``--overwrite``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from panoptool.errors import ConfigError, InputError, PanoptoolError
from panoptool.io.files import read_json, write_json
from panoptool.postprocess.config import (CITYSCAPES_PIXELS, PostprocessConfig, scale_area,
                                          scaled_config)

PathLike = str | os.PathLike

#: Runs one panoptool subcommand: ``invoke(["make-targets", "--root", ...])``; raises a
#: :class:`PanoptoolError` on failure.
Invoke = Callable[[Sequence[str]], None]


@dataclass(frozen=True)
class Step:
    """One subcommand of a multi-stage job.

    Attributes
    ----------
    name : unique, file-name safe (``[A-Za-z0-9._-]``); names the marker and the header.
    args : the subcommand and its options, e.g. ``("report", "--root", "data", ...)``.
    outputs : files or folders that exist once the step is done.
    after : names of the steps whose outputs this one reads (they come earlier in the list).
    resume_args : appended when an earlier attempt was interrupted (outputs, no marker).
    redo_args : appended when the step is run again over finished outputs (its arguments or
        its inputs changed).
    title : a human description for the header.
    """

    name: str
    args: tuple[str, ...]
    outputs: tuple[Path, ...] = ()
    after: tuple[str, ...] = ()
    resume_args: tuple[str, ...] = ()
    redo_args: tuple[str, ...] = ()
    title: str = ""

    def __post_init__(self):
        if not re.fullmatch(r"[A-Za-z0-9._-]+", self.name):
            raise ConfigError(f"step name {self.name!r} must match [A-Za-z0-9._-]+")
        if not self.args:
            raise ConfigError(f"step {self.name!r} has no command")
        object.__setattr__(self, "args", tuple(str(a) for a in self.args))
        object.__setattr__(self, "outputs", tuple(Path(p) for p in self.outputs))

    @property
    def command_line(self) -> str:
        return "panoptool " + shlex.join(self.args)


@dataclass(frozen=True)
class StepStatus:
    """What :func:`plan` decided for one step: ``skip``, ``run``, ``resume`` or ``redo``."""

    step: Step
    action: str
    reason: str


#: Options that change how a step runs but not what it makes: a new value does not redo it.
RUNTIME_OPTIONS = ("--workers", "--device")


def _settings(args: Sequence[str]) -> list[str]:
    """``args`` without the :data:`RUNTIME_OPTIONS` and their values.

    >>> _settings(["train", "--workers", "2", "--lr", "0.1", "--device", "cpu"])
    ['train', '--lr', '0.1']
    """
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in RUNTIME_OPTIONS:
            skip = True
        else:
            out.append(a)
    return out


def _marker(state_dir: Path, step: Step) -> Path:
    return state_dir / f"{step.name}.json"


def _read_marker(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = read_json(path)
    except InputError:
        return None  # a damaged marker only means "redo"
    return data if isinstance(data, dict) else None


def _decide(step: Step, state_dir: Path, rerun: set[str],
            finished: dict[str, float]) -> StepStatus:
    marker = _read_marker(_marker(state_dir, step))
    have_outputs = bool(step.outputs) and all(p.exists() for p in step.outputs)
    some_outputs = any(p.exists() for p in step.outputs)
    if marker is None:
        if some_outputs:
            return StepStatus(step, "resume", "an earlier run was interrupted")
        return StepStatus(step, "run", "not done yet")
    if _settings(marker.get("args") or []) != _settings(step.args):
        return StepStatus(step, "redo", "its settings changed")
    if not have_outputs:
        return StepStatus(step, "redo" if some_outputs else "run", "outputs are missing")
    stale = [d for d in step.after
             if d in rerun or finished.get(d, 0.0) > float(marker.get("finished", 0.0))]
    if stale:
        return StepStatus(step, "redo", f"its input changed ({', '.join(stale)})")
    return StepStatus(step, "skip", "done")


def plan(steps: Sequence[Step], state_dir: PathLike, *, redo: bool = False) -> list[StepStatus]:
    """Decide for every step whether it is done, runs, resumes or is redone.

    A step is redone when any step it depends on will run, so the plan is what
    :func:`run_steps` will do if nothing fails.
    """
    state_dir = Path(state_dir)
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ConfigError(f"duplicate step name(s): {', '.join(dup)}")
    known: set[str] = set()
    rerun: set[str] = set()
    finished: dict[str, float] = {}
    out = []
    for step in steps:
        missing = [d for d in step.after if d not in known]
        if missing:
            raise ConfigError(f"step {step.name!r} depends on {missing}, which do not come "
                              f"before it")
        status = _decide(step, state_dir, rerun, finished)
        if redo and status.action in ("skip", "resume"):
            status = StepStatus(step, "redo", "--overwrite")
        if status.action != "skip":
            rerun.add(step.name)
        else:
            marker = _read_marker(_marker(state_dir, step)) or {}
            finished[step.name] = float(marker.get("finished", 0.0))
        known.add(step.name)
        out.append(status)
    return out


class StepError(PanoptoolError):
    """A step of a multi-stage job failed; the message is the stage's own, prefixed with the
    step's name."""


def run_steps(steps: Sequence[Step], state_dir: PathLike, invoke: Invoke, *,
              redo: bool = False, console=None) -> list[StepStatus]:
    """Run the steps that are not done, in order.

    Parameters
    ----------
    steps : in dependency order.
    state_dir : folder of the step markers.
    invoke : runs one subcommand (see :data:`Invoke`); what it prints to stdout is kept in
        ``<state_dir>/<step>.log``.
    redo : run every step again (with its ``redo_args``).
    console : a rich console for the step headers (default: the runner's, on stderr).

    Returns
    -------
    The plan that was carried out.

    Raises
    ------
    StepError
        When a step fails: its message names the step and carries the stage's message.
    """
    from rich.markup import escape

    if console is None:
        from panoptool.runtime.pool import console
    state_dir = Path(state_dir)
    statuses = plan(steps, state_dir, redo=redo)
    n = len(statuses)
    for i, status in enumerate(statuses, start=1):
        step = status.step
        head = escape(f"[{i}/{n}] {step.title or step.name}")
        if status.action == "skip":
            console.print(f"[dim]{head}: done, skipped[/dim]")
            continue
        args = list(step.args)
        if status.action == "resume":
            args += step.resume_args
        elif status.action == "redo":
            args += step.redo_args
        console.rule(f"[bold]{head}", align="left")
        console.print(f"[dim]{escape(shlex.join(['panoptool', *args]))}  "
                      f"({escape(status.reason)})[/dim]", highlight=False, soft_wrap=True)
        marker = _marker(state_dir, step)
        marker.unlink(missing_ok=True)
        start = time.time()
        log = state_dir / f"{step.name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        try:
            # the stage's stdout (its tables) goes to a log, so that the job's own stdout
            # holds only its results; progress bars and messages stay on stderr
            with open(log, "w", encoding="utf-8") as fh, contextlib.redirect_stdout(fh):
                invoke(args)
        except PanoptoolError as exc:
            raise StepError(f"{step.name}: {exc}") from exc
        seconds = time.time() - start
        write_json(marker, {"args": list(step.args), "finished": time.time(),
                            "seconds": round(seconds, 2)})
        console.print(f"[dim]{escape(step.name)}: done in {seconds:.1f} s[/dim]",
                      highlight=False)
    return statuses


# --- demo ----------------------------------------------------------------------------------

def scaled_postprocess_args(scale: float) -> tuple:
    """``postprocess`` options that scale its pixel sizes to an image ``scale`` times as large
    in area as 1024x2048, where the defaults hold: ``--eps`` and ``--cell`` (lengths) by
    ``sqrt(scale)``, ``--min-samples`` (a count of pixels) by ``scale``. ``--min-area`` is
    scaled by the callers
    (:func:`~panoptool.postprocess.config.scale_area`), as they choose its value.

    >>> scaled_postprocess_args(256 * 512 / (1024 * 2048))
    ('--eps', 5.0, '--min-samples', 6, '--cell', 1.0)
    """
    c = scaled_config(PostprocessConfig(), round(scale * CITYSCAPES_PIXELS))
    return ("--eps", c.eps, "--min-samples", c.min_samples, "--cell", c.cell)


#: The demo's training settings: train's ``cpu`` preset (panoptool.training.config.PRESETS),
#: those of the issue-6 figure (scripts/train_figure.sh), which learn most in minutes on a CPU.
DEMO_TRAIN_ARGS = ("--preset", "cpu")


@dataclass(frozen=True)
class DemoConfig:
    """Settings of ``panoptool demo``: sizes chosen so that everything fits in 15 minutes on
    2 CPU cores."""

    minutes: float = 12.0
    n_train: int = 120
    n_val: int = 12
    height: int = 256
    width: int = 512
    backbone: str = "resnet18"
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


def demo_steps(out: PathLike, config: DemoConfig) -> list[Step]:
    """The demo: synth train + val, make-targets, train, infer, postprocess, report,
    visualize."""
    from panoptool.io.formats import CONFIG_JSON

    p = demo_layout(out)
    data, workers = str(p["data"]), str(config.workers)
    steps = [
        Step("synth-train", ("synth", data, "--n", config.n_train, "--height", config.height,
                             "--width", config.width, "--seed", config.seed,
                             "--split", "train", "--workers", workers),
             outputs=(p["data"] / "synth-train.json",),
             title=f"synth: {config.n_train} training images {config.height}x{config.width}"),
        Step("synth-val", ("synth", data, "--n", config.n_val, "--height", config.height,
                           "--width", config.width, "--seed", config.seed + 1000,
                           "--split", "val", "--workers", workers),
             outputs=(p["data"] / "synth-val.json",),
             title=f"synth: {config.n_val} validation images"),
        Step("targets-train", ("make-targets", "--root", data, "--split", "train",
                               "--dilation", config.dilation, "--out", p["targets"],
                               "--workers", workers),
             outputs=(p["targets"] / "train",), after=("synth-train",),
             redo_args=("--overwrite",), title="make-targets: training split"),
        Step("targets-val", ("make-targets", "--root", data, "--split", "val",
                             "--dilation", config.dilation, "--out", p["targets"],
                             "--workers", workers),
             outputs=(p["targets"] / "val",), after=("synth-val",),
             redo_args=("--overwrite",), title="make-targets: validation split"),
        Step("train", ("train", "--root", data, "--targets", p["targets"], "--out", p["run"],
                       "--backbone", config.backbone, "--max-minutes", config.minutes,
                       *DEMO_TRAIN_ARGS, "--device", config.device),
             outputs=(p["run"] / "checkpoints" / "last.pt", p["run"] / "metrics.csv"),
             after=("targets-train",), resume_args=("--resume",),
             redo_args=("--overwrite",),
             title=f"train: {config.backbone}, {config.minutes:g} minutes"),
        Step("infer", ("infer", "--checkpoint", p["run"] / "checkpoints" / "last.pt",
                       "--root", data, "--split", "val", "--out", p["maps"],
                       "--device", config.device),
             outputs=(p["maps"] / CONFIG_JSON,), after=("train", "synth-val"),
             redo_args=("--overwrite",), title="infer: prediction maps of the validation split"),
        Step("postprocess", ("postprocess", "--maps", p["maps"], "--out", p["results"],
                             "--min-area", config.min_area,
                             *scaled_postprocess_args(config.area_scale), "--workers", workers),
             outputs=(p["results"] / CONFIG_JSON,), after=("infer",),
             resume_args=("--overwrite",), redo_args=("--overwrite",),
             title="postprocess: instances and panoptic results"),
        Step("report", ("report", "--root", data, "--split", "val", "--results", p["results"],
                        "--out", p["report"], "--workers", workers),
             outputs=(p["report"] / "metrics.json",), after=("postprocess",),
             title="report: mIoU / AP / PQ"),
        Step("visualize", ("visualize", "--root", data, "--split", "val", "--maps", p["maps"],
                           "--results", p["results"], "--targets", p["targets"],
                           "--out", p["figures"], "--n", config.n_figures, "--run", p["run"],
                           "--workers", workers),
             outputs=(p["figures"] / "training_curve.png",),
             after=("report", "targets-val"), title="visualize: figure panels, training curve"),
    ]
    return steps


# --- ablations (the paper's Tables I-V) --------------------------------------------------------

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
    (:func:`scaled_postprocess_args`); ``area_scale=1`` uses them as given.
    """

    split: str = "val"
    train_split: str = "train"
    budget_minutes: float = 60.0
    tables: tuple[str, ...] = DEFAULT_TABLES
    oracle: bool = True
    train: bool = True
    fmt: str = "md"
    backbone: str = "resnet18"
    neck: str = "separate"
    dilation: int = 2
    loss_terms: tuple[str, ...] = ("wbce", "wbce,huber", "wbce,nms", ALL_LOSS)
    dilations: tuple[int, ...] = (1, 2, 3)
    min_areas: tuple[int, ...] = (1, 100, 300, 500)
    min_area: int = 300
    area_scale: float = 1.0
    backbones: tuple[str, ...] = ("resnet18", "resnet34")
    necks: tuple[str, ...] = ("shared", "separate")
    device: str = "auto"
    workers: int = 0
    train_args: tuple[str, ...] = ()

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

    def args(self) -> tuple[str, ...]:
        derivation = () if self.derivation == "paper" else ("--derivation", self.derivation)
        return ("--split" if self.split else "--no-split",
                "--merge" if self.merge else "--no-merge", "--min-area", str(self.min_area),
                *derivation)


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
    from panoptool.io.formats import CONFIG_JSON

    c = config
    root, runs_dir = str(root), Path(runs_dir)
    tables = ablation_rows(c)
    networks = {r.source for rs in tables.values() for r in rs if isinstance(r.source, TrainRun)}
    minutes = c.budget_minutes / len(networks) if networks else 0.0
    workers = str(c.workers)
    steps: list[Step] = []
    added: set[str] = set()
    n_trained = 0

    def add(step: Step) -> None:
        if step.name not in added:
            added.add(step.name)
            steps.append(step)

    def targets(d: int) -> Path:
        return runs_dir / "targets" / f"d{d}"

    def targets_step(d: int, split: str) -> str:
        name = f"targets-d{d}-{split}"
        add(Step(name, ("make-targets", "--root", root, "--split", split, "--dilation", d,
                        "--out", targets(d), "--workers", workers),
                 outputs=(targets(d) / split,), redo_args=("--overwrite",),
                 title=f"make-targets: {split}, dilation {d}"))
        return name

    def network_steps(net: TrainRun) -> str:
        nonlocal n_trained
        run, maps = runs_dir / "runs" / net.name, runs_dir / "maps" / net.name
        if f"train-{net.name}" not in added:
            n_trained += 1
        dep = targets_step(net.dilation, c.train_split)
        add(Step(f"train-{net.name}",
                 ("train", "--root", root, "--targets", targets(net.dilation), "--out", run,
                  "--backbone", net.backbone, "--neck", net.neck, "--contour-loss", net.loss,
                  "--max-minutes", f"{minutes:.4g}", "--device", c.device,
                  "--workers", workers, *c.train_args),
                 outputs=(run / "checkpoints" / "last.pt",), after=(dep,),
                 resume_args=("--resume",), redo_args=("--overwrite",),
                 title=f"train {n_trained}/{len(networks)}: {net.name}, {minutes:.3g} min"))
        add(Step(f"infer-{net.name}",
                 ("infer", "--checkpoint", run / "checkpoints" / "last.pt", "--root", root,
                  "--split", c.split, "--out", maps, "--device", c.device),
                 outputs=(maps / CONFIG_JSON,), after=(f"train-{net.name}",),
                 redo_args=("--overwrite",), title=f"infer: {net.name}"))
        return f"infer-{net.name}"

    for t in sorted(tables, key=RUN_ORDER.index):
        trows = tables[t]
        for row in trows:
            results = runs_dir / "results" / row.key
            if isinstance(row.source, TrainRun):
                source_args: tuple = ("--maps", runs_dir / "maps" / row.source.name)
                dep = network_steps(row.source)
            else:
                source_args = ("--oracle", "--root", root, "--dataset-split", c.split,
                               "--targets", targets(row.source))
                dep = targets_step(row.source, c.split)
            add(Step(f"postprocess-{row.key}",
                     ("postprocess", *source_args, "--out", results, *row.refinement.args(),
                      *scaled_postprocess_args(c.area_scale), "--workers", workers),
                     outputs=(results / CONFIG_JSON,), after=(dep,),
                     resume_args=("--overwrite",), redo_args=("--overwrite",),
                     title=f"postprocess: {row.key}"))
            # a network's report also scores its contour maps (Tables I and II show it)
            maps_args = (("--maps", runs_dir / "maps" / row.source.name)
                         if isinstance(row.source, TrainRun) else ())
            add(Step(f"report-{row.key}",
                     ("report", "--root", root, "--split", c.split, "--results", results,
                      *maps_args, "--out", runs_dir / "reports" / row.key,
                      "--workers", workers),
                     outputs=(runs_dir / "reports" / row.key / "metrics.json",),
                     after=(f"postprocess-{row.key}",), title=f"report: {row.key}"))
        out = ablation_table_path(reports_dir, t, c.fmt)
        compare: list = []
        for r in trows:
            compare += ["--compare", f"{r.label}={runs_dir / 'reports' / r.key}"]
        columns: tuple = ()
        if t in CONTOUR_TABLES:
            from panoptool.evaluation.compare import DEFAULT_COLUMNS
            columns = ("--columns", ",".join(DEFAULT_COLUMNS + CONTOUR_COLUMNS))
        add(Step(f"table-{t}", ("report", *compare, "--settings", TABLE_SETTINGS[t],
                                *columns, "--format", c.fmt, "--out", out),
                 outputs=(out,), after=tuple(f"report-{r.key}" for r in trows),
                 title=TABLE_TITLES[t]))
    return steps, tables, minutes
