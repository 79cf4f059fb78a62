"""Benchmark of the deployable model: torch vs onnxruntime on the CPU, maps per image.

Every variant computes the same prediction maps from the same normalised image (torch: the
network + ``maps_from_outputs``; onnxruntime: the exported model, which contains that step).
The variants are timed in turns (rep 1 of every variant, then rep 2, ...), so a load change
on a shared machine hits all of them alike and their ratios stay comparable.
"""

from __future__ import annotations

import gc
import os
import statistics
import tempfile
import time
from pathlib import Path

# As `panoptool infer` does: OpenMP threads that sleep while they wait (spinning ones make
# torch many times slower on a CPU shared with other processes). Effective when this module
# is the first to import torch, as in `panoptool bench` (one fresh process per stage).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from panoptool.bench.core import BenchConfig, BenchSection, peak_rss_mib
from panoptool.runtime.pool import resolve_workers

BACKBONE = "resnet18"


def _metadata(height: int | None, width: int | None) -> dict[str, str]:
    from panoptool.inference.onnx import MODEL_FORMAT, MODEL_FORMAT_VERSION, STRIDE
    return {"panoptool.format": MODEL_FORMAT,
            "panoptool.format_version": str(MODEL_FORMAT_VERSION), "n_classes": "19",
            "stride": str(STRIDE), "network": "{}", "checkpoint_iteration": "0",
            "input_size": "dynamic" if height is None else f"{height}x{width}"}


def run(config: BenchConfig) -> BenchSection:
    """ms per image of torch (NCHW, channels-last) and onnxruntime (fixed / dynamic shapes,
    graph optimisation levels) at 512x1024 and 1024x2048, ResNet-18, batch 1."""
    from panoptool.model import PanopticContourNet
    from panoptool.inference.onnx import onnx_bytes

    threads = resolve_workers(config.workers)
    torch.set_num_threads(threads)
    sizes = ((64, 128),) if config.quick else ((512, 1024), (1024, 2048))
    reps = 1 if config.quick else 3
    torch.manual_seed(0)
    model = PanopticContourNet(backbone=BACKBONE).eval()
    rows = []
    with tempfile.TemporaryDirectory(dir=config.workdir or None) as tmp:
        dynamic_path = Path(tmp) / "dynamic.onnx"
        start = time.perf_counter()
        dynamic_path.write_bytes(onnx_bytes(model, _metadata(None, None)))
        export_s = time.perf_counter() - start
        for h, w in sizes:
            rows += _time_size(model, dynamic_path, Path(tmp), h, w, threads, reps)
            gc.collect()
    return BenchSection(title="export", rows=rows, notes=_notes(reps, export_s))


def _variants(model, dynamic_path: Path, tmp: Path, h: int, w: int, threads: int) -> dict:
    """name -> a function computing the maps of one fixed random image of h x w: torch
    NCHW and channels-last, onnxruntime with a fixed-shape export (written here) and with
    the dynamic one."""
    from panoptool.inference.maps import predict
    from panoptool.model import PanopticContourNet
    from panoptool.inference.onnx import OnnxBackend, onnx_bytes

    fixed_path = tmp / f"fixed_{h}x{w}.onnx"
    fixed_path.write_bytes(onnx_bytes(model, _metadata(h, w), height=h, width=w))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 3, h, w, generator=g)
    x_np = x.numpy()
    model_cl = PanopticContourNet(backbone=BACKBONE).eval()
    model_cl.load_state_dict(model.state_dict())
    model_cl = model_cl.to(memory_format=torch.channels_last)
    variants = {
        "torch NCHW": lambda: predict(model, x),
        "torch channels-last": lambda: predict(model_cl, x, channels_last=True),
    }
    sessions = {
        "onnxruntime fixed shape": OnnxBackend(fixed_path, threads=threads),
        "onnxruntime dynamic shape": OnnxBackend(dynamic_path, threads=threads),
    }
    for name, backend in sessions.items():
        variants[name] = (lambda b: lambda: b(x_np))(backend)
    return variants


def _time_size(model, dynamic_path: Path, tmp: Path, h: int, w: int, threads: int,
               reps: int) -> list[dict]:
    """One row per variant at h x w: wall and CPU ms per image (median of ``reps`` runs
    taken in turns after a warm-up), speed-ups and agreement with torch NCHW."""
    variants = _variants(model, dynamic_path, tmp, h, w, threads)
    outputs = {name: fn() for name, fn in variants.items()}  # warm-up
    times: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(reps):
        for name, fn in variants.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    ref = outputs["torch NCHW"][0]
    best_torch = min(statistics.median(times[n]) for n in variants if "torch" in n)
    best_cpu = min(statistics.median(cpu[n]) for n in variants if "torch" in n)
    rows = []
    for name, ts in times.items():
        sec = statistics.median(ts)
        got = outputs[name][0]
        rows.append({
            "variant": name, "backbone": BACKBONE, "threads": threads,
            "size": f"{h}x{w}", "ms/image": 1000 * sec,
            "min..max ms": f"{1000 * min(ts):.0f}..{1000 * max(ts):.0f}",
            "CPU ms/image": 1000 * statistics.median(cpu[name]),
            "speed-up vs torch best": best_torch / sec,
            "CPU-time speed-up": best_cpu / statistics.median(cpu[name]),
            "argmax = torch NCHW (%)":
                100 * float((got["train_ids"] == ref["train_ids"]).mean()),
            "max |conf diff|": float(np.abs(got["confidence"]
                                            - ref["confidence"]).max()),
            "peak MiB": peak_rss_mib()})
    return rows


def _notes(reps: int, export_s: float) -> list[str]:
    return [
        f"{reps} timed runs per variant after a warm-up, taken in turns; ms/image is their "
        "median; batch 1; every variant computes the full maps (softmax, argmax, "
        "confidence, contour sigmoid, offsets) from one normalised image",
        f"ONNX from the legacy (TorchScript-based) exporter, opset 17, in {export_s:.1f} s "
        "(the dynamo exporter needs onnxscript, not installed); onnxruntime "
        "CPUExecutionProvider, intra-op threads = torch threads, no spinning",
        "speed-up vs torch best = median wall time of the faster torch variant / this "
        "variant's, in the same run; CPU-time speed-up: the same with the process's CPU "
        "time (all threads), which a machine shared with other jobs disturbs less",
        "the exported model computes the confidence as 1 / sum_k exp(l_k - max l): a Softmax "
        "over the channel axis took a third of onnxruntime's time at 512x1024 (it transposes)",
    ]
