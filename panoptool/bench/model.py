"""Benchmark of the network: parameters, inference speed (CPU; CUDA with and without AMP when
available) and training iterations per second."""

from __future__ import annotations

import statistics
import time

import torch

from panoptool.bench.core import BenchConfig, BenchSection, peak_rss_mib
from panoptool.training.losses import total_loss
from panoptool.model import PanopticContourNet, count_parameters
from panoptool.runtime.pool import resolve_workers


def _time(fn, reps: int, sync=lambda: None) -> float:
    fn()  # warm-up
    sync()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _fake_batch(n: int, h: int, w: int, device) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    contour = (torch.rand(n, h, w, generator=g) < 0.05).float()
    return {k: v.to(device) for k, v in {
        "semantic": torch.randint(0, 19, (n, h, w), generator=g), "contour": contour,
        "offset_yx": torch.randn(n, 2, h, w, generator=g) * 20,
        "offset_valid": torch.rand(n, h, w, generator=g) < 0.3}.items()}


def run(config: BenchConfig) -> BenchSection:
    """Parameters; inference ms/image at 512x1024 and 1024x2048 (ResNet-18/50, CPU, batch 1,
    channels-last); training it/s on the CPU; CUDA images/s with and without AMP."""
    threads = resolve_workers(config.workers)
    torch.set_num_threads(threads)
    if config.quick:
        backbones, sizes, train_cases, reps = ("resnet18",), ((64, 128),), (((64, 128), 2),), 1
    else:
        backbones, sizes, reps = ("resnet18", "resnet50"), ((512, 1024), (1024, 2048)), 2
        train_cases = (((256, 512), 4), ((512, 1024), 2))
    rows = []
    for backbone in backbones:
        torch.manual_seed(0)
        model = PanopticContourNet(backbone=backbone).eval()
        params = count_parameters(model) / 1e6
        model_cl = model.to(memory_format=torch.channels_last)
        for h, w in sizes:
            x = torch.randn(1, 3, h, w).contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                sec = _time(lambda: model_cl(x), reps)
            rows.append({"step": "inference (forward)", "backbone": backbone,
                         "device": f"cpu x{threads}", "size": f"{h}x{w}", "batch": 1,
                         "ms/image": 1000 * sec, "images/s": 1 / sec,
                         "params (M)": round(params, 2), "peak MiB": peak_rss_mib()})
        if backbone == "resnet18":
            for (h, w), n in train_cases:
                torch.manual_seed(0)
                net = PanopticContourNet(backbone=backbone)
                opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
                x, batch = torch.randn(n, 3, h, w), _fake_batch(n, h, w, "cpu")

                def step():
                    loss, _ = total_loss(net(x), batch)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                sec = _time(step, reps)
                rows.append({"step": "training step (fwd+bwd+SGD)", "backbone": backbone,
                             "device": f"cpu x{threads}", "size": f"{h}x{w}", "batch": n,
                             "ms/image": 1000 * sec / n, "images/s": n / sec,
                             "it/s": 1 / sec, "params (M)": round(params, 2),
                             "peak MiB": peak_rss_mib()})
    notes = ["CPU inference: batch 1, channels-last, torch threads = --workers (0 = all cores);"
             " training: contiguous NCHW (faster backward on CPU), all three losses",
             "the paper's ResNet-50 ran at about 5 fps at 1024x2048 on a GTX 1080"]
    if torch.cuda.is_available() and not config.quick:
        rows += _cuda_rows()
    else:
        notes.append("no CUDA device here: GPU rows (images/s at 1024x2048, with and without "
                      "--amp) come from a machine with one")
    return BenchSection(title="model", rows=rows, notes=notes)


def _cuda_rows() -> list[dict]:
    dev = torch.device("cuda")
    sync = torch.cuda.synchronize
    rows = []
    for backbone in ("resnet18", "resnet50"):
        model = PanopticContourNet(backbone=backbone).eval().to(dev)
        x = torch.randn(1, 3, 1024, 2048, device=dev)
        for amp in (False, True):
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16,
                                                        enabled=amp):
                sec = _time(lambda: model(x), 10, sync)
            rows.append({"step": "inference (forward)" + (" --amp" if amp else ""),
                         "backbone": backbone, "device": torch.cuda.get_device_name(),
                         "size": "1024x2048", "batch": 1, "ms/image": 1000 * sec,
                         "images/s": 1 / sec, "params (M)": round(count_parameters(model) / 1e6, 2),
                         "peak MiB": torch.cuda.max_memory_allocated() / 2 ** 20})
    return rows
