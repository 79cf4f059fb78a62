"""Mutation check of the evaluator (``scripts/mutation_check.py``) as a bench stage.

Every rule mutation of ``panoptool/evaluation/metrics/`` listed in the script must be killed by the test
suite. It takes minutes (one pytest run per mutant), more than the CI budget of the suite, so
it runs here; CI runs the two mutations that issue 13 names
(``tests/bench/test_mutation_check.py``). Needs a source checkout (``scripts/`` and ``tests/``
beside the package).
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

from panoptool.bench.core import BenchConfig, BenchSection

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "mutation_check.py"


def load_script():
    """The ``mutation_check`` module of the source checkout, or None without one."""
    if not SCRIPT.is_file() or not (SCRIPT.parents[1] / "tests").is_dir():
        return None
    spec = importlib.util.spec_from_file_location("panoptool_mutation_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run(config: BenchConfig) -> BenchSection:
    title = "mutation: evaluator rule changes killed by the tests"
    script = load_script()
    if script is None:
        return BenchSection(title=title, notes=[f"skipped: needs a source checkout "
                                                f"({SCRIPT} and tests/)"])
    names = ["pq_void_share_60", "ap_min_size_90"] if config.quick else None
    jobs = max(1, config.workers or 1)
    start = time.perf_counter()
    outcomes = script.run_check(names, jobs=jobs, report=lambda line: None)
    seconds = time.perf_counter() - start
    rows = [{"mutation": o.mutation.name, "module": o.mutation.path.split("/")[-1],
             "rule changed": o.mutation.what,
             "result": "killed" if o.killed else "SURVIVED", "s": o.seconds,
             "killed by": o.by if o.killed else ""} for o in outcomes]
    survived = [o.mutation.name for o in outcomes if not o.killed]
    notes = [f"{len(outcomes) - len(survived)} of {len(outcomes)} mutations killed in "
             f"{seconds:.0f} s ({jobs} at a time), after a baseline run of the same tests",
             "a mutant runs tests/evaluation/test_metrics_rule_edges.py first, then the other "
             "tests/evaluation/test_metrics_*.py only if those pass",
             "the same check: python scripts/mutation_check.py (exit 1 if any survives)"]
    if survived:
        notes.insert(0, f"SURVIVED: {', '.join(survived)}")
    return BenchSection(title=title, rows=rows, notes=notes)
