"""Benchmark of the boundary metrics in ``report`` and of the contour score (``report --maps``).

On a synthetic split with results made from its ground truth (the ``report`` benchmark's
:func:`~panoptool.bench.report.write_results`) and contour maps made from its contour
targets (blurred, with noise), on one core (workers = 1, OpenCV single-threaded) with a warm
ground-truth cache:

* ``report`` without and with ``--boundary``, alternately, several times: the boundary
  metrics' added milliseconds per image and their share of the report's time (the spread
  over the repetitions is given, the machine may be shared);
* the boundary statistics of one image alone (:func:`panoptool.evaluation.image.boundary_image_stats`);
* what Boundary AP would add: the boundary of every predicted and ground-truth instance
  mask, one by one (instances overlap, so the one-pass band of a label map does not apply);
* the contour score per image, end to end (read maps + ground truth, NMS, matching) and its
  :func:`panoptool.evaluation.metrics.contour.update` alone.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from panoptool.evaluation import runner as ev
from panoptool.io import formats
from panoptool.bench.core import BenchConfig, BenchSection
from panoptool.evaluation.contour_score import score_contours
from panoptool.io.cityscapes import list_samples, read_ground_truth
from panoptool.io.results import read_mask
from panoptool.evaluation.metrics import boundary, contour
from panoptool.synth.scenes import SynthConfig, make_dataset
from panoptool.targets.core import contour_target, inner_boundary, semantic_target
from panoptool.bench.report import write_results


def write_maps(root: Path, split: str, out: Path, seed: int = 0) -> Path:
    """Prediction maps whose contour_prob is a dilation-2 contour target, shifted by a few
    pixels in places, blurred, with noise: a network-like map that scores well below 100."""
    rng = np.random.default_rng(seed)
    for s in list_samples(root, split):
        label, inst = read_ground_truth(s)
        h, w = label.shape
        target = contour_target(inst, 2).astype(np.float32)
        shifted = np.roll(target, (3, -2), axis=(0, 1))
        blocks = cv2.resize((rng.random((h // 64 + 1, w // 64 + 1)) < 0.3).astype(np.uint8),
                            (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
        target[blocks] = shifted[blocks]
        prob = cv2.GaussianBlur(target, (0, 0), 2.0) * 1.2
        prob = np.clip(prob + rng.random((h, w), np.float32) * 0.5 - 0.15, 0, 1)
        formats.write_maps(formats.maps_path(out, split, s.stem), train_ids=semantic_target(label),
                           confidence=np.ones((h, w), np.float32), contour_prob=prob,
                           offset_yx=np.zeros((2, h, w), np.float32))
    return out


def _best_of(func, repeat: int) -> float:
    func()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def _instance_boundaries(job: ev.ImageJob, gt, width: int) -> None:
    """The boundary of every predicted and ground-truth instance mask (Boundary AP's need)."""
    masks = [read_mask(path, gt.shape) > 0
             for path, _, _ in ev.read_instance_list(job.instance_txt, job.results_dir)]
    index = gt.segment_index
    masks += [index == k for k in np.flatnonzero(gt.instance_ids >= 1000)]
    for mask in masks:
        ys, xs = np.nonzero(mask)
        if len(ys) == 0:
            continue
        y0, y1 = max(0, ys.min() - 1), min(gt.shape[0], ys.max() + 2)
        x0, x1 = max(0, xs.min() - 1), min(gt.shape[1], xs.max() + 2)
        crop = mask[y0:y1, x0:x1].astype(np.uint8)
        # the image border is outside the mask too: pad where the crop touches it
        pad = cv2.copyMakeBorder(crop, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
        eroded = cv2.erode(pad, np.ones((3, 3), np.uint8), iterations=width)[1:-1, 1:-1]
        _ = crop - eroded


def run(config: BenchConfig) -> BenchSection:
    """Time the boundary metrics and the contour score (see the module docstring)."""
    if config.quick:
        height, width, n, repeat = 64, 128, 2, 2
    else:
        height, width, n, repeat = config.height, config.width, config.n_images, 5
    cv2.setNumThreads(1)
    size = f"{height}x{width}"
    with tempfile.TemporaryDirectory(dir=config.workdir or None) as tmp:
        tmp = Path(tmp)
        root = tmp / "root"
        make_dataset(root, SynthConfig(n=n, height=height, width=width, seed=0), workers=1,
                     show_progress=False)
        results = write_results(root, "val", tmp / "results")
        maps = write_maps(root, "val", tmp / "maps")
        cache = tmp / "cache"
        ev.evaluate(root, "val", results, workers=1, cache=cache, show_progress=False)
        rows, metrics = _time_report(root, results, cache, n, repeat, size)
        one_image, stem = _time_one_image(root, results, cache, repeat, size)
        rows += one_image
        rows += _time_contour_score(root, maps, stem, n, repeat, size)
    return BenchSection(title="boundary metrics and contour score", rows=rows,
                        notes=_notes(repeat, metrics))


def _time_report(root: Path, results: Path, cache: Path, n: int, repeat: int, size: str
                 ) -> tuple[list[dict], dict]:
    """Rows of ``report`` without and with ``--boundary`` (alternating) and their
    difference; the metrics of the last run (with ``--boundary``)."""
    off, on = [], []
    for _ in range(repeat):  # alternate, so that a change in the machine's load hits both
        for flag, times in ((False, off), (True, on)):
            start = time.perf_counter()
            metrics = ev.evaluate(root, "val", results, workers=1, cache=cache,
                                  boundary=flag, show_progress=False).metrics
            times.append(1000 * (time.perf_counter() - start) / n)
    added = [b - a for a, b in zip(off, on)]
    share = [d / a for d, a in zip(added, off)]
    rows = [_row("report (3 parts), warm GT cache, 1 worker", size, n, off),
            _row("report --boundary, same", size, n, on),
            _row("added by --boundary", size, n, added,
                 extra=f"{100 * statistics.median(share):.0f}% of report "
                       f"({100 * min(share):.0f}..{100 * max(share):.0f})")]
    return rows, metrics


def _time_one_image(root: Path, results: Path, cache: Path, repeat: int, size: str
                    ) -> tuple[list[dict], str]:
    """Rows of the boundary pieces on the split's first image (its statistics, one band,
    the per-instance boundaries Boundary AP would need); and that image's stem."""
    jobs, _ = ev.plan_jobs(root, "val", results, cache)
    job = dataclasses.replace(jobs[0], boundary_ratio=boundary.DEFAULT_RATIO)
    gt = ev.read_segmented_ground_truth(job.label_ids_path, job.instance_ids_path,
                                        job.cache_file)
    sem_keep, pan_keep = {}, {}
    ev.semantic_stats(gt, job.semantic_path, keep=sem_keep)
    ev.panoptic_stats(gt, job.panoptic_png, job.panoptic_ids, job.panoptic_categories,
                      keep=pan_keep)
    d = boundary.boundary_width(gt.shape)
    t_stats = _best_of(lambda: ev.boundary_image_stats(gt, job, sem_keep, pan_keep), repeat)
    labels = boundary.ground_truth_train_ids(gt)
    t_band = _best_of(lambda: boundary.boundary_band(labels, d), repeat)
    t_ap = _best_of(lambda: _instance_boundaries(job, gt, d), repeat)
    n_inst = len(ev.read_instance_list(job.instance_txt, job.results_dir))
    rows = [_row("boundary statistics of one image (semantic + panoptic)", size, 1,
                 [1000 * t_stats], extra=f"d = {d} px; best of {repeat}"),
            _row("one boundary band of a label map (of 4 per image)", size, 1,
                 [1000 * t_band], extra=f"best of {repeat}"),
            _row("Boundary AP's need: per-instance mask boundaries", size, 1,
                 [1000 * t_ap],
                 extra=f"{n_inst} predicted + {int((gt.instance_ids >= 1000).sum())} "
                       f"gt instances; best of {repeat}")]
    return rows, jobs[0].stem


def _time_contour_score(root: Path, maps: Path, stem: str, n: int, repeat: int, size: str
                        ) -> list[dict]:
    """Rows of the contour score end to end, and of its update and NMS alone on one image
    (the maps of ``stem``, the ground-truth boundaries of the split's first image)."""
    from panoptool.io.cityscapes import read_instance_ids

    t_cs = []
    score_contours(root, "val", maps, workers=1, show_progress=False)  # compiles the loop
    for _ in range(repeat):
        start = time.perf_counter()
        cmetrics, _ = score_contours(root, "val", maps, workers=1, show_progress=False)
        t_cs.append(1000 * (time.perf_counter() - start) / n)
    prob = formats.read_maps(formats.maps_path(maps, "val", stem))["contour_prob"]
    gtb = inner_boundary(read_instance_ids(list_samples(root, "val")[0].instance_ids_path))
    tol = contour.tolerance_px(gtb.shape)
    t_upd = _best_of(lambda: contour.update(prob, gtb, tol), repeat)
    t_nms = _best_of(lambda: contour.contour_nms(prob), repeat)
    return [_row("contour score (report --maps), read + score, 1 worker", size, n,
                 t_cs, extra=f"ODS {cmetrics['contour_ODS']:.1f}, "
                             f"OIS {cmetrics['contour_OIS']:.1f}"),
            _row("contour score: metrics.contour.update alone", size, 1,
                 [1000 * t_upd], extra=f"tolerance {tol:.1f} px; best of {repeat}"),
            _row("contour score: its NMS alone", size, 1, [1000 * t_nms],
                 extra=f"best of {repeat}")]


def _notes(repeat: int, metrics: dict) -> list[str]:
    return [
        f"one core: workers = 1 and cv2.setNumThreads(1); ms/image is the median of {repeat} "
        f"runs, spread = min..max; report timings alternate without/with --boundary",
        "the issue's rule: --boundary on by default if it costs under 30% of the report's "
        "time; the 'added' row decides (the default is off where it is above)",
        "Boundary AP would need each instance's own boundary (instances overlap) and a second "
        "matching pass of the AP evaluation; the per-instance row is the boundary part only",
        "sanity: " + ", ".join(f"{k} {metrics[k]:.2f}" for k in ("PQ", "boundary_PQ",
                                                                  "boundary_IoU")
                               if metrics.get(k) is not None),
        "the machine may be shared with other work while this runs; compare rows of one run",
    ]


def _row(step: str, size: str, n: int, ms: list[float], extra: str = "") -> dict:
    return {"step": step, "size": size, "images": n,
            "ms/image": round(statistics.median(ms), 2),
            "spread": f"{min(ms):.1f}..{max(ms):.1f}", "notes": extra}
