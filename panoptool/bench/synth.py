"""Benchmark of ``panoptool synth``: scene painting alone and whole images written to disk."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from panoptool.bench.core import BenchConfig, BenchSection, peak_rss_mib
from panoptool.runtime.pool import keep_freed_memory, resolve_workers
from panoptool.synth.scenes import SynthConfig, make_dataset, make_scene


def _sizes(config: BenchConfig) -> tuple[int, int, int]:
    if config.quick:
        return 64, 128, 2
    return config.height, config.width, config.n_images


def run(config: BenchConfig) -> BenchSection:
    """Time ``make_scene`` and ``make_dataset`` (1 worker and all workers)."""
    height, width, n = _sizes(config)
    rows = []
    keep_freed_memory()  # as run_parallel does for the stage itself
    start = time.perf_counter()
    for i in range(n):
        make_scene((0, i), height, width)
    seconds = time.perf_counter() - start
    rows.append({"step": "make_scene (paint, in memory)", "workers": 1, "images": n,
                 "size": f"{height}x{width}", "ms/image": 1000 * seconds / n,
                 "images/s": n / seconds, "peak MiB": peak_rss_mib()})
    all_workers = resolve_workers(config.workers)
    with tempfile.TemporaryDirectory(dir=config.workdir or None) as tmp:
        for workers in sorted({1, all_workers}):
            out = Path(tmp) / f"w{workers}"
            start = time.perf_counter()
            make_dataset(out, SynthConfig(n=n, height=height, width=width, seed=0),
                         workers=workers, show_progress=False)
            seconds = time.perf_counter() - start
            rows.append({"step": "make_dataset (paint + write 3 PNGs)", "workers": workers,
                         "images": n, "size": f"{height}x{width}",
                         "ms/image": 1000 * seconds / n, "images/s": n / seconds,
                         "peak MiB": peak_rss_mib()})
    notes = ["target: at most 100 ms per image at 1024x2048 (make_dataset, 1 worker)",
             "peak MiB is the max RSS of this process or of one of its worker processes"]
    return BenchSection(title="synth", rows=rows, notes=notes)
