"""Scale bench: ``postprocess`` and ``report`` on 1,000 small images use no more memory than
on 100 (both stream their images).

Data: a synthetic split of 1,000 images of 128x256 (``panoptool.synth``) and network-like
prediction maps made from its ground truth (as the postprocess bench makes them); the first
100 images (the same ones: image i is drawn from the seed sequence (seed, i)) form the
100-image case. Each measurement runs in a fresh Python process, with the stage's worker
pool, and records

* the peak of the summed resident memory of the whole process tree (the measuring process
  and its workers), sampled from ``/proc/<pid>/statm`` every 10 ms, and
* the largest single-process peak, ``max(ru_maxrss)`` of the process and its reaped
  children (``getrusage(RUSAGE_SELF / RUSAGE_CHILDREN)``), which no sampling can miss.

The memory is flat when the 1,000-image peak is no higher than the 100-image peak, up to a
tolerance for allocator noise (:data:`TOLERANCE_MIB`).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from ..bench import BenchConfig, BenchSection

#: Image counts compared, and (quick) the counts of a smoke test.
COUNTS = (100, 1000)
QUICK_COUNTS = (10, 30)
SIZE = (128, 256)
#: A 1,000-image peak may exceed the 100-image one by this much and still count as flat.
TOLERANCE_MIB = 8.0
SAMPLE_S = 0.01


# --- memory of a process tree ----------------------------------------------------------------

def _children(pid: int) -> list[int]:
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out += [int(c) for c in fh.read().split()]
    except OSError:  # the process ended meanwhile
        pass
    return out


def tree_rss_bytes(root_pid: int) -> int:
    """Summed resident memory of a process and all its descendants, bytes (Linux)."""
    page = os.sysconf("SC_PAGE_SIZE")
    total, todo, seen = 0, [root_pid], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/statm") as fh:
                total += int(fh.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
        todo += _children(pid)
    return total


class TreeMemorySampler:
    """Samples :func:`tree_rss_bytes` of this process in a thread; ``peak`` in bytes."""

    def __init__(self, interval: float = SAMPLE_S):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        pid = os.getpid()
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_bytes(pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> "TreeMemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss_bytes(os.getpid()))


def max_rss_mib() -> float:
    """Largest peak RSS of this process and of any reaped child, MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024.0


# --- data ------------------------------------------------------------------------------------

def _write_maps(root: Path, split: str, maps_dir: Path, seed: int) -> None:
    """Network-like maps for every image of the split, from its ground truth."""
    from .. import formats
    from ..dataset import list_samples, read_ground_truth
    from ..targets import TargetConfig, compute_targets

    rng = np.random.default_rng(seed)
    for s in list_samples(root, split):
        label_ids, instance_ids = read_ground_truth(s)
        t = compute_targets(label_ids, instance_ids, TargetConfig(dilation=2))
        offset_yx, valid = formats.decode_offsets(t["instance_index"], t["centers_yx"])
        offset_yx += rng.normal(0, 1.0, offset_yx.shape).astype(np.float32) * valid
        contour = t["contour"].astype(np.float32) * rng.uniform(0.6, 1.0, label_ids.shape)
        formats.write_maps(formats.maps_path(maps_dir, split, s.stem), train_ids=t["train_ids"],
                           confidence=rng.uniform(0.5, 1.0, label_ids.shape),
                           contour_prob=contour, offset_yx=offset_yx)


def _first_images(root: Path, maps: Path, split: str, n: int, out_root: Path,
                  out_maps: Path) -> None:
    """Copy the ground truth and maps of the first ``n`` images into a dataset of their own."""
    from .. import formats
    from ..dataset import list_samples

    for s in list_samples(root, split)[:n]:
        for src in (s.label_ids_path, s.instance_ids_path):
            dst = out_root / src.relative_to(root)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        src = formats.maps_path(maps, split, s.stem)
        dst = formats.maps_path(out_maps, split, s.stem)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)


# --- one measurement, in its own process ---------------------------------------------------

def measure(stage: str, args: dict) -> dict:
    """Run ``postprocess`` or ``report`` once here and return its wall time and memory."""
    from ..runner import keep_freed_memory

    keep_freed_memory()
    with TreeMemorySampler() as sampler:
        start = time.perf_counter()
        if stage == "postprocess":
            from ..postprocess.runner import postprocess_maps
            summary = postprocess_maps(args["maps"], args["out"], workers=args["workers"],
                                       show_progress=False)
            check = {"instances": summary.instances}
        elif stage == "report":
            from ..evaluate import evaluate
            result = evaluate(args["root"], args["split"], args["results"],
                              workers=args["workers"], cache=args["cache"],
                              show_progress=False)
            check = {k: result.metrics[k] for k in ("mIoU", "AP", "PQ")}
        else:
            raise ValueError(f"unknown scale stage {stage!r}")
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "tree_peak_mib": sampler.peak / 2 ** 20,
            "max_rss_mib": max_rss_mib(), "check": check}


