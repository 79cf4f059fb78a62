"""Bench of ``predict``: frames per second end to end at 1024x2048 (ResNet-18, untrained
weights: the speed does not depend on them), the time of each stage, and how well the stages
overlap (end to end against the network alone on the same frames)."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path


from panoptool.bench.core import BenchConfig, BenchSection, peak_rss_mib


def _checkpoint(path: Path, backbone: str) -> Path:
    """A checkpoint of a freshly initialised network, in the format ``train`` writes."""
    import torch

    from panoptool.model import PanopticContourNet
    from panoptool.training.loop import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, save_checkpoint

    torch.manual_seed(0)
    model = PanopticContourNet(backbone=backbone)
    save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
                           "network": json.dumps(model.config.to_dict()),
                           "config": json.dumps({"stage": "bench"}),
                           "model": model.state_dict(), "iteration": 0})
    return path


def run(config: BenchConfig) -> BenchSection:
    import torch

    from panoptool.runtime.pool import resolve_workers

    h, w = (128, 256) if config.quick else (config.height, config.width)
    n = 2 if config.quick else config.n_images
    repeats = 1 if config.quick else 3
    threads = resolve_workers(config.workers)
    backbone = "resnet18"
    with tempfile.TemporaryDirectory(dir=config.workdir or None) as tmp:
        tmp = Path(tmp)
        frames, ckpt = _setup(tmp, n, h, w, backbone)
        decode_ms, net_s, runs = _measure(frames, ckpt, tmp, repeats, threads, config.workers)
        torch.set_num_threads(threads)
    common = {"backbone": backbone, "device": f"cpu x{threads}", "size": f"{h}x{w}",
              "frames": n}
    rows = _table(common, decode_ms, net_s, runs)
    notes = _notes(repeats, cuda=torch.cuda.is_available() and not config.quick)
    return BenchSection(title="predict", rows=rows, notes=notes)


def _setup(tmp: Path, n: int, h: int, w: int, backbone: str) -> tuple[Path, Path]:
    """``n`` synthetic frames in ``tmp/frames`` and an untrained checkpoint; (frames folder,
    checkpoint)."""
    from panoptool.io.files import write_png
    from panoptool.synth.scenes import make_scene

    for i in range(n):
        image, _, _ = make_scene(1000 + i, h, w)
        write_png(tmp / "frames" / f"frame_{i:03d}.png", image)
    return tmp / "frames", _checkpoint(tmp / "net.pt", backbone)


def _measure(frames: Path, ckpt: Path, tmp: Path, repeats: int, threads: int, workers: int
             ) -> tuple[float, list[float], dict[str, dict[str, list[float]]]]:
    """(decode ms/frame, network alone s/frame per repeat, per predict variant its lists of
    end-to-end s/frame, frames/s, derivation and writing ms/frame per repeat); the network
    alone and predict alternate in each repeat."""
    from panoptool.inference.backends import TorchBackend
    from panoptool.postprocess import PostprocessConfig
    from panoptool.predict.config import PredictConfig
    from panoptool.predict.stream import pad_to_stride, predict, read_input_image
    from panoptool.training.data import normalize

    paths = sorted(frames.glob("*.png"))
    n = len(paths)
    t0 = time.perf_counter()
    xs = [pad_to_stride(normalize(read_input_image(p)), 32) for p in paths]
    decode_ms = 1000 * (time.perf_counter() - t0) / n

    backend = TorchBackend(ckpt, device="cpu", threads=threads)
    backend(xs[0][None])  # warm-up
    variants = {"": PostprocessConfig(), " --no-split": PostprocessConfig(split=False)}
    net_s: list[float] = []
    runs: dict[str, dict[str, list[float]]] = {
        v: {"e2e": [], "fps": [], "derive": [], "write": []} for v in variants}
    for r in range(repeats):
        t0 = time.perf_counter()
        for x in xs:
            backend(x[None])
        net_s.append((time.perf_counter() - t0) / n)
        for v, post in variants.items():
            summary = predict(PredictConfig(inputs=(str(frames),), out=str(tmp / f"out{r}{v}"),
                                            checkpoint=str(ckpt), postprocess=post,
                                            device="cpu", threads=threads, workers=workers),
                              show_progress=False, backend=backend)
            runs[v]["e2e"].append(summary.times["run"] / n)
            runs[v]["fps"].append(n / summary.times["run"])
            runs[v]["derive"].append(1000 * summary.derive_seconds / n)
            runs[v]["write"].append(1000 * summary.write_seconds / n)
    del backend
    return decode_ms, net_s, runs


def _spread(values: list[float], scale: float = 1.0) -> str:
    v = [x * scale for x in values]
    return f"{statistics.median(v):.4g} ({min(v):.4g}-{max(v):.4g})"


def _table(common: dict, decode_ms: float, net_s: list[float],
           runs: dict[str, dict[str, list[float]]]) -> list[dict]:
    rows = [{"step": "decode + normalise + pad (loader process)", **common,
             "ms/frame": decode_ms},
            {"step": "network alone (TorchBackend, batch 1)", **common,
             "ms/frame": 1000 * statistics.median(net_s),
             "frames/s": 1 / statistics.median(net_s),
             "runs: ms/frame median (min-max)": _spread(net_s, 1000)}]
    for v, got in runs.items():
        ratios = [e / m for e, m in zip(got["e2e"], net_s)]
        rows.append({"step": f"derivation{v} (worker, per frame)", **common,
                     "ms/frame": statistics.median(got["derive"]),
                     "runs: ms/frame median (min-max)": _spread(got["derive"])})
        rows.append({"step": "writing panoptic PNG + overlay JPEG + annotation (worker)",
                     **common, "ms/frame": statistics.median(got["write"])})
        rows.append({"step": f"predict{v} end to end", **common,
                     "ms/frame": 1000 * statistics.median(got["e2e"]),
                     "frames/s": statistics.median(got["fps"]),
                     "runs: ms/frame median (min-max)": _spread(got["e2e"], 1000),
                     "end-to-end / network": _spread(ratios), "peak MiB": peak_rss_mib()})
    return rows


def _notes(repeats: int, cuda: bool) -> list[str]:
    notes = [f"target: end-to-end / network at most 1.15 (the derivation and the writing "
             f"hidden behind the network); {repeats} runs, the network alone and predict "
             f"alternating, ratio per run",
             "end to end = from the start of decoding to the last file written (start-up of "
             "the worker pool and loading the network excluded); default settings: --format "
             "panoptic,overlay, --workers all cores, 1 loader process, threads = --workers",
             "derivation and writing run in the worker processes while the network computes "
             "the next frame: their times are summed per frame, not added to the wall time",
             "untrained ResNet-18 weights (fine for the network's speed, not for the "
             "derivation's): the untrained network labels most of the image as one thing "
             "class, and the split then clusters the predicted centres of one instance "
             "covering most of the image, seconds per frame; with --no-split, and with a "
             "trained network's maps (the postprocess section: 23-32 ms for the whole "
             "derivation at 1024x2048), the derivation is far behind the network"]
    if cuda:
        notes.append("a CUDA device is present; predict --device cuda [--amp] was not timed "
                     "by this section")
    else:
        notes.append("no CUDA device here: predict fps on a GPU (with and without --amp) is "
                     "not measured")
    return notes
