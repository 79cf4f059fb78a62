"""The resumable step runner of the multi-stage jobs (``demo``, ``ablate``).

A :class:`Step` is one stage of a job: a library call (:attr:`Step.call` with its keyword
arguments, the stage's settings dataclass among them) or, for the stages not converted yet, a
panoptool subcommand with its arguments (:attr:`Step.args`, run through the caller's
``invoke``); the files it produces and the steps whose files it reads.

Resuming works like ``make``: after a step succeeds, a small marker ``<state>/<step>.json``
records its settings (a call's keyword arguments, dataclasses as their fields; a command's
arguments). On the next run a step is skipped when its marker holds the same settings, its
outputs exist and no step it depends on ran again since; a step that was interrupted (outputs
but no marker) is continued (its ``resume_args``, or the call without ``overwrite``, unless
``"resume"`` is in its ``overwrite_on``); a step whose settings or inputs changed is redone
(its ``redo_args``, or the call with ``overwrite=True`` where ``"redo"`` is in its
``overwrite_on``). Settings that change how a step runs but not what it makes
(:data:`RUNTIME_SETTINGS`) do not redo it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from panoptool.errors import ConfigError, InputError, PanoptoolError
from panoptool.io.files import read_json, write_json

PathLike = str | os.PathLike

#: Runs one panoptool subcommand: ``invoke(["train", "--root", ...])``; raises a
#: :class:`PanoptoolError` on failure.
Invoke = Callable[[Sequence[str]], None]

#: Settings that change how a step runs but not what it makes: a new value does not redo it
#: (keyword arguments and dataclass fields of these names; options ``--workers``, ``--device``).
RUNTIME_SETTINGS = ("workers", "device")
RUNTIME_OPTIONS = tuple(f"--{name}" for name in RUNTIME_SETTINGS)
#: Turns the command line that an earlier panoptool recorded in a step's marker into the
#: settings the step's library call records now (None: not known); see
#: ``panoptool_cli.legacy.settings_of_command``.
Legacy = Callable[[Sequence[str]], "dict | None"]


@dataclass(frozen=True)
class Step:
    """One stage of a multi-stage job.

    Attributes
    ----------
    name : unique, file-name safe (``[A-Za-z0-9._-]``); names the marker and the header.
    args : a subcommand and its options, e.g. ``("train", "--root", "data", ...)``, run
        through ``invoke``; or empty, for a library call (``call``).
    outputs : files or folders that exist once the step is done.
    after : names of the steps whose outputs this one reads (they come earlier in the list).
    resume_args : appended to ``args`` when an earlier attempt was interrupted (outputs, no
        marker).
    redo_args : appended to ``args`` when the step is run again over finished outputs (its
        settings or its inputs changed).
    title : a human description for the header.
    call : the library function the step runs, ``call(**kwargs)``; it may return text for
        the step's log.
    kwargs : the call's keyword arguments: paths, numbers, settings dataclasses. They are the
        step's settings (:attr:`settings`).
    overwrite_on : the plan actions (``resume``, ``redo``) on which the call is given
        ``overwrite=True``; empty: the call takes no ``overwrite``.
    resumes : the call takes ``resume`` and is given ``resume=True`` where an earlier
        attempt was interrupted (``train`` continues from its last checkpoint).
    """

    name: str
    args: tuple[str, ...] = ()
    outputs: tuple[Path, ...] = ()
    after: tuple[str, ...] = ()
    resume_args: tuple[str, ...] = ()
    redo_args: tuple[str, ...] = ()
    title: str = ""
    call: Callable[..., str | None] | None = None
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    overwrite_on: tuple[str, ...] = ()
    resumes: bool = False

    def __post_init__(self):
        if not re.fullmatch(r"[A-Za-z0-9._-]+", self.name):
            raise ConfigError(f"step name {self.name!r} must match [A-Za-z0-9._-]+")
        if bool(self.args) == (self.call is not None):
            raise ConfigError(f"step {self.name!r} needs a command (args) or a library call, "
                              f"not both")
        bad = [a for a in self.overwrite_on if a not in ("resume", "redo")]
        if bad:
            raise ConfigError(f"step {self.name!r}: overwrite_on takes resume, redo; got {bad}")
        object.__setattr__(self, "args", tuple(str(a) for a in self.args))
        object.__setattr__(self, "outputs", tuple(Path(p) for p in self.outputs))
        object.__setattr__(self, "overwrite_on", tuple(self.overwrite_on))

    @property
    def stage(self) -> str:
        """The subcommand (``train``) or the library call's name (``postprocess``)."""
        if self.args:
            return self.args[0]
        return getattr(self.call, "__name__", type(self.call).__name__)

    @property
    def settings(self) -> dict:
        """What the marker records: the call's name and keyword arguments (JSON-ready;
        dataclasses as their fields), or the command's arguments."""
        if self.args:
            return {"args": list(self.args)}
        return {"call": self.stage, **jsonable(dict(self.kwargs))}

    @property
    def command_line(self) -> str:
        """The step for people: the command, or the call with its arguments."""
        if self.args:
            return "panoptool " + shlex.join(self.args)
        kwargs = ", ".join(f"{k}={_describe(v)}" for k, v in self.kwargs.items())
        return f"{self.stage}({kwargs})"

    def run(self, action: str, invoke: Invoke) -> str | None:
        """Carry the step out for a plan ``action`` (``run``, ``resume`` or ``redo``)."""
        if self.args:
            extra = {"resume": self.resume_args, "redo": self.redo_args}.get(action, ())
            invoke([*self.args, *extra])
            return None
        kwargs = dict(self.kwargs)
        if self.overwrite_on:
            kwargs["overwrite"] = action in self.overwrite_on
        if self.resumes:
            kwargs["resume"] = action == "resume"
        return self.call(**kwargs)


