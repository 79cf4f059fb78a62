"""``panoptool bench``: time each stage on synthetic data at Cityscapes size.

Each stage has a module ``panoptool.bench.<stage>`` with a function
``run(config: BenchConfig) -> BenchSection``. Every stage runs in a fresh Python process so
that its peak memory (max RSS) is its own. Results are printed and merged into
``reports/bench.md``: a run of some stages replaces only those stages' sections.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import platform
import re
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from panoptool.errors import ConfigError
from panoptool.io.files import write_text
from panoptool.evaluation.tables import to_markdown

#: stage name -> module below panoptool.bench; order is the report's order.
STAGES = {
    "synth": "synth",
    "make-targets": "targets",
    "postprocess": "postprocess",
    "report": "report",
    "pq": "pq",
    "convert": "convert",
    "boundary": "boundary",
    "model": "model",
    "export": "export",
    "predict": "predict",
    "scale": "scale",
    "mutation": "mutation",
    "datasets": "datasets",
}


@dataclass(frozen=True)
class BenchConfig:
    """Settings common to all stage benchmarks."""

    height: int = 1024
    width: int = 2048
    n_images: int = 8
    workers: int = 0
    workdir: str = ""  # scratch folder; a temporary one if empty
    quick: bool = False  # smaller sizes/counts, for tests of the bench itself

    def __post_init__(self):
        if self.height < 16 or self.width < 16:
            raise ConfigError(f"bench size must be at least 16x16, got {self.height}x{self.width}")
        if self.n_images < 1:
            raise ConfigError(f"n_images must be >= 1, got {self.n_images}")


@dataclass
class BenchSection:
    """What one stage's benchmark found: a table and free-form notes."""

    title: str
    rows: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        parts = [f"## {self.title}", ""]
        if self.rows:
            parts += [to_markdown(self.rows), ""]
        parts += [f"- {n}" for n in self.notes]
        return "\n".join(parts).rstrip() + "\n"


def peak_rss_mib() -> float:
    """Peak resident memory of this process and its finished children, MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024.0


def run_stage_here(stage: str, config: BenchConfig) -> BenchSection:
    """Run one stage's benchmark in this process."""
    if stage not in STAGES:
        raise ConfigError(f"unknown bench stage {stage!r}; choose from {', '.join(STAGES)}")
    module = importlib.import_module(f"panoptool.bench.{STAGES[stage]}")
    return module.run(config)


def run_stage_isolated(stage: str, config: BenchConfig) -> BenchSection:
    """Run one stage's benchmark in a fresh Python process and collect its section."""
    cmd = [sys.executable, "-m", "panoptool.bench.core", stage, json.dumps(dataclasses.asdict(config))]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return BenchSection(title=stage, notes=[f"benchmark failed: {tail}"])
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return BenchSection(**data)


def available_stages() -> list[str]:
    """Stages whose benchmark module exists."""
    return [s for s, m in STAGES.items()
            if importlib.util.find_spec(f"panoptool.bench.{m}") is not None]


def machine_line() -> str:
    import os
    return (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{platform.platform(terse=True)}, {time.strftime('%Y-%m-%d')}")


def merge_report(path: Path, sections: dict[str, BenchSection]) -> str:
    """Merge sections into the Markdown report at ``path``; return the new text."""
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    blocks: dict[str, str] = {}
    for match in re.finditer(r"^<!-- stage:(\S+) -->\n(.*?)(?=^<!-- stage:|\Z)", old,
                             flags=re.S | re.M):
        blocks[match.group(1)] = match.group(2).rstrip() + "\n"
    for stage, section in sections.items():
        blocks[stage] = section.to_markdown() + f"\n_Machine: {machine_line()}_\n"
    order = list(STAGES) + [s for s in blocks if s not in STAGES]
    text = ["# panoptool bench", "",
            "Produced by `panoptool bench` (see README). Each stage runs in its own process; "
            "peak memory is that process's max RSS.", ""]
    for stage in order:
        if stage in blocks:
            text += [f"<!-- stage:{stage} -->", blocks[stage]]
    out = "\n".join(text)
    write_text(path, out)
    return out


def _main(argv: list[str]) -> None:
    stage, config_json = argv
    config = BenchConfig(**json.loads(config_json))
    section = run_stage_here(stage, config)
    print(json.dumps(dataclasses.asdict(section)))


if __name__ == "__main__":
    _main(sys.argv[1:])
