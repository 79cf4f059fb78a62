"""Ablation tables: several evaluated runs side by side, like the paper's Tables I-V.

Each run is a report folder (with ``metrics.json`` and ``config.json`` from
``panoptool report --out``) or a results folder (evaluated on the fly when a dataset root is
given). The table has one row per run: the run's name, the settings that differ between the
runs (read from the provenance chain of ``config.json`` files, see
:func:`panoptool.io.formats.flatten_config`), then the chosen metric columns.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from panoptool.io import formats
from panoptool.errors import ConfigError, InputError
from panoptool.io.files import read_json

PathLike = str | os.PathLike

DEFAULT_COLUMNS = ("mIoU", "AP", "PQ", "PQ_th", "SQ_th", "RQ_th", "PQ_st")

#: Settings that never explain a difference in results (paths, resources, bookkeeping).
RUNTIME_SETTINGS = {"workers", "root", "out", "out_dir", "output", "device", "overwrite",
                    "cache", "cache_dir", "results_dir", "maps", "maps_dir", "maps_root",
                    "targets", "targets_dir", "targets_root", "checkpoint", "name", "run_dir",
                    "parts", "log_every", "num_workers", "seed_workers", "resume"}


def parse_run(spec: str) -> tuple[str, Path]:
    """``'NAME=DIR'`` -> ``(NAME, Path(DIR))``; a bare ``DIR`` is named after its folder.

    >>> parse_run("d2=reports/d2")
    ('d2', PosixPath('reports/d2'))
    """
    if "=" in spec:
        name, folder = spec.split("=", 1)
        if not name or not folder:
            raise ConfigError(f"--compare expects NAME=DIR, got {spec!r}")
        return name, Path(folder)
    return Path(spec).name, Path(spec)


def load_run(folder: PathLike, *, root: PathLike | None = None, split: str = "val",
             workers: int = 0) -> tuple[dict, dict]:
    """``(metrics, flat config)`` of one run folder.

    A folder with ``metrics.json`` is a report; otherwise, if it holds results and ``root``
    is given, it is evaluated now.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "run folder not found")
    metrics_path = folder / "metrics.json"
    config_path = folder / formats.CONFIG_JSON
    if metrics_path.is_file():
        metrics = read_json(metrics_path)
        if not isinstance(metrics, dict):
            raise InputError(metrics_path, "expected a JSON object of metrics")
        config = read_json(config_path) if config_path.is_file() else None
        return metrics, formats.flatten_config(config)
    from panoptool.evaluation.runner import evaluate, find_parts
    if find_parts(folder):
        if root is None:
            raise InputError(folder, "has results but no metrics.json; give --root to "
                                     "evaluate it, or run `panoptool report --out` first")
        result = evaluate(root, split, folder, workers=workers)
        return result.metrics, formats.flatten_config(result.results_config)
    raise InputError(folder, "neither a report (metrics.json) nor a results folder")


def short_names(keys: list[str]) -> dict[str, str]:
    """Readable column names: the setting name without its stage, unless two stages share it.

    >>> short_names(["postprocess.min_area", "make-targets.dilation", "train.neck.shared"])
    {'postprocess.min_area': 'min_area', 'make-targets.dilation': 'dilation', \
'train.neck.shared': 'neck.shared'}
    """
    tails = {k: k.split(".", 1)[1] if "." in k else k for k in keys}
    counts: dict[str, int] = {}
    for tail in tails.values():
        counts[tail] = counts.get(tail, 0) + 1
    return {k: (t if counts[t] == 1 else k) for k, t in tails.items()}


def _all_keys(configs: list[dict]) -> list[str]:
    keys: list[str] = []
    for cfg in configs:
        for k in cfg:
            if k not in keys:
                keys.append(k)
    return keys


def _pipeline_order(chosen: list[str], keys: list[str]) -> list[str]:
    """``chosen`` sorted so that the first stage's settings come first
    (:func:`~panoptool.io.formats.flatten_config` lists the latest stage first)."""
    stages: list[str] = []
    for k in keys:
        if k.split(".", 1)[0] not in stages:
            stages.append(k.split(".", 1)[0])
    return sorted(chosen, key=lambda k: -stages.index(k.split(".", 1)[0]))


def differing_settings(configs: list[dict]) -> list[str]:
    """Keys whose values differ between the runs that have them, leaving out the report's
    own settings and runtime settings; in pipeline order.

    A key that only some runs have (the training settings of a network's run, absent from
    an oracle run) is not a difference by itself: the runs differ in their source, which
    their names say.

    >>> differing_settings([{"a.x": 1, "b.y": 1}, {"a.x": 2, "b.y": 1}, {"b.y": 1}])
    ['a.x']
    """
    keys = _all_keys(configs)
    out = []
    for k in keys:
        if k.startswith("report.") or k.rsplit(".", 1)[-1] in RUNTIME_SETTINGS:
            continue
        values = {repr(cfg[k]) for cfg in configs if k in cfg}
        if len(values) > 1:
            out.append(k)
    return _pipeline_order(out, keys)


def select_settings(configs: list[dict], names: list[str]) -> list[str]:
    """The keys named by ``names``: a full key (``postprocess.min_area``) or a setting's name
    without its stage (``min_area``) when only one stage has it.

    >>> select_settings([{"postprocess.min_area": 1, "train.neck": "shared"}], ["min_area"])
    ['postprocess.min_area']
    """
    keys = _all_keys(configs)
    out = []
    for name in names:
        if name in keys:
            out.append(name)
            continue
        matches = [k for k in keys if "." in k and k.split(".", 1)[1] == name]
        if len(matches) != 1:
            raise ConfigError(
                f"setting {name!r} " + (f"is ambiguous: give one of {', '.join(matches)}"
                                        if matches else "is in none of the runs' configs"))
        out.append(matches[0])
    return out


def compare_table(runs: list[tuple[str, dict, dict]],
                  columns: tuple[str, ...] | list[str] = DEFAULT_COLUMNS,
                  settings: list[str] | None = None) -> pd.DataFrame:
    """The ablation table.

    Parameters
    ----------
    runs : ``(name, metrics, flat config)`` per run, in row order.
    columns : metric keys to show (see :data:`panoptool.evaluation.runner.METRIC_KEYS`).
    settings : the setting columns to show (see :func:`select_settings`); default: those
        that differ between the runs (:func:`differing_settings`).

    Returns
    -------
    DataFrame: ``run``, the settings (short names; ``-`` where a run lacks one), then the
    metric columns (NaN where a run lacks a metric).
    """
    if not runs:
        raise ConfigError("compare needs at least one run")
    names = [r[0] for r in runs]
    if len(set(names)) != len(names):
        raise ConfigError(f"run names must be unique, got {names}")
    from panoptool.evaluation.runner import ALL_METRIC_KEYS
    unknown = [c for c in columns if c not in ALL_METRIC_KEYS]
    if unknown:
        raise ConfigError(f"unknown column(s) {unknown}; choose from "
                          f"{', '.join(ALL_METRIC_KEYS)}")
    configs = [r[2] for r in runs]
    keys = differing_settings(configs) if settings is None else select_settings(configs,
                                                                                settings)
    rename = short_names(keys)
    rows = []
    for name, metrics, cfg in runs:
        row: dict = {"run": name}
        for k in keys:
            value = cfg.get(k)
            row[rename[k]] = "-" if value is None else value
        for c in columns:
            value = metrics.get(c)
            row[c] = float("nan") if value is None else value
        rows.append(row)
    return pd.DataFrame(rows)