def jsonable(value):
    """``value`` as JSON holds it: dataclasses as dicts of their fields, paths as text, tuples
    as lists.

    >>> from panoptool.targets.core import TargetConfig
    >>> jsonable({"out": Path("t"), "config": TargetConfig(dilation=3), "sizes": (1, 2)})
    {'out': 't', 'config': {'dilation': 3}, 'sizes': [1, 2]}
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def _describe(value) -> str:
    """A keyword argument for :attr:`Step.command_line`: a dataclass as ``Name(a=1, ...)``,
    paths as text.

    >>> from panoptool.targets.core import TargetConfig
    >>> _describe(TargetConfig(dilation=3)), _describe([("a", Path("b"))])
    ('TargetConfig(dilation=3)', "[['a', 'b']]")
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = ", ".join(f"{f.name}={getattr(value, f.name)!r}"
                           for f in dataclasses.fields(value))
        return f"{type(value).__name__}({fields})"
    return repr(jsonable(value))


@dataclass(frozen=True)
class StepStatus:
    """What :func:`plan` decided for one step: ``skip``, ``run``, ``resume`` or ``redo``."""

    step: Step
    action: str
    reason: str


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


def comparable(settings: dict) -> dict:
    """Settings without the :data:`RUNTIME_SETTINGS` (at any depth), as JSON reads them back.

    >>> comparable({"call": "infer", "config": {"split": "val", "device": "cpu"}, "workers": 2})
    {'call': 'infer', 'config': {'split': 'val'}}
    >>> comparable({"args": ["train", "--device", "cpu", "--lr", "0.1"]})
    {'args': ['train', '--lr', '0.1']}
    """
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in RUNTIME_SETTINGS}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    settings = json.loads(json.dumps(settings))
    if "args" in settings:
        return {**settings, "args": _settings(settings["args"])}
    return strip(settings)


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


def _recorded(marker: dict, step: Step, legacy: Legacy | None) -> dict | None:
    """The settings a marker holds: a call's ``settings`` or a command's ``args``; for a call
    step whose marker an earlier version wrote (a command line), what ``legacy`` reads in it."""
    if isinstance(marker.get("settings"), dict):
        return marker["settings"]
    if not isinstance(marker.get("args"), list):
        return None
    if step.args:
        return {"args": marker["args"]}
    return legacy(marker["args"]) if legacy is not None and marker["args"] else None


