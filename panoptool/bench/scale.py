"""Scale bench: ``postprocess`` and ``report`` on 1,000 small images use no more memory than
on 100 (both stream their images).

Data: a synthetic split of 1,000 images of 128x256 (``panoptool.synth.scenes``) and network-like
prediction maps made from its ground truth (as the postprocess bench makes them); the first
100 images (the same ones: image i is drawn from the seed sequence (seed, i)) form the
100-image case. Each measurement runs in a fresh Python process, with the stage's worker
pool, and records

* the peak of the summed memory of the whole process tree (the measuring process and its
  workers), PSS and RSS, sampled from ``/proc/<pid>/smaps_rollup`` and ``statm``, and
* the largest single-process peak, ``max(ru_maxrss)`` of the process and its reaped
  children (``getrusage(RUSAGE_SELF / RUSAGE_CHILDREN)``), which no sampling can miss.

The memory is flat when the 1,000-image peak is no higher than the 100-image peak, up to a
tolerance (:data:`TOLERANCE_MIB`), and when, in one process running both stages' per-image
functions over all 1,000 images, the memory after the last image is that after image 100
(:data:`STREAM_TOLERANCE_MIB`): nothing per image stays in memory. What a run must hold for
all images (the list of jobs, ``panoptic.json``'s segment lists) grows by a few KiB per image.
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

from panoptool.bench.core import BenchConfig, BenchSection

#: Image counts compared, and (quick) the counts of a smoke test.
COUNTS = (100, 1000)
QUICK_COUNTS = (10, 30)
SIZE = (128, 256)
#: A 1,000-image peak may exceed the 100-image one by this much and still count as flat.
TOLERANCE_MIB = 8.0
SAMPLE_S = 0.02
#: In one single-process run, RSS after the last image may exceed RSS after image 100 by this.
STREAM_TOLERANCE_MIB = 2.0


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


def _descendants(root_pid: int) -> list[int]:
    """A process and all its descendants (Linux ``/proc``)."""
    out, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        if pid in out:
            continue
        out.append(pid)
        todo += _children(pid)
    return out


def tree_memory_bytes(root_pid: int) -> tuple[int, int]:
    """``(RSS, PSS)`` summed over a process and its descendants, bytes.

    The RSS sum counts pages that forked workers share with their parent once per process;
    the PSS sum (proportional set size, ``/proc/<pid>/smaps_rollup``) splits them, so it is
    the physical memory of the tree.
    """
    page = os.sysconf("SC_PAGE_SIZE")
    rss = pss = 0
    for pid in _descendants(root_pid):
        try:
            with open(f"/proc/{pid}/statm") as fh:
                rss += int(fh.read().split()[1]) * page
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
                        break
        except (OSError, IndexError, ValueError):  # the process ended meanwhile
            continue
    return rss, pss


def rss_mib() -> float:
    """Resident memory of this process now, MiB."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


