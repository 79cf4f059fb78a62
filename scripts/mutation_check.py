#!/usr/bin/env python
"""Mutation check of the evaluator: every rule change below must make a test fail.

Each mutation replaces one exact piece of text (found exactly once) in one module of
``panoptool/evaluation/metrics/`` (three in the result readers, ``panoptool/io/results.py``) by a plausible wrong rule.
For each, a copy of the package with that one change is tested, first with the rule-edge
tests (``tests/evaluation/test_metrics_rule_edges.py``, a few seconds), and only if those pass with the
other metric tests. A mutation that no test kills is a hole in the suite; the check then exits
with status 1. A mutant counts as killed only when a test *fails* (pytest status 1), not when
the tests cannot run at all (a broken mutant: also status 1 of the check). The working tree is
never modified: mutants live in a temporary copy.

Usage::

    python scripts/mutation_check.py            # all mutations
    python scripts/mutation_check.py --list     # the list, with nothing run
    python scripts/mutation_check.py -k pq_void_share_60 -k ap_min_size_90
    python scripts/mutation_check.py --jobs 2   # two mutants at a time

Also run by ``panoptool bench --stage mutation`` (it takes a few minutes on 2 cores, beyond
the CI budget of the test suite; see reports/bench.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIRST_TESTS = ("tests/evaluation/test_metrics_rule_edges.py",)
MORE_TESTS = ("tests/evaluation/test_metrics_panoptic.py", "tests/evaluation/test_metrics_instance.py",
              "tests/evaluation/test_metrics_semantic.py", "tests/io/test_results.py")
#: What a copy for mutants needs: the packages, the tests and their configuration.
COPIED = ("panoptool", "panoptool_cli", "tests", "fixtures", "setup.cfg")


@dataclass(frozen=True)
class Mutation:
    """Replace ``old`` (present exactly once in ``path``) by ``new``."""

    name: str
    path: str
    old: str
    new: str
    what: str


PAN = "panoptool/evaluation/metrics/panoptic.py"
INS = "panoptool/evaluation/metrics/instance.py"
SEM = "panoptool/evaluation/metrics/semantic.py"
GTM = "panoptool/evaluation/metrics/gt.py"
EVA = "panoptool/io/results.py"

MUTATIONS = (
    # --- panoptic quality --------------------------------------------------------------------
    Mutation("pq_void_share_60", PAN, "if ignored / pred_area[p] > 0.5:",
             "if ignored / pred_area[p] > 0.6:",
             "an unmatched segment is an FP only when more than 60 % (not 50 %) is VOID/crowd"),
    Mutation("pq_void_share_ge", PAN, "if ignored / pred_area[p] > 0.5:",
             "if ignored / pred_area[p] >= 0.5:",
             "a segment exactly half on VOID/crowd is ignored (official: an FP)"),
    Mutation("pq_match_ge", PAN, "hit = iou > 0.5", "hit = iou >= 0.5",
             "IoU exactly 0.5 matches (official: IoU > 0.5)"),
    Mutation("pq_union_keeps_void", PAN,
             "- g_inter[gi, pi] - void_inter[pi]", "- g_inter[gi, pi]",
             "the predicted pixels on VOID stay in the union"),
    Mutation("pq_crowd_as_fn", PAN, "fn_sel = ~gt_matched & ~pan_gt.iscrowd",
             "fn_sel = ~gt_matched", "unmatched crowd segments are false negatives"),
    Mutation("pq_crowd_not_ignored", PAN, "ignored += int(g_inter[row, p])", "ignored += 0",
             "pixels on the crowd region do not excuse a false positive"),
    Mutation("pq_crowd_any_category", PAN, "row = crowd_row[pred_categories[p]]",
             "row = crowd_row.max()",
             "the crowd region of another category excuses a false positive"),
    Mutation("pq_void_not_ignored", PAN, "ignored = int(void_inter[p])", "ignored = 0",
             "pixels on VOID do not excuse a false positive"),
    Mutation("pq_mean_over_absent", PAN, "use = sel & present",
             "use = sel & (present | True)",
             "categories without tp, fp or fn enter the averages"),
    # --- instance AP -------------------------------------------------------------------------
    Mutation("ap_min_size_90", INS, "MIN_REGION_SIZE = 100", "MIN_REGION_SIZE = 90",
             "minimum instance size 90 px (official: 100)"),
    Mutation("ap_min_size_le", INS, "g_small = g_area < MIN_REGION_SIZE",
             "g_small = g_area <= MIN_REGION_SIZE",
             "an instance of exactly 100 px is small (official: valid)"),
    Mutation("ap_no_095", INS, "OVERLAPS = np.arange(0.5, 1.0, 0.05)",
             "OVERLAPS = np.arange(0.5, 0.95, 0.05)",
             "the 0.95 overlap threshold is dropped"),
    Mutation("ap_match_ge", INS, "match = iou[None, :, :] > OVERLAPS[:, None, None]",
             "match = iou[None, :, :] >= OVERLAPS[:, None, None]",
             "IoU equal to the threshold matches (official: IoU > t)"),
    Mutation("ap_ignore_share_lt", INS, "(ignore_frac[None, :] <= OVERLAPS[:, None])",
             "(ignore_frac[None, :] < OVERLAPS[:, None])",
             "a prediction whose ignored share equals t is ignored (official: an FP)"),
    Mutation("ap_ignore_share_050", INS, "(ignore_frac[None, :] <= OVERLAPS[:, None])",
             "(ignore_frac[None, :] <= 0.5)",
             "the ignored share is compared with 0.5, not with the overlap threshold"),
    Mutation("ap_small_group_once", INS, "+ (ix * g_small[None, :]).sum(axis=1))",
             "+ (ix * (g_small & ~g_group)[None, :]).sum(axis=1))",
             "a small group's pixels count once (the official loop counts them twice)"),
    Mutation("ap_void_not_ignored", INS,
             "void_inter = pred.segment_overlap[:, void_seg].sum(axis=1) if n_pred else",
             "void_inter = 0 * pred.segment_overlap[:, void_seg].sum(axis=1) if n_pred else",
             "pixels on void do not excuse a false positive"),
    Mutation("ap_void_by_label", INS,
             "void_seg = labels.is_void_label[gt.instance_ids.clip(0, 255)] & (gt.instance_ids < 256)",
             "void_seg = labels.is_void_label[instance_label(gt.instance_ids).clip(0, 255)]",
             "void by the label encoded in the instance id (id 1000, caravan 29001 void)"),
    Mutation("ap_tp_lowest_score", INS, "best_row = np.argmax(masked, axis=1)",
             "best_row = np.argmin(np.where(valid_match, p_score[None, :, None], np.inf), "
             "axis=1)",
             "of several matches the lowest-scored is the true positive"),
    Mutation("ap_ties_split", INS,
             "_, unique_index = np.unique(score_sorted, return_index=True)",
             "unique_index = np.arange(len(score_sorted))",
             "tied confidences get one curve point each (official: one shared point)"),
    Mutation("ap_curve_closed_at_0", INS, "precision = np.append(tp / (tp + fp), 1.0)",
             "precision = np.append(tp / (tp + fp), 0.0)",
             "the curve is closed at precision 0 (official: 1)"),
    Mutation("ap_interpolated", INS, "precision = np.append(tp / (tp + fp), 1.0)",
             "precision = np.maximum.accumulate(np.append(tp / (tp + fp), 1.0))",
             "interpolated precision (COCO/VOC style; official: the raw stepwise curve)"),
    Mutation("ap_no_pred_nan", INS, "ap[c, t] = 0.0", "ap[c, t] = np.nan",
             "a class with ground truth but no prediction is NaN (official: 0)"),
    Mutation("ap_have_gt_small", INS, "out.have_gt[c] = bool(g_valid.any())",
             "out.have_gt[c] = bool((~g_group).any())",
             "a class with only small instances has ground truth (official: NaN)"),
    # --- semantic IoU / iIoU -----------------------------------------------------------------
    Mutation("iou_fp_on_ignored", SEM, "rows = evaluated.copy()",
             "rows = np.ones(len(evaluated), dtype=bool)",
             "predictions on ignored ground truth are false positives"),
    Mutation("iou_fn_evaluated_only", SEM, "fn = int(conf[label, :].sum()) - tp",
             "fn = int(conf[label, evaluated].sum()) - tp",
             "predictions of ignored ids on evaluated ground truth are no false negatives"),
    Mutation("iiou_skips_k0", SEM, "use = (inst > 1000) &", "use = (inst % 1000 > 0) &",
             "iIoU leaves out instances numbered 0 (26000)"),
    # --- ground truth and readers ------------------------------------------------------------
    Mutation("gt_runs_last_short", GTM, "lengths = np.diff(starts, append=change.size)",
             "lengths = np.diff(starts, append=change.size - 1)",
             "the last run of (segment, prediction) pairs is counted one pixel short"),
    Mutation("gt_id_1000_not_encoded", GTM,
             "return np.where(instance_ids >= 1000, instance_ids // 1000, instance_ids)",
             "return np.where(instance_ids > 1000, instance_ids // 1000, instance_ids)",
             "instance id 1000 is not read as label 1 * 1000"),
    Mutation("mask_any_channel", EVA,
             "+ 0x8000) >> 16", "+ 0x8000) >> 16 | (rgb.max(axis=2) > 0)",
             "an RGB mask pixel is in the mask if any channel is non-zero (official: luma)"),
    Mutation("pred_txt_first_line_wins", EVA, "entries[mask] = (label_id, conf)",
             "entries.setdefault(mask, (label_id, conf))",
             "a mask listed twice keeps its first line (official: the last)"),
    Mutation("pred_label_rounded", EVA, "label_id = int(float(tokens[1]))",
             "label_id = round(float(tokens[1]))",
             "a label id written as 26.7 is rounded (official: int(float()), truncated)"),
)


def check_applicable(mutations=MUTATIONS, repo: Path = REPO) -> list[str]:
    """Problems: mutations whose text is not found exactly once (the code has moved on)."""
    problems = []
    names = [m.name for m in mutations]
    for m in mutations:
        if names.count(m.name) > 1:
            problems.append(f"{m.name}: name used twice")
        count = (repo / m.path).read_text(encoding="utf-8").count(m.old)
        if count != 1:
            problems.append(f"{m.name}: {m.path} contains the text {count} times, not once: "
                            f"{m.old!r}")
    return problems


def make_copy(dest: Path, repo: Path = REPO) -> Path:
    """A copy of what the tests need, without caches."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for name in COPIED:
        src = repo / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore, symlinks=True)
        elif src.is_file():
            shutil.copy2(src, dest / name)
    return dest


