"""Benchmark of the stages on the two dataset formats: ms per megapixel.

One synthetic split is written twice, in the Cityscapes layout and as COCO panoptic (same
scenes, same seed); ``make-targets``, ``postprocess --oracle`` and ``report`` (mIoU + AP + PQ,
ground-truth cache warm) run on each, interleaved, as their library calls. The real two-image
COCO sample (``../shared/data/coco_panoptic_sample``, where present) gives the same three
figures on real COCO images. The two formats give identical metrics (checked here too).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from panoptool.bench.core import BenchConfig, BenchSection
from panoptool.errors import ConfigError
from panoptool.io.datasets import write_description
from panoptool.postprocess.config import CITYSCAPES_PIXELS, PostprocessConfig, scale_area
from panoptool.runtime.pool import resolve_workers
from panoptool.synth.scenes import SynthConfig, make_dataset
from panoptool.targets.core import TargetConfig, make_targets

SPLIT = "val"
#: The real COCO sample beside the repository (tests use it too).
COCO_SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "coco_panoptic_sample"


def _pipeline(root: Path, split: str, work: Path, min_area: int, workers: int
              ) -> tuple[dict[str, float], dict]:
    """Seconds of make-targets, postprocess --oracle and a warm-cache report; the metrics."""
    from panoptool.evaluation.runner import evaluate
    from panoptool.postprocess.runner import postprocess_oracle

    seconds = {}
    targets, results, cache = work / "targets", work / "results", work / "cache"
    start = time.perf_counter()
    make_targets(root, split, targets, TargetConfig(), workers=workers, overwrite=True,
                 show_progress=False)
    seconds["make-targets"] = time.perf_counter() - start
    start = time.perf_counter()
    postprocess_oracle(root, split, targets, results, PostprocessConfig(min_area=min_area),
                       workers=workers, overwrite=True, show_progress=False)
    seconds["postprocess --oracle"] = time.perf_counter() - start
    evaluate(root, split, results, workers=workers, cache=cache, show_progress=False)
    start = time.perf_counter()
    metrics = evaluate(root, split, results, workers=workers, cache=cache,
                       show_progress=False).metrics
    seconds["report (warm GT cache)"] = time.perf_counter() - start
    return seconds, metrics


def _sample_root(tmp: Path) -> Path | None:
    if not (COCO_SAMPLE / "panoptic_examples.json").is_file():
        return None
    return write_description(tmp / "coco_sample.json", {SPLIT: {
        "images": str(COCO_SAMPLE / "images"),
        "panoptic_json": str(COCO_SAMPLE / "panoptic_examples.json"),
        "panoptic_dir": str(COCO_SAMPLE / "panoptic_examples")}}, name="coco-sample")


def run(config: BenchConfig) -> BenchSection:
    """ms per megapixel of three stages on both formats of one synthetic split, and on the
    real COCO sample."""
    if config.quick:
        height, width, n, reps = 128, 256, 2, 1
    else:
        height, width, n, reps = config.height, config.width, config.n_images, 3
    workers = resolve_workers(config.workers)
    min_area = scale_area(300, height * width / CITYSCAPES_PIXELS)
    rows, notes = [], []
    with tempfile.TemporaryDirectory(dir=config.workdir or None) as tmp:
        tmp = Path(tmp)
        roots = {}
        for fmt in ("cityscapes", "coco-panoptic"):
            roots[fmt] = tmp / fmt
            make_dataset(roots[fmt], SynthConfig(n=n, height=height, width=width, seed=0,
                                                 split=SPLIT),
                         workers=workers, show_progress=False, format=fmt)
        runs: dict[str, list[dict[str, float]]] = {fmt: [] for fmt in roots}
        metrics = {}
        for _ in range(reps):
            for fmt, root in roots.items():
                seconds, metrics[fmt] = _pipeline(root, SPLIT, tmp / f"work-{fmt}", min_area,
                                                  workers)
                runs[fmt].append(seconds)
        megapixels = n * height * width / 1e6
        for fmt in roots:
            for stage in runs[fmt][0]:
                values = [r[stage] / megapixels * 1000 for r in runs[fmt]]
                rows.append({"data": f"synthetic {height}x{width}, {n} images", "format": fmt,
                             "stage": stage, "ms / megapixel": f"{min(values):.1f}",
                             "spread": f"{min(values):.1f}-{max(values):.1f}"})
        for key in ("PQ", "mIoU", "AP"):
            a, b = metrics["cityscapes"].get(key), metrics["coco-panoptic"].get(key)
            if a is None or b is None or abs(a - b) > 1e-9:
                raise ConfigError(f"bench datasets: {key} differs between the formats "
                                  f"({a} vs {b})")
        notes.append(f"Both formats: identical PQ {metrics['cityscapes']['PQ']:.2f}, mIoU "
                     f"{metrics['cityscapes']['mIoU']:.2f}, AP {metrics['cityscapes']['AP']:.2f} "
                     f"(oracle, min-area {min_area}); {reps} interleaved runs, {workers} "
                     f"workers; the minimum and the spread.")
        sample = _sample_root(tmp)
        if sample is not None:
            from panoptool.io.datasets import open_dataset

            images = [s.image for s in open_dataset(sample).samples(SPLIT)]
            mp = sum(i.height * i.width for i in images) / 1e6
            sample_runs = [_pipeline(sample, SPLIT, tmp / "work-sample", 44, workers)[0]
                           for _ in range(reps)]
            for stage in sample_runs[0]:
                values = [r[stage] / mp * 1000 for r in sample_runs]
                rows.append({"data": f"real COCO sample, {len(images)} images "
                                     f"({mp:.2f} MP)", "format": "coco-panoptic",
                             "stage": stage, "ms / megapixel": f"{min(values):.1f}",
                             "spread": f"{min(values):.1f}-{max(values):.1f}"})
            notes.append("The real sample's figures include each stage's fixed costs (worker "
                         "start, planning) spread over only 0.5 megapixel.")
    return BenchSection(title="datasets (ms per megapixel, Cityscapes vs COCO panoptic)",
                        rows=rows, notes=notes)