class TreeMemorySampler:
    """Samples :func:`tree_memory_bytes` of this process in a thread; peaks in bytes."""

    def __init__(self, interval: float = SAMPLE_S):
        self.interval = interval
        self.peak_rss = self.peak_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        rss, pss = tree_memory_bytes(os.getpid())
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_pss = max(self.peak_pss, pss)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> "TreeMemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def max_rss_mib() -> float:
    """Largest peak RSS of this process and of any reaped child, MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024.0


# --- data ------------------------------------------------------------------------------------

def _write_maps(root: Path, split: str, maps_dir: Path, seed: int) -> None:
    """Network-like maps for every image of the split, from its ground truth."""
    from panoptool.io import formats
    from panoptool.io.cityscapes import list_samples, read_ground_truth
    from panoptool.targets.core import TargetConfig, compute_targets

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
    from panoptool.io import formats
    from panoptool.io.cityscapes import list_samples

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
    """Run ``postprocess``, ``report`` or the streaming check once here; its wall time and
    memory."""
    from panoptool.runtime.pool import keep_freed_memory

    keep_freed_memory()
    with TreeMemorySampler() as sampler:
        start = time.perf_counter()
        if stage == "postprocess":
            from panoptool.postprocess.runner import postprocess_maps
            summary = postprocess_maps(args["maps"], args["out"], workers=args["workers"],
                                       show_progress=False)
            check = {"instances": summary.instances}
        elif stage == "report":
            from panoptool.evaluation.runner import evaluate
            result = evaluate(args["root"], args["split"], args["results"],
                              workers=args["workers"], cache=args["cache"],
                              show_progress=False)
            check = {k: result.metrics[k] for k in ("mIoU", "AP", "PQ")}
        elif stage == "stream":
            check = _stream(args)
        else:
            raise ValueError(f"unknown scale stage {stage!r}")
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "tree_rss_mib": sampler.peak_rss / 2 ** 20,
            "tree_pss_mib": sampler.peak_pss / 2 ** 20, "max_rss_mib": max_rss_mib(),
            "check": check}


def _stream(args: dict) -> dict:
    """Both stages' per-image functions in this process over all images, with this
    process's RSS after image ``args["at"]`` and after the last image (the images stream if
    the two are equal: nothing per image stays in memory)."""
    from functools import partial

    from panoptool.evaluation.runner import ImageStats, evaluate_image, plan_jobs
    from panoptool.postprocess import PostprocessConfig
    from panoptool.postprocess.runner import _process_maps
    from panoptool.io import formats

    at = args["at"]
    out = {}
    paths = formats.find_maps(args["maps"])
    func = partial(_process_maps, out=args["out"], config=PostprocessConfig())
    for k, path in enumerate(paths, start=1):
        func(str(path))
        if k == at:
            out["postprocess_rss_at"] = rss_mib()
    out["postprocess_rss_end"] = rss_mib()
    jobs, _ = plan_jobs(args["root"], args["split"], args["results"], None)
    total = ImageStats()
    for k, job in enumerate(jobs, start=1):
        total = total + evaluate_image(job)
        if k == at:
            out["report_rss_at"] = rss_mib()
    out["report_rss_end"] = rss_mib()
    return out


def measure_isolated(stage: str, args: dict) -> dict:
    """:func:`measure` in a fresh Python process."""
    cmd = [sys.executable, "-m", "panoptool.bench.scale", stage, json.dumps(args)]
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env=dict(os.environ, PANOPTOOL_NO_PROGRESS="1"))
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"scale measurement of {stage} failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(config: BenchConfig) -> BenchSection:
    """Measure both stages on the small and the large count, ``repeats`` times each, and the
    streaming check once."""
    from panoptool.runtime.pool import resolve_workers

    counts = QUICK_COUNTS if config.quick else COUNTS
    repeats = 1 if config.quick else 3
    workers = resolve_workers(config.workers)
    split = "val"
    small, big = counts
    with tempfile.TemporaryDirectory(dir=config.workdir or None) as tmp:
        tmp = Path(tmp)
        roots, maps, prep = _setup(tmp, counts, split, workers)
        found = _measure(tmp, roots, maps, counts, split, workers, repeats)
        stream = measure_isolated("stream", {
            "maps": str(maps[big]), "out": str(tmp / "stream"), "root": str(roots[big]),
            "split": split, "results": str(tmp / f"results{big}"), "at": small})["check"]
    rows, notes, flat_all = [], [], True
    for stage in ("postprocess", "report"):
        stage_rows, note, flat = _stage_rows(stage, found, stream, counts, workers)
        rows += stage_rows
        notes.append(note)
        flat_all &= flat
    notes += _notes(counts, repeats, workers, prep, flat_all)
    return BenchSection(title=f"scale: postprocess and report, {small} vs {big} images",
                        rows=rows, notes=notes)


def _setup(tmp: Path, counts: tuple[int, int], split: str, workers: int
           ) -> tuple[dict[int, Path], dict[int, Path], float]:
    """The large dataset with its maps, the small one (its first images), and a warm-up run;
    (dataset roots and maps folders by image count, seconds taken)."""
    from panoptool.synth.scenes import SynthConfig, make_dataset

    height, width = SIZE
    small, big = counts
    roots = {n: tmp / f"root{n}" for n in counts}
    maps = {n: tmp / f"maps{n}" for n in counts}
    prep = time.perf_counter()
    make_dataset(roots[big], SynthConfig(n=big, height=height, width=width, seed=0,
                                         split=split), workers=workers,
                 show_progress=False)
    _write_maps(roots[big], split, maps[big], seed=0)
    _first_images(roots[big], maps[big], split, small, roots[small], maps[small])
    # warm-up, not counted: numba compiles (and caches) the postprocess kernels once
    measure_isolated("postprocess", {"maps": str(maps[small]),
                                     "out": str(tmp / "warmup"), "workers": 1})
    return roots, maps, time.perf_counter() - prep


def _measure(tmp: Path, roots: dict[int, Path], maps: dict[int, Path],
             counts: tuple[int, int], split: str, workers: int, repeats: int
             ) -> dict[tuple[str, int], list[dict]]:
    """(stage, image count) -> the :func:`measure` results of its ``repeats`` runs; each
    repeat runs postprocess then report on each count, into fresh folders."""
    found: dict[tuple[str, int], list[dict]] = {}
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
    return found


def _stage_rows(stage: str, found: dict[tuple[str, int], list[dict]], stream: dict,
                counts: tuple[int, int], workers: int) -> tuple[list[dict], str, bool]:
    """One stage's rows (one per image count, the verdict on the last), its note, and
    whether its memory is flat."""
    height, width = SIZE
    small, big = counts

    def median(n, key):
        return float(np.median([r[key] for r in found[(stage, n)]]))

    rows = []
    for n in counts:
        runs = found[(stage, n)]
        pss = [r["tree_pss_mib"] for r in runs]
        rows.append({"stage": stage, "images": n, "size": f"{height}x{width}",
                     "workers": workers, "runs": len(runs),
                     "tree PSS peak MiB": median(n, "tree_pss_mib"),
                     "PSS min..max": f"{min(pss):.1f}..{max(pss):.1f}",
                     "tree RSS-sum peak MiB": median(n, "tree_rss_mib"),
                     "largest process MiB": median(n, "max_rss_mib"),
                     "ms/image": 1000 * median(n, "seconds") / n})
    growth = {key: median(big, key) - median(small, key)
              for key in ("tree_pss_mib", "tree_rss_mib", "max_rss_mib")}
    streamed = stream[f"{stage}_rss_end"] - stream[f"{stage}_rss_at"]
    verdicts = {"images stream": streamed <= STREAM_TOLERANCE_MIB,
                "largest process flat": growth["max_rss_mib"] <= TOLERANCE_MIB,
                "tree flat": growth["tree_pss_mib"] <= TOLERANCE_MIB}
    checks = {n: found[(stage, n)][0]["check"] for n in counts}
    verdict = ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in verdicts.items())
    rows[-1]["verdict"] = verdict
    rows[-2]["verdict"] = ""
    note = (f"{stage}, {big} vs {small} images (medians): tree PSS {growth['tree_pss_mib']:+.1f} "
            f"MiB, RSS sum {growth['tree_rss_mib']:+.1f} MiB, largest process "
            f"{growth['max_rss_mib']:+.1f} MiB, i.e. "
            f"{1024 * growth['tree_pss_mib'] / (big - small):.1f} KiB (PSS) per extra image; "
            f"one process over all {big} images: RSS after the last image {streamed:+.1f} MiB "
            f"against after image {small} -> {verdict}; sanity {checks}")
    return rows, note, all(verdicts.values())


def _notes(counts: tuple[int, int], repeats: int, workers: int, prep: float,
           flat_all: bool) -> list[str]:
    small, big = counts
    return [
        f"overall: {'flat' if flat_all else 'NOT FLAT'}; 'images stream' = in one process "
        f"over all {big} images, RSS after the last image exceeds RSS after image {small} by "
        f"at most {STREAM_TOLERANCE_MIB:.0f} MiB (nothing per image stays in memory); "
        f"'largest process flat' and 'tree flat' = the {big}-image peak exceeds the "
        f"{small}-image peak by at most {TOLERANCE_MIB:.0f} MiB (medians of {repeats} runs)",
        f"tree = the measuring process and its {workers} workers, sampled every "
        f"{1000 * SAMPLE_S:.0f} ms; PSS splits the pages workers share with their parent "
        f"(the RSS sum counts them once per process); largest process = max ru_maxrss of "
        f"the process and its reaped workers; the pool's PSS used to grow with the length of "
        f"a run (the workers' garbage collector copied the inherited objects' pages), which "
        f"gc.freeze() before the pool forks prevents (runner.run_parallel)",
        "each measurement is a fresh process: postprocess of the maps into a new folder, then "
        "report of those results with an empty ground-truth cache",
        f"data preparation (synth + maps of {big} images, a warm-up run that fills "
        f"numba's cache) took {prep:.0f} s, not timed; ms/image includes the process's start "
        f"(imports, worker pool), which dominates at {small} images",
    ]


if __name__ == "__main__":
    result = measure(sys.argv[1], json.loads(sys.argv[2]))
    print(json.dumps(result))