def measure_isolated(stage: str, args: dict) -> dict:
    """:func:`measure` in a fresh Python process."""
    cmd = [sys.executable, "-m", "panoptool.benchmarks.scale", stage, json.dumps(args)]
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env=dict(os.environ, PANOPTOOL_NO_PROGRESS="1"))
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"scale measurement of {stage} failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(config: BenchConfig) -> BenchSection:
    """Measure both stages on the small and the large count, ``repeats`` times each."""
    from ..runner import resolve_workers
    from ..synth import SynthConfig, make_dataset

    counts = QUICK_COUNTS if config.quick else COUNTS
    repeats = 1 if config.quick else 3
    height, width = SIZE
    workers = resolve_workers(config.workers)
    split = "val"
    found: dict[tuple[str, int], list[dict]] = {}
    with tempfile.TemporaryDirectory(dir=config.workdir or None) as tmp:
        tmp = Path(tmp)
        big = counts[-1]
        roots = {big: tmp / f"root{big}"}
        maps = {big: tmp / f"maps{big}"}
        prep = time.perf_counter()
        make_dataset(roots[big], SynthConfig(n=big, height=height, width=width, seed=0,
                                             split=split), workers=workers,
                     show_progress=False)
        _write_maps(roots[big], split, maps[big], seed=0)
        for n in counts[:-1]:
            roots[n], maps[n] = tmp / f"root{n}", tmp / f"maps{n}"
            _first_images(roots[big], maps[big], split, n, roots[n], maps[n])
        prep = time.perf_counter() - prep
        for _ in range(repeats):
            for n in counts:
                results = tmp / f"results{n}"
                shutil.rmtree(results, ignore_errors=True)  # a fresh run every time
                found.setdefault(("postprocess", n), []).append(measure_isolated(
                    "postprocess", {"maps": str(maps[n]), "out": str(results),
                                    "workers": workers}))
                cache = tmp / f"cache{n}"
                shutil.rmtree(cache, ignore_errors=True)  # a first evaluation every time
                found.setdefault(("report", n), []).append(measure_isolated(
                    "report", {"root": str(roots[n]), "split": split,
                               "results": str(results), "workers": workers,
                               "cache": str(cache)}))
    rows, verdicts = [], []
    for stage in ("postprocess", "report"):
        small, large = found[(stage, counts[0])], found[(stage, counts[-1])]
        for n in counts:
            runs = found[(stage, n)]
            tree = [r["tree_peak_mib"] for r in runs]
            one = [r["max_rss_mib"] for r in runs]
            secs = [r["seconds"] for r in runs]
            rows.append({"stage": stage, "images": n, "size": f"{height}x{width}",
                         "workers": workers, "runs": len(runs),
                         "tree peak MiB (median)": float(np.median(tree)),
                         "tree peak MiB (min..max)": f"{min(tree):.0f}..{max(tree):.0f}",
                         "largest process MiB (median)": float(np.median(one)),
                         "ms/image (median)": 1000 * float(np.median(secs)) / n})
        tree_growth = (np.median([r["tree_peak_mib"] for r in large])
                       - np.median([r["tree_peak_mib"] for r in small]))
        one_growth = (np.median([r["max_rss_mib"] for r in large])
                      - np.median([r["max_rss_mib"] for r in small]))
        flat = tree_growth <= TOLERANCE_MIB and one_growth <= TOLERANCE_MIB
        verdicts.append(flat)
        checks = {n: found[(stage, n)][0]["check"] for n in counts}
        verdict = "flat" if flat else "NOT FLAT"
        verdicts_note = (f"{stage}: {counts[-1]} vs {counts[0]} images: tree peak "
                         f"{tree_growth:+.1f} MiB, largest process {one_growth:+.1f} MiB "
                         f"(medians) -> {verdict}; sanity {checks}")
        rows[-1]["verdict"] = verdict
        rows[-2]["verdict"] = ""
        verdicts.append(verdicts_note)
    notes = [v for v in verdicts if isinstance(v, str)]
    notes += [
        f"flat = the {counts[-1]}-image peak exceeds the {counts[0]}-image peak by at most "
        f"{TOLERANCE_MIB:.0f} MiB (medians of {repeats} runs), for the whole process tree "
        f"(summed RSS, sampled every {1000 * SAMPLE_S:.0f} ms) and for the largest process "
        f"(max ru_maxrss of the process and its workers)",
        "each measurement is a fresh process: postprocess of the maps into a new folder, then "
        "report of those results with an empty ground-truth cache",
        f"data preparation (synth + maps of {counts[-1]} images) took {prep:.0f} s, not timed",
    ]
    return BenchSection(title="scale: postprocess and report, 100 vs 1,000 images",
                        rows=rows, notes=notes)


if __name__ == "__main__":
    result = measure(sys.argv[1], json.loads(sys.argv[2]))
    print(json.dumps(result))
