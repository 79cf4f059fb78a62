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

    from panoptool.inference.backends import TorchBackend
    from panoptool.training.data import normalize
    from panoptool.io.files import write_png
    from panoptool.postprocess import PostprocessConfig
    from panoptool.predict.stream import PredictConfig, pad_to_stride, predict, read_input_image
    from panoptool.runtime.pool import resolve_workers
    from panoptool.synth.scenes import make_scene

    h, w = (128, 256) if config.quick else (config.height, config.width)
    n = 2 if config.quick else config.n_images
    repeats = 1 if config.quick else 3
    threads = resolve_workers(config.workers)
    backbone = "resnet18"
    rows, notes = [], []
    with tempfile.TemporaryDirectory(dir=config.workdir or None) as tmp:
        tmp = Path(tmp)
        for i in range(n):
            image, _, _ = make_scene(1000 + i, h, w)
            write_png(tmp / "frames" / f"frame_{i:03d}.png", image)
        ckpt = _checkpoint(tmp / "net.pt", backbone)
        paths = sorted((tmp / "frames").glob("*.png"))

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
                summary = predict(PredictConfig(inputs=(str(tmp / "frames"),),
                                                out=str(tmp / f"out{r}{v}"),
                                                checkpoint=str(ckpt), postprocess=post,
                                                device="cpu", threads=threads,
                                                workers=config.workers),
                                  show_progress=False, backend=backend)
                runs[v]["e2e"].append(summary.times["run"] / n)
                runs[v]["fps"].append(n / summary.times["run"])
                runs[v]["derive"].append(1000 * summary.derive_seconds / n)
                runs[v]["write"].append(1000 * summary.write_seconds / n)
        del backend
        torch.set_num_threads(threads)

    def spread(values: list[float], scale: float = 1.0) -> str:
        v = [x * scale for x in values]
        return f"{statistics.median(v):.4g} ({min(v):.4g}-{max(v):.4g})"

    common = {"backbone": backbone, "device": f"cpu x{threads}", "size": f"{h}x{w}",
              "frames": n}
    rows.append({"step": "decode + normalise + pad (loader process)", **common,
                 "ms/frame": decode_ms})
    rows.append({"step": "network alone (TorchBackend, batch 1)", **common,
                 "ms/frame": 1000 * statistics.median(net_s),
                 "frames/s": 1 / statistics.median(net_s),
                 "runs: ms/frame median (min-max)": spread(net_s, 1000)})
    for v, got in runs.items():
        ratios = [e / m for e, m in zip(got["e2e"], net_s)]
        rows.append({"step": f"derivation{v} (worker, per frame)", **common,
                     "ms/frame": statistics.median(got["derive"]),
                     "runs: ms/frame median (min-max)": spread(got["derive"])})
        rows.append({"step": "writing panoptic PNG + overlay JPEG + annotation (worker)",
                     **common, "ms/frame": statistics.median(got["write"])})
        rows.append({"step": f"predict{v} end to end", **common,
                     "ms/frame": 1000 * statistics.median(got["e2e"]),
                     "frames/s": statistics.median(got["fps"]),
                     "runs: ms/frame median (min-max)": spread(got["e2e"], 1000),
                     "end-to-end / network": spread(ratios), "peak MiB": peak_rss_mib()})
    notes += [f"target: end-to-end / network at most 1.15 (the derivation and the writing "
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
    if torch.cuda.is_available() and not config.quick:
        notes.append("a CUDA device is present; predict --device cuda [--amp] was not timed "
                     "by this section")
    else:
        notes.append("no CUDA device here: predict fps on a GPU (with and without --amp) is "
                     "not measured")
    return BenchSection(title="predict", rows=rows, notes=notes)
