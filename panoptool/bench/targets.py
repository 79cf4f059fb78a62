"""Benchmark of ``panoptool make-targets`` (read GT PNGs, compute, write the 3 target files)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from panoptool.bench.core import BenchConfig, BenchSection, peak_rss_mib
from panoptool.io.cityscapes import list_samples, read_ground_truth
from panoptool.runtime.pool import keep_freed_memory, resolve_workers
from panoptool.synth.scenes import SynthConfig, make_dataset
from panoptool.targets.core import TargetConfig, compute_targets, make_targets


MIN_IMAGES = 32


def run(config: BenchConfig) -> BenchSection:
    """Time target computation alone and the whole stage with 1 and with all workers."""
    # at least 32 images, so that the worker pool's start-up (~0.3 s) is amortised as in a
    # real run over thousands of images
    height, width, n = (64, 128, 2) if config.quick else \
        (config.height, config.width, max(config.n_images, MIN_IMAGES))
    all_workers = resolve_workers(config.workers)
    rows = []
    with tempfile.TemporaryDirectory(dir=config.workdir or None) as tmp:
        root = Path(tmp) / "data"
        make_dataset(root, SynthConfig(n=n, height=height, width=width, seed=0, split="train"),
                     workers=all_workers, show_progress=False)
        keep_freed_memory()
        ground_truth = [read_ground_truth(s, instance_dtype=np.uint16)
                        for s in list_samples(root, "train")]
        start = time.perf_counter()
        for label_ids, instance_ids in ground_truth:
            compute_targets(label_ids, instance_ids, TargetConfig())
        seconds = time.perf_counter() - start
        rows.append({"step": "compute_targets (in memory)", "workers": 1, "images": n,
                     "size": f"{height}x{width}", "ms/image": 1000 * seconds / n,
                     "ms/image/core": 1000 * seconds / n, "images/s": n / seconds,
                     "peak MiB": peak_rss_mib()})
        del ground_truth
        for workers in sorted({1, all_workers}):
            start = time.perf_counter()
            summary = make_targets(root, "train", Path(tmp) / f"targets{workers}",
                                   TargetConfig(), workers=workers, show_progress=False)
            seconds = time.perf_counter() - start
            assert summary.done == n
            rows.append({"step": "make_targets (read + compute + write)", "workers": workers,
                         "images": n, "size": f"{height}x{width}",
                         "ms/image": 1000 * seconds / n,
                         "ms/image/core": 1000 * seconds * workers / n,
                         "images/s": n / seconds, "peak MiB": peak_rss_mib()})
    notes = ["target: at most 40 ms per image per core at 1024x2048, scaling with workers",
             f"ms/image/core = wall time x workers / images, over at least {MIN_IMAGES} "
             "images; includes the start-up of the worker pool",
             "peak MiB is the max RSS of this process or of one of its worker processes"]
    return BenchSection(title="make-targets", rows=rows, notes=notes)