def run_tests(copy: Path, tests: tuple[str, ...], timeout: float = 600) -> tuple[int, str]:
    """Run pytest in ``copy`` (whose ``panoptool`` is imported, not the installed one).

    Returns
    -------
    (pytest's exit status: 0 passed, 1 some test failed, other: could not run), and the first
    failed test with its message (``FAILED tests/...::test_x - ...``, ``ERROR ...`` for a
    fixture that failed) or the last line.
    """
    env = dict(os.environ, PANOPTOOL_NO_PROGRESS="1", PYTHONDONTWRITEBYTECODE="1",
               COLUMNS="250")  # room for the failure's message in pytest's summary line
    env.pop("PYTHONPATH", None)
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-rfE", "-p", "no:cacheprovider",
           "--no-header", *tests]
    try:
        proc = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {timeout:.0f} s"
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.strip()]
    failed = [ln for ln in lines if ln.startswith(("FAILED ", "ERROR "))]
    tail = failed[0] if failed else (lines[-1] if lines else proc.stderr.strip()[-200:])
    return proc.returncode, tail[:300]


def check_copy_imports_itself(copy: Path) -> None:
    """Make sure that tests run in a copy import the copy's package."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    out = subprocess.run([sys.executable, "-c", "import panoptool; print(panoptool.__file__)"],
                         cwd=copy, env=env, capture_output=True, text=True, check=True)
    found = Path(out.stdout.strip()).resolve()
    if copy.resolve() not in found.parents:
        raise SystemExit(f"mutation check: a copy imports {found}, not its own package")


@dataclass
class Outcome:
    """``killed``: some test failed; ``broken``: the tests could not run (a bad mutant);
    ``by``: the failed test and its message, or why nothing failed."""

    mutation: Mutation
    killed: bool
    by: str
    seconds: float
    broken: bool = False


def run_mutation(m: Mutation, workdir: Path, repo: Path = REPO) -> Outcome:
    """Test one mutant in a fresh copy; killed if some test fails."""
    start = time.perf_counter()
    copy = make_copy(Path(tempfile.mkdtemp(prefix=f"{m.name}_", dir=workdir)), repo)
    try:
        target = copy / m.path
        text = target.read_text(encoding="utf-8")
        target.write_text(text.replace(m.old, m.new, 1), encoding="utf-8")
        for tests in (FIRST_TESTS, MORE_TESTS):
            status, tail = run_tests(copy, tests)
            if status != 0:
                return Outcome(m, status == 1, tail, time.perf_counter() - start,
                               broken=status != 1)
        return Outcome(m, False, "every test passed", time.perf_counter() - start)
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def run_check(names: list[str] | None = None, jobs: int = 1, repo: Path = REPO,
              report=print) -> list[Outcome]:
    """Run the baseline (unmutated tests must pass) and every chosen mutation."""
    chosen = [m for m in MUTATIONS if not names or m.name in names]
    unknown = sorted(set(names or ()) - {m.name for m in MUTATIONS})
    if unknown:
        raise SystemExit(f"mutation check: unknown mutation(s) {unknown}")
    problems = check_applicable(chosen, repo)
    if problems:
        raise SystemExit("mutation check: " + "; ".join(problems))
    with tempfile.TemporaryDirectory(prefix="panoptool_mutants_") as tmp:
        tmp = Path(tmp)
        base = make_copy(tmp / "baseline", repo)
        check_copy_imports_itself(base)
        status, tail = run_tests(base, FIRST_TESTS + MORE_TESTS)
        if status != 0:
            raise SystemExit(f"mutation check: the unmutated tests fail ({tail})")
        shutil.rmtree(base)
        outcomes = []
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for outcome in pool.map(lambda m: run_mutation(m, tmp, repo), chosen):
                status = ("killed" if outcome.killed else
                          "BROKEN" if outcome.broken else "SURVIVED")
                report(f"{status:8s} {outcome.mutation.name:26s} {outcome.seconds:5.1f} s  "
                       f"{outcome.by}")
                outcomes.append(outcome)
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", dest="names", action="append",
                        help="run only this mutation (repeatable)")
    parser.add_argument("--jobs", type=int, default=1, help="mutants tested at a time")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    args = parser.parse_args(argv)
    if args.list:
        for m in MUTATIONS:
            print(f"{m.name:26s} {m.path:30s} {m.what}")
        return 0
    start = time.perf_counter()
    outcomes = run_check(args.names, args.jobs)
    survived = [o.mutation.name for o in outcomes if not o.killed]
    print(f"{len(outcomes) - len(survived)} of {len(outcomes)} mutations killed in "
          f"{time.perf_counter() - start:.0f} s")
    if survived:
        print(f"not killed (survived, or a broken mutant): {', '.join(survived)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
