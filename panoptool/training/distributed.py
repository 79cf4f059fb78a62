"""Training under ``torchrun``: the process group, and what the processes must agree on.

Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) training uses
DistributedDataParallel: NCCL on GPUs, gloo on CPUs. ``batch`` is the global batch, split
evenly over the processes, and the losses average per image (see
:mod:`panoptool.training.losses`), so ``W`` processes compute what one process with the same
global batch computes. Besides the gradients (DDP), the processes share the logged losses
(:func:`mean_over_processes`), the schedule's length when a time budget refits it
(:func:`agree_on_length`) and the decision to stop (:func:`vote_stop`). Each helper is the
identity in a single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from panoptool.errors import ConfigError


@dataclass(frozen=True)
class Dist:
    """Where this process trains: rank, world size, device."""

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda if available, else cpu; ``cuda`` without a GPU -> ConfigError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available (use --device cpu)")
    return torch.device(device)


def setup_distributed(device: str) -> Dist:
    """Join the process group when started by torchrun (``WORLD_SIZE`` > 1)."""
    import torch.distributed as tdist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = resolve_device(device)
    if world <= 1:
        return Dist(0, 1, dev)
    rank = int(os.environ["RANK"])
    if dev.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    if not tdist.is_initialized():
        tdist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank, world, dev)


def check_batch(batch: int, dist: Dist) -> int:
    """The per-process batch of the global ``batch``; ConfigError if it does not divide."""
    if batch % dist.world:
        raise ConfigError(f"--batch {batch} is the global batch and must be divisible "
                          f"by the {dist.world} processes")
    return batch // dist.world


def wrap_model(model: torch.nn.Module, dist: Dist) -> torch.nn.Module:
    """``model`` itself in one process, its DistributedDataParallel wrapper in several."""
    if dist.world <= 1:
        return model
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)


def mean_over_processes(terms: dict[str, torch.Tensor], dist: Dist) -> dict[str, float]:
    """Scalar tensors -> floats, averaged over the processes (each has its part of the
    batch)."""
    values = torch.stack(list(terms.values())).float()
    if dist.world > 1:
        torch.distributed.all_reduce(values)
        values /= dist.world
    return dict(zip(terms, values.tolist()))


def agree_on_length(fitted: int | None, dist: Dist) -> int | None:
    """Rank 0's refitted schedule length (or None) in every process."""
    if dist.world <= 1:
        return fitted
    t = torch.tensor([-1.0 if fitted is None else float(fitted)], dtype=torch.float64)
    torch.distributed.broadcast(t, 0)
    return None if t.item() < 0 else int(t.item())


def vote_stop(stop: str | None, dist: Dist) -> str | None:
    """All processes stop together: if any has a reason to stop, the others stop as
    ``interrupted``."""
    if dist.world <= 1:
        return stop
    t = torch.tensor([0.0 if stop is None else 1.0])
    torch.distributed.all_reduce(t)
    if t.item() > 0 and stop is None:
        return "interrupted"
    return stop