def _decide(step: Step, state_dir: Path, rerun: set[str], finished: dict[str, float],
            legacy: Legacy | None) -> StepStatus:
    marker = _read_marker(_marker(state_dir, step))
    have_outputs = bool(step.outputs) and all(p.exists() for p in step.outputs)
    some_outputs = any(p.exists() for p in step.outputs)
    if marker is None:
        if some_outputs:
            return StepStatus(step, "resume", "an earlier run was interrupted")
        return StepStatus(step, "run", "not done yet")
    recorded = _recorded(marker, step, legacy)
    if recorded is None or comparable(recorded) != comparable(step.settings):
        return StepStatus(step, "redo", "its settings changed")
    if not have_outputs:
        return StepStatus(step, "redo" if some_outputs else "run", "outputs are missing")
    stale = [d for d in step.after
             if d in rerun or finished.get(d, 0.0) > float(marker.get("finished", 0.0))]
    if stale:
        return StepStatus(step, "redo", f"its input changed ({', '.join(stale)})")
    return StepStatus(step, "skip", "done")


def plan(steps: Sequence[Step], state_dir: PathLike, *, redo: bool = False,
         legacy: Legacy | None = None) -> list[StepStatus]:
    """Decide for every step whether it is done, runs, resumes or is redone.

    A step is redone when any step it depends on will run, so the plan is what
    :func:`run_steps` will do if nothing fails. ``legacy`` reads the markers of an earlier
    version (:data:`Legacy`); without it such a marker of a call step means "redo".
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
        status = _decide(step, state_dir, rerun, finished, legacy)
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
              redo: bool = False, console=None,
              legacy: Legacy | None = None) -> list[StepStatus]:
    """Run the steps that are not done, in order.

    Parameters
    ----------
    steps : in dependency order.
    state_dir : folder of the step markers.
    invoke : runs one subcommand (see :data:`Invoke`), for the steps that are commands.
        What a step prints to stdout, and the text a call returns, are kept in
        ``<state_dir>/<step>.log``.
    redo : run every step again (commands with their ``redo_args``, calls with
        ``overwrite`` where they take it).
    console : a rich console for the step headers (default: the runner's, on stderr).
    legacy : reads the markers of an earlier version (see :func:`plan`).

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
    statuses = plan(steps, state_dir, redo=redo, legacy=legacy)
    for i, status in enumerate(statuses, start=1):
        head = escape(f"[{i}/{len(statuses)}] {status.step.title or status.step.name}")
        if status.action == "skip":
            console.print(f"[dim]{head}: done, skipped[/dim]")
            continue
        console.rule(f"[bold]{head}", align="left")
        _run_one(status, state_dir, invoke, console)
    return statuses


def _run_one(status: StepStatus, state_dir: Path, invoke: Invoke, console) -> None:
    """Carry out one step of the plan: header line, log, marker."""
    from rich.markup import escape

    step = status.step
    shown = step.command_line
    if step.args:
        extra = {"resume": step.resume_args, "redo": step.redo_args}.get(status.action, ())
        shown = shlex.join(["panoptool", *step.args, *extra])
    console.print(f"[dim]{escape(shown)}  ({escape(status.reason)})[/dim]", highlight=False,
                  soft_wrap=True)
    marker = _marker(state_dir, step)
    marker.unlink(missing_ok=True)
    start = time.time()
    log = state_dir / f"{step.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        # the stage's stdout (its tables) goes to a log, so that the job's own stdout
        # holds only its results; progress bars and messages stay on stderr
        with open(log, "w", encoding="utf-8") as fh, contextlib.redirect_stdout(fh):
            text = step.run(status.action, invoke)
            if text:
                fh.write(text if text.endswith("\n") else text + "\n")
    except PanoptoolError as exc:
        raise StepError(f"{step.name}: {exc}") from exc
    seconds = time.time() - start
    record = {"args": list(step.args)} if step.args else {"settings": step.settings}
    write_json(marker, {**record, "finished": time.time(), "seconds": round(seconds, 2)})
    console.print(f"[dim]{escape(step.name)}: done in {seconds:.1f} s[/dim]", highlight=False)
