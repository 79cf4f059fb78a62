"""Benchmark of ``panoptool convert panoptic-gt`` against cityscapesscripts' createPanopticImgs.

On a synthetic split it times panoptool's conversion of the whole split (all workers, fresh
output, then a re-run that finds every image done) and createPanopticImgs on the first images
of the same data (it is single-process), and checks that both wrote the same JSON text and
pixel-equal PNGs on those images.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from panoptool.bench.core import BenchConfig, BenchSection, peak_rss_mib
from panoptool.runtime.pool import resolve_workers


def _official_seconds(root: Path, out: Path) -> float:
    from cityscapesscripts.preparation.createPanopticImgs import convert2panoptic

    from panoptool.evaluation.official import _official_environment

    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with _official_environment(out):
        convert2panoptic(str(root / "gtFine"), str(out), False, ["val"])
    return time.perf_counter() - start


def _same_output(official: Path, ours: Path, base: str) -> bool:
    from PIL import Image

    from panoptool.io.files import read_png

    text = (official / f"{base}.json").read_text()
    if text != (ours / f"{base}.json").read_text():
        return False
    for ann in json.loads(text)["annotations"]:
        theirs = np.array(Image.open(official / base / ann["file_name"]))
        if not np.array_equal(theirs, read_png(ours / base / ann["file_name"])):
            return False
    return True


def run(config: BenchConfig) -> BenchSection:
    """Time the panoptic ground-truth conversion of panoptool and of cityscapesscripts."""
    from panoptool.convert.panoptic import convert_panoptic_gt
    from panoptool.synth.scenes import SynthConfig, make_dataset

    if config.quick:
        height, width, n, n_official = 128, 256, 3, 2
    else:
        height, width, n = config.height, config.width, config.n_images
        n_official = min(n, 4)
    workers = resolve_workers(config.workers)
    with tempfile.TemporaryDirectory(dir=config.workdir or None) as tmp:
        tmp = Path(tmp)
        root = tmp / "root"
        make_dataset(root, SynthConfig(n=n, height=height, width=width, seed=0),
                     workers=workers, show_progress=False)
        start = time.perf_counter()
        summary = convert_panoptic_gt(root, "val", tmp / "ours", workers=workers,
                                      show_progress=False)
        ours_s = time.perf_counter() - start
        start = time.perf_counter()
        again = convert_panoptic_gt(root, "val", tmp / "ours", workers=workers,
                                    show_progress=False)
        again_s = time.perf_counter() - start
        # the official script on the first images of the same data (same seed)
        off_root = tmp / "official_root"
        make_dataset(off_root, SynthConfig(n=n_official, height=height, width=width, seed=0),
                     workers=1, show_progress=False)
        official_s = _official_seconds(off_root, tmp / "official")
        small = convert_panoptic_gt(off_root, "val", tmp / "ours_small", workers=1,
                                    show_progress=False)
        equal = _same_output(tmp / "official", tmp / "ours_small", "cityscapes_panoptic_val")
    if not equal or summary.converted != n or again.converted != 0 or small.images != n_official:
        raise AssertionError("convert panoptic-gt differs from createPanopticImgs or did not "
                             "resume")
    official_ms = 1000 * official_s / n_official
    rows = [
        {"converter": "panoptool convert panoptic-gt", "workers": workers, "images": n,
         "size": f"{height}x{width}", "wall s": ours_s, "ms/image": 1000 * ours_s / n,
         "x official": official_ms * n / 1000 / ours_s},
        {"converter": "panoptool convert panoptic-gt, re-run (all done)", "workers": workers,
         "images": n, "size": f"{height}x{width}", "wall s": again_s,
         "ms/image": 1000 * again_s / n, "x official": official_ms * n / 1000 / again_s},
        {"converter": "cityscapesscripts createPanopticImgs", "workers": 1,
         "images": n_official, "size": f"{height}x{width}", "wall s": official_s,
         "ms/image": official_ms, "x official": 1.0},
    ]
    notes = [
        f"same JSON text and pixel-equal PNGs as createPanopticImgs on the {n_official} images "
        f"it converted (checked in this run)",
        "'x official' compares with createPanopticImgs timed here on the first images of the "
        "same data (it is single-process); panoptool's time includes its worker pool start-up",
        f"peak RSS: {peak_rss_mib():.0f} MiB (this process or one worker)",
    ]
    return BenchSection(title="convert", rows=rows, notes=notes)
