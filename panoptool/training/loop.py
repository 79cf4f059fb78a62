"""Training of the multi-task network: settings, schedule, checkpoints, exact resume, DDP.

``train(TrainConfig(...))`` runs the whole loop; ``panoptool train`` is a thin CLI over it.
Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) the same call trains with
DistributedDataParallel: NCCL on GPUs, gloo on CPUs. ``batch`` is the global batch, split
evenly over the processes, and the losses average per image (see :mod:`panoptool.training.losses`), so
``W`` processes compute what one process with the same global batch computes.

Run folder::

    runs/NAME/config.json              stage_config("train", settings, upstream=targets config)
    runs/NAME/metrics.csv              one row per iteration: every loss term, lr, time
    runs/NAME/checkpoints/last.pt      the latest checkpoint (written atomically)
    runs/NAME/summary.json             iterations done, seconds, it/s, last losses

Checkpoints hold only tensors and plain Python values (configs as JSON strings), so they load
with ``torch.load(..., weights_only=True)``. A checkpoint holds the weights, the optimizer
(momentum buffers), the AMP scaler, the iteration, the fitted schedule length, the training
time used and the torch RNG states; the data stream is a function of the seed and the
iteration (:mod:`panoptool.training.data`), so ``--resume`` continues exactly where the run
stopped. Ctrl-C / SIGTERM finish the current iteration, write ``last.pt`` and stop.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import os
import pickle
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from panoptool.io import formats
from panoptool.errors import ConfigError, InputError, OutputError
from panoptool.io.files import atomic_path, read_json, write_json, writing
from panoptool.training.losses import CONTOUR_TERMS, LossConfig, total_loss
from panoptool.model import NetworkConfig, PanopticContourNet, load_torchvision_weights
from panoptool.model.resnet import ARCHS

PathLike = str | os.PathLike

CHECKPOINT_FORMAT = "panoptool-checkpoint"
CHECKPOINT_VERSION = 1
LAST = "last.pt"

#: settings that may change between a run and its --resume (they do not change the result)
RESUME_FREE = ("device", "workers", "threads", "save_every", "save_minutes", "max_minutes",
               "iters", "init_weights")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of ``panoptool train`` (saved in ``config.json`` and in every checkpoint).

    Parameters
    ----------
    root, split : dataset root and training split.
    targets : ``make-targets`` output folder (holds ``<split>/`` and ``config.json``).
    out : run folder.
    backbone, neck, offset_scale : network (see :class:`panoptool.model.NetworkConfig`).
    iters : iterations (with ``max_minutes``: the most iterations).
    max_minutes : training-time budget (0 = none): after a few iterations the speed is
        measured and the schedule's length is fitted so that it ends within the budget; the
        run stops cleanly when the budget is spent.
    batch : global batch (split over DDP processes).
    lr, momentum, weight_decay : SGD.
    warmup_iters, poly_power : linear warm-up from 0.1 lr over ``min(warmup_iters,
        total / 10)`` iterations, then ``lr (1 - t / total) ** poly_power``.
    crop, scale, flip : augmentation (:class:`panoptool.training.data.Augment`).
    contour_loss, lambdas, semantic_top_k : loss terms, weights and the fraction of hardest
        pixels of the cross entropy (:class:`panoptool.training.losses.LossConfig`).
    device : ``auto``, ``cpu`` or ``cuda``.
    amp : mixed precision (float16 + grad scaling on CUDA, bfloat16 on CPU).
    workers : data-loader worker processes; 0 = auto (half the cores, 1..8).
    threads : torch CPU threads; 0 = the cores / processes.
    channels_last : NHWC memory format; None = off (measured on 2 CPU cores: the forward pass
        is 20% faster in NHWC but the backward pass slower, the whole step 10-25% slower).
    seed : seed of the weights' initialisation and of the data stream.
    init_weights : a torchvision ResNet state dict (``.pth``) for the encoder; "" = random.
    save_every, save_minutes : write ``last.pt`` every this many iterations or minutes.
    """

    root: str
    targets: str
    out: str
    split: str = "train"
    backbone: str = "resnet18"
    neck: str = "separate"
    offset_scale: float = 4.0
    iters: int = 48000
    max_minutes: float = 0.0
    batch: int = 4
    lr: float = 0.005
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 200
    poly_power: float = 0.9
    crop: tuple[int, int] = (512, 1024)
    scale: tuple[float, float] = (0.5, 2.0)
    flip: bool = True
    contour_loss: tuple[str, ...] = CONTOUR_TERMS
    lambdas: tuple[float, float, float] = (1.0, 50.0, 0.1)
    semantic_top_k: float = 1.0
    device: str = "auto"
    amp: bool = False
    workers: int = 0
    threads: int = 0
    channels_last: bool | None = None
    seed: int = 0
    init_weights: str = ""
    save_every: int = 500
    save_minutes: float = 10.0

    def __post_init__(self):
        for name in ("root", "targets", "out", "init_weights"):
            object.__setattr__(self, name, str(getattr(self, name)))
        for name in ("crop", "scale", "contour_loss", "lambdas"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.backbone not in ARCHS:
            raise ConfigError(f"--backbone must be one of {', '.join(ARCHS)}, got "
                              f"{self.backbone!r}")
        if self.neck not in ("shared", "separate"):
            raise ConfigError(f"--neck must be shared or separate, got {self.neck!r}")
        for name in ("iters", "batch", "save_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got "
                                  f"{getattr(self, name)}")
        for name in ("max_minutes", "warmup_iters", "workers", "threads", "seed",
                     "weight_decay", "momentum"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise ConfigError(f"--lr must be > 0, got {self.lr}")
        if not self.save_minutes > 0:
            raise ConfigError(f"save_minutes must be > 0, got {self.save_minutes}")
        if len(self.crop) != 2 or min(self.crop) < 32:
            raise ConfigError(f"--crop must be HxW with both sides >= 32, got {self.crop}")
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1]:
            raise ConfigError(f"--scale must be MIN,MAX with 0 < MIN <= MAX, got {self.scale}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        self.loss_config()  # validates contour_loss and lambdas
        self.network_config()

    def network_config(self) -> NetworkConfig:
        return NetworkConfig(backbone=self.backbone, neck=self.neck,
                             offset_scale=self.offset_scale)

    def loss_config(self) -> LossConfig:
        return LossConfig(contour_terms=self.contour_loss, lambdas=self.lambdas,
                          semantic_top_k=self.semantic_top_k)

    def settings(self) -> dict:
        """JSON-able settings (tuples as lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


# --- schedule ------------------------------------------------------------------------------

def learning_rate(iteration: int, total: int, config: TrainConfig) -> float:
    """Learning rate of ``iteration`` (0-based) in a schedule of ``total`` iterations:
    linear warm-up from 0.1 lr over ``min(warmup_iters, total // 10)`` iterations, times the
    poly decay ``(1 - iteration / total) ** poly_power``.

    >>> c = TrainConfig(root="r", targets="t", out="o", lr=0.01, warmup_iters=10)
    >>> round(learning_rate(0, 1000, c), 6), round(learning_rate(10, 1000, c), 6)
    (0.001, 0.00991)
    >>> learning_rate(1000, 1000, c)
    0.0
    """
    return Schedule(config, total, iteration).rate()


class Schedule:
    """The learning-rate schedule of :func:`learning_rate`, kept continuous when its length
    changes mid-run (a time budget refits it, ``--resume --iters N`` stretches it).

    The schedule is followed as two progress fractions: ``poly`` (how much of the poly decay
    is spent) and ``warm`` (how much of the warm-up). Each iteration moves them an equal
    share of what is left to the current end, so with a fixed length ``total`` they are
    ``i / total`` and ``i / warmup`` and the rates equal :func:`learning_rate`; when the
    length changes only the pace changes and the rate has no jump.

    >>> c = TrainConfig(root="r", targets="t", out="o", lr=0.01, warmup_iters=10)
    >>> s = Schedule(c, 1000)
    >>> rates = []
    >>> for i in range(500):
    ...     rates.append(s.rate()); s.step(i, 1000 if i < 100 else 400)
    >>> round(rates[50], 6) == round(learning_rate(50, 1000, c), 6)
    True
    >>> round(rates[99], 6), round(rates[100], 6)       # refitted to 400 after 100: no jump
    (0.009104, 0.009095)
    >>> round(learning_rate(100, 400, c), 5), rates[-1]  # where the plain formula would be
    (0.00772, 0.0)
    """

    def __init__(self, config: TrainConfig, total: int, iteration: int = 0,
                 state: dict | None = None):
        self.lr, self.power, self.warmup_iters = config.lr, config.poly_power, config.warmup_iters
        if state:
            self.poly, self.warm = float(state["poly"]), float(state["warm"])
        else:  # a fresh run, or a checkpoint from before the schedule was kept
            warmup = self._warmup(total)
            self.poly = min(1.0, iteration / max(total, 1))
            self.warm = 1.0 if iteration >= warmup else iteration / warmup

    def _warmup(self, total: int) -> int:
        return min(self.warmup_iters, total // 10)

    def rate(self) -> float:
        """Learning rate of the next iteration."""
        factor = max(0.0, 1.0 - self.poly) ** self.power
        if self.warm < 1.0:
            factor *= 0.1 + 0.9 * self.warm
        return self.lr * factor

    def step(self, iteration: int, total: int) -> None:
        """Advance past ``iteration`` (0-based) in a schedule now ``total`` long."""
        self.poly += (1.0 - self.poly) / max(total - iteration, 1)
        if self.warm < 1.0:  # a warm-up cut short by a refit ends at its new pace
            warmup = self._warmup(total)
            left = max(warmup - iteration, math.ceil((1.0 - self.warm) * warmup - 1e-9), 1)
            self.warm = min(1.0, self.warm + (1.0 - self.warm) / left)

    def state(self) -> dict:
        return {"poly": self.poly, "warm": self.warm}


# --- checkpoints ---------------------------------------------------------------------------

def checkpoint_path(out: PathLike) -> Path:
    return Path(out) / "checkpoints" / LAST


def save_checkpoint(path: PathLike, state: dict) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename (atomic)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:  # Python's file object: a failed write is an OSError
            torch.save(state, fh)


def load_checkpoint(path: PathLike) -> dict:
    """Read a checkpoint with ``torch.load(weights_only=True)``.

    Raises
    ------
    InputError
        If the file is missing, truncated, not a torch file or not a panoptool checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint not found")
    ckpt = safe_torch_load(path, "checkpoint")
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise InputError(path, "not a panoptool checkpoint (no 'format' = "
                               f"{CHECKPOINT_FORMAT!r} entry)")
    if ckpt.get("format_version") != CHECKPOINT_VERSION:
        raise InputError(path, f"checkpoint format version {ckpt.get('format_version')}, "
                               f"this panoptool reads version {CHECKPOINT_VERSION}")
    for key in ("network", "model", "config", "iteration"):
        if key not in ckpt:
            raise InputError(path, f"checkpoint lacks {key!r}")
    types = {"network": str, "config": str, "model": dict, "iteration": int}
    for key, kind in types.items():
        if not isinstance(ckpt[key], kind) or isinstance(ckpt[key], bool):
            raise InputError(path, f"checkpoint entry {key!r} is a {type(ckpt[key]).__name__}, "
                                   f"expected {kind.__name__}")
    for key in ("network", "config"):
        try:
            json.loads(ckpt[key])
        except ValueError:
            raise InputError(path, f"checkpoint entry {key!r} is not valid JSON") from None
    return ckpt


def safe_torch_load(path: PathLike, what: str = "checkpoint"):
    """``torch.load(path, weights_only=True)`` with every failure as one :class:`InputError`.

    A file whose pickle would import or call anything (``os.system``, a class of some
    module) is refused by torch's weights-only unpickler; the message says so and that
    panoptool never loads such files. Any other failure (truncated, garbage, not a torch
    file: torch raises RuntimeError, EOFError, IndexError, struct.error, UnicodeDecodeError
    ... depending on the bytes) is "cannot read <what>" with the first line of the cause.
    """
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "GLOBAL" in text or "Unsupported global" in text:  # it names what it would import
            culprit = _refused_global(text)
            raise InputError(path, f"refused to load this {what}: loading it would run code"
                                   f"{culprit}; panoptool loads only plain tensors and never "
                                   f"runs code from a file")\
                from None
        detail = text.split("WeightsUnpickler error:", 1)[-1].strip().splitlines()
        raise InputError(path, f"cannot read {what}: not a torch file or truncated "
                               f"(UnpicklingError: {detail[0][:160] if detail else ''})") \
            from None
    except MemoryError:
        raise InputError(path, f"cannot read {what}: it claims more memory than available "
                               f"(corrupt?)") from None
    except Exception as exc:  # noqa: BLE001 - any failure to parse the file is bad input
        raise InputError(path, f"cannot read {what}: not a torch file or truncated "
                               f"({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0].split(". ")[0] if text else ""
    return f"{type(exc).__name__}: {first[:160]}" if first else type(exc).__name__


def _refused_global(text: str) -> str:
    import re
    m = re.search(r"GLOBAL\s+([\w.]+)", text)
    return f" (it imports {m.group(1)})" if m else ""


def network_of(ckpt: dict, path: PathLike) -> NetworkConfig:
    """The :class:`NetworkConfig` stored in a checkpoint."""
    try:
        return NetworkConfig(**json.loads(ckpt["network"]))
    except (TypeError, ValueError) as exc:
        raise InputError(path, f"checkpoint's network description is invalid ({exc})") from None


def model_from_checkpoint(path: PathLike) -> tuple[PanopticContourNet, dict]:
    """Build the network a checkpoint describes and load its weights.

    Returns
    -------
    (model on the CPU, the checkpoint dict)

    Raises
    ------
    InputError
        On an unreadable checkpoint or weights that do not fit the stored architecture.
    """
    ckpt = load_checkpoint(path)
    net = network_of(ckpt, path)
    model = PanopticContourNet(**net.to_dict())
    _load_weights(model, ckpt["model"], path, net)
    return model, ckpt


def _describe(net: NetworkConfig) -> str:
    return f"{net.backbone} with {net.neck} neck(s)"


def _load_weights(model: torch.nn.Module, state: dict, path: PathLike,
                  net: NetworkConfig) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        lines = [l.strip() for l in str(exc).splitlines() if l.strip()]
        raise InputError(path, f"weights do not fit a {_describe(net)} network: "
                               f"{' '.join(lines[:2])[:300]}") from None


# --- distributed ---------------------------------------------------------------------------

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


# --- the loop ------------------------------------------------------------------------------

@dataclass
class TrainSummary:
    """What a call of :func:`train` did."""

    iterations: int
    total_iters: int
    seconds: float
    stopped: str  # "done", "time budget", "stop_after", "interrupted"
    checkpoint: str
    last_terms: dict[str, float] = field(default_factory=dict)


class _StopFlag:
    """SIGINT/SIGTERM set a flag, checked between iterations (never mid-update)."""

    def __init__(self):
        self.signal: int | None = None
        self._old = {}

    def __enter__(self):
        import threading
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signal is not None:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        return False


class ScheduleFitter:
    """Fits the schedule's length to a time budget from the measured speed.

    The speed is measured from the end of the first (slower) iteration; the length is
    refitted when 5%, 25% and 50% of the budget are spent, keeping 5 s for the last
    checkpoint. Without a budget it never changes the length.

    >>> f = ScheduleFitter(budget_s=100.0, max_iters=10_000)
    >>> f.update(1, 10.0, 10.0) is None        # first iteration: start measuring
    True
    >>> f.update(3, 12.0, 12.0) is None        # 5% spent, but fewer than 3 timed iterations
    True
    >>> f.update(9, 18.0, 18.0)                # 1 it/s: 9 + (100 - 18 - 5) = 86
    86
    """

    FRACTIONS = (0.05, 0.25, 0.5)

    def __init__(self, budget_s: float, max_iters: int):
        self.budget_s, self.max_iters = budget_s, max_iters
        self.todo = list(self.FRACTIONS) if budget_s else []
        self.mark: tuple[int, float] | None = None

    def update(self, iteration: int, now: float, elapsed: float) -> int | None:
        """Call after each iteration (``now``: a clock; ``elapsed``: training seconds of the
        whole run, resumed parts included); returns a new schedule length or None."""
        if self.mark is None:
            self.mark = (iteration, now)
            return None
        if not self.todo or elapsed < self.todo[0] * self.budget_s \
                or iteration - self.mark[0] < 3:
            return None
        self.todo.pop(0)
        rate = (iteration - self.mark[0]) / max(now - self.mark[1], 1e-9)
        fitted = iteration + int(max(0.0, self.budget_s - elapsed - 5.0) * rate)
        return max(iteration + 1, min(self.max_iters, fitted))

    def spent(self, elapsed: float) -> bool:
        return bool(self.budget_s) and elapsed >= self.budget_s


def _metric_columns(config: TrainConfig) -> list[str]:
    return (["iter", "loss", "loss_semantic", "loss_contour", "loss_offset"]
            + [f"loss_{t}" for t in config.contour_loss] + ["lr", "time"])


def _trim_metrics(path: Path, columns: list[str], upto: int) -> None:
    """Keep the rows of iterations <= ``upto`` (resume after a kill), atomically."""
    rows = []
    if path.is_file():
        with open(path, newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.DictReader(fh) if r.get("iter", "").isdigit()
                    and int(r["iter"]) <= upto]
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)


def _check_resume(ckpt: dict, config: TrainConfig, path: Path) -> None:
    net = network_of(ckpt, path)
    if net != config.network_config():
        raise InputError(path, f"checkpoint is a {_describe(net)} network (offset_scale "
                               f"{net.offset_scale}); this run asks for "
                               f"{_describe(config.network_config())} (offset_scale "
                               f"{config.offset_scale}): use another --out or the same "
                               f"--backbone/--neck")
    old = json.loads(ckpt["config"])["settings"]
    new = config.settings()
    diff = [k for k in new if k not in RESUME_FREE and old.get(k) != new[k]]
    if diff:
        pairs = ", ".join(f"{k}: {old.get(k)} -> {new[k]}" for k in diff)
        raise ConfigError(f"--resume with other settings than the run in {path.parent.parent} "
                          f"({pairs}); use the same options or another --out")


def _pick_workers(workers: int, world: int) -> int:
    if workers:
        return workers
    from panoptool.runtime.pool import default_workers
    return max(1, min(8, default_workers() // (2 * world)))


def train(config: TrainConfig, *, resume: bool = False, overwrite: bool = False,
          stop_after: int | None = None, show_progress: bool = True,
          on_bad_image: str = "stop", allow_partial: bool = False) -> TrainSummary:
    """Train the network (see the module docstring).

    Parameters
    ----------
    config : settings.
    resume : continue from ``out/checkpoints/last.pt`` if it exists (else start).
    overwrite : start again even if ``out`` holds a run.
    stop_after : stop cleanly (checkpoint written) after this iteration, as a kill would,
        without changing the schedule (for tests and for splitting a run).
    show_progress : rich progress bar on stderr (main process only).
    on_bad_image : ``stop`` (default): an image or target that cannot be read ends the run
        with one line naming it; ``skip``: the sample is left out of its batch (a batch with
        no readable sample is an iteration without a step), the file is logged, training
        goes on. Either way ``last.pt`` is written before the run ends on an error.
    allow_partial : accept ``--init-weights`` that match under half of the encoder's tensors.

    Raises
    ------
    OutputError
        If ``out`` holds a run and neither ``resume`` nor ``overwrite`` is set.
    InputError, ConfigError
        On missing data/targets, unreadable or mismatching checkpoints, bad settings.
    """
    from panoptool.training.data import check_on_bad_image
    from panoptool.runtime.guard import output_lock

    check_on_bad_image(on_bad_image)
    dist = setup_distributed(config.device)
    out = Path(config.out)
    ckpt_path = checkpoint_path(out)
    lock = contextlib.ExitStack()  # the run folder's lock, held by the main process
    if dist.main:
        lock.enter_context(output_lock(out, "train"))
    with lock:
        return _train(config, dist, out, ckpt_path, resume=resume, overwrite=overwrite,
                      stop_after=stop_after, show_progress=show_progress,
                      on_bad_image=on_bad_image, allow_partial=allow_partial)


def _train(config: TrainConfig, dist, out: Path, ckpt_path: Path, *, resume: bool,
           overwrite: bool, stop_after: int | None, show_progress: bool, on_bad_image: str,
           allow_partial: bool) -> TrainSummary:
    from panoptool.training.data import Augment, StreamBatchSampler, TrainDataset, make_loader
    from panoptool.runtime.pool import console, default_workers, make_progress
    if ckpt_path.exists() and not (resume or overwrite):
        raise OutputError(f"{out}: holds a training run (checkpoints/{LAST}); pass --resume to "
                          f"continue it or --overwrite to start again")
    if config.batch % dist.world:
        raise ConfigError(f"--batch {config.batch} is the global batch and must be divisible "
                          f"by the {dist.world} processes")
    threads = config.threads or max(1, default_workers() // dist.world)
    if dist.device.type == "cpu":
        torch.set_num_threads(threads)
    channels_last = bool(config.channels_last)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    targets_config_path = Path(config.targets) / formats.CONFIG_JSON
    upstream = read_json(targets_config_path) if targets_config_path.is_file() else None
    run_config = formats.stage_config("train", {**config.settings(), "world_size": dist.world,
                                                "network": config.network_config().to_dict(),
                                                "loss": json.loads(json.dumps(
                                                    config.loss_config().to_dict()))},
                                      upstream)
    dataset = TrainDataset(config.root, config.split, config.targets,
                           Augment(crop=config.crop, scale=config.scale, flip=config.flip))

    torch.manual_seed(config.seed)
    model = PanopticContourNet(**config.network_config().to_dict())
    ckpt = None
    if resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        _check_resume(ckpt, config, ckpt_path)
        _load_weights(model, ckpt["model"], ckpt_path, config.network_config())
    elif config.init_weights:
        report = _load_init_weights(model, config.init_weights, allow_partial)
        if dist.main:
            console.print(f"init weights {config.init_weights}: {report.summary()}")
    model.to(dist.device, memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    use_scaler = config.amp and dist.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    iteration, total, elapsed = 0, config.iters, 0.0
    schedule_state = None
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        iteration, total = int(ckpt["iteration"]), int(ckpt["total_iters"])
        if not config.max_minutes and json.loads(ckpt["config"])["settings"].get("iters") \
                != config.iters:
            total = config.iters  # --resume --iters N: continue to N, schedule stretched
        elapsed = float(ckpt["elapsed_s"])
        schedule_state = ckpt.get("schedule")
        torch.set_rng_state(ckpt["rng_torch"])
        if dist.device.type == "cuda" and ckpt.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(ckpt["rng_cuda"], dist.device)

    net = model
    if dist.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)

    columns = _metric_columns(config)
    metrics_path = out / "metrics.csv"
    if dist.main:
        from panoptool.io.files import make_folder, remove_stale_temporaries
        make_folder(out)
        remove_stale_temporaries(out)
        if overwrite and not resume:
            for p in (metrics_path, ckpt_path, out / "summary.json"):
                p.unlink(missing_ok=True)
        write_json(out / formats.CONFIG_JSON, run_config)
        _trim_metrics(metrics_path, columns, iteration)
        if ckpt is not None:
            console.print(f"resuming {out} at iteration {iteration} of {total}")

    def snapshot() -> dict:
        return {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
                "network": json.dumps(config.network_config().to_dict()),
                "config": json.dumps(run_config), "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict() if use_scaler else {},
                "iteration": iteration, "total_iters": total, "elapsed_s": elapsed,
                "schedule": schedule.state(),
                "rng_torch": torch.get_rng_state(),
                "rng_cuda": (torch.cuda.get_rng_state(dist.device)
                             if dist.device.type == "cuda" else None)}

    def save() -> None:
        if dist.main:
            save_checkpoint(ckpt_path, snapshot())

    per_rank = config.batch // dist.world
    sampler = StreamBatchSampler(len(dataset), per_rank, config.seed, start=iteration,
                                 rank=dist.rank, world=dist.world)
    loader = make_loader(dataset, sampler, _pick_workers(config.workers, dist.world),
                         pin_memory=dist.device.type == "cuda")
    loss_config = config.loss_config()
    fitter = ScheduleFitter(config.max_minutes * 60.0, config.iters)
    schedule = Schedule(config, total, iteration, schedule_state)
    stopped, last_terms = "done", {}
    start_iter, start_time = iteration, time.perf_counter()
    start_elapsed = elapsed
    last_save_iter, last_save_time = iteration, start_time

    progress = make_progress() if dist.main and show_progress else contextlib.nullcontext()
    with writing(metrics_path):
        csv_file = open(metrics_path, "a", newline="", encoding="utf-8") if dist.main else None
    writer = csv.DictWriter(csv_file, columns) if csv_file else None
    batches = iter(loader)
    try:
        with _StopFlag() as flag, progress:
            task = progress.add_task("train", total=total, completed=iteration, rate="") \
                if dist.main and show_progress else None
            while iteration < total:
                lr = schedule.rate()
                for group in optimizer.param_groups:
                    group["lr"] = lr
                raw, bad = next(batches)
                for sample in bad:
                    if on_bad_image == "stop":
                        raise sample.error()
                    if dist.main:
                        console.print(f"skipped (--on-bad-image skip): {sample.line()}")
                if raw is None:  # nothing readable in this batch: an iteration without a step
                    terms = {k: torch.tensor(float("nan")) for k in columns
                             if k not in ("iter", "lr", "time")}
                else:
                    batch = {k: v.to(dist.device, non_blocking=True) for k, v in raw.items()}
                    terms = _step(net, optimizer, scaler, batch, loss_config, amp=config.amp,
                                  memory_format=memory_format, iteration=iteration)
                iteration += 1
                now = time.perf_counter()
                elapsed = start_elapsed + (now - start_time)
                values = torch.stack(list(terms.values())).float()
                if dist.world > 1:
                    torch.distributed.all_reduce(values)
                    values /= dist.world
                last_terms = dict(zip(terms, values.tolist()))
                if writer and raw is not None:
                    with writing(metrics_path):
                        writer.writerow({"iter": iteration, **last_terms, "lr": lr,
                                         "time": round(elapsed, 3)})
                        csv_file.flush()
                fitted = fitter.update(iteration, now, elapsed)
                if dist.world > 1:  # every process must agree on the length
                    t = torch.tensor([-1.0 if fitted is None else float(fitted)],
                                     dtype=torch.float64)
                    torch.distributed.broadcast(t, 0)
                    fitted = None if t.item() < 0 else int(t.item())
                if fitted is not None:
                    total = fitted
                schedule.step(iteration - 1, total)
                if task is not None:
                    rate_s = (iteration - start_iter) / max(now - start_time, 1e-9)
                    text = (f"loss {last_terms['loss']:.3f} sem {last_terms['loss_semantic']:.3f}"
                            f" cont {last_terms['loss_contour']:.4f} off "
                            f"{last_terms['loss_offset']:.3f} | {rate_s:.2f} it/s")
                    progress.update(task, completed=iteration, total=total, rate=text)
                stop = None
                if fitter.spent(elapsed):
                    stop = "time budget"
                if stop_after is not None and iteration >= stop_after:
                    stop = "stop_after"
                if flag.signal is not None:
                    stop = "interrupted"
                if dist.world > 1:  # all processes stop together
                    t = torch.tensor([0.0 if stop is None else 1.0])
                    torch.distributed.all_reduce(t)
                    if t.item() > 0 and stop is None:
                        stop = "interrupted"
                if (stop or iteration >= total or iteration - last_save_iter >= config.save_every
                        or now - last_save_time >= config.save_minutes * 60):
                    save()
                    last_save_iter, last_save_time = iteration, time.perf_counter()
                if stop:
                    stopped = stop
                    break
    except Exception:
        # any error (an unreadable image, a full disk, a NaN loss ...): keep what was
        # trained, so that --resume loses at most the iteration that failed
        if iteration > last_save_iter:
            with contextlib.suppress(Exception):
                save()
        raise
    finally:
        del batches
        if csv_file:
            csv_file.close()
    seconds = time.perf_counter() - start_time
    summary = TrainSummary(iterations=iteration, total_iters=total, seconds=seconds,
                           stopped=stopped, checkpoint=str(ckpt_path), last_terms=last_terms)
    if dist.main:
        write_json(out / "summary.json", {
            **dataclasses.asdict(summary), "training_seconds_total": elapsed,
            "it_per_s": (iteration - start_iter) / max(seconds, 1e-9)})
    if stopped == "interrupted":
        raise KeyboardInterrupt
    return summary


def _step(net: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler, batch: dict,
          loss_config: LossConfig, *, amp: bool, memory_format: torch.memory_format,
          iteration: int) -> dict[str, torch.Tensor]:
    """One SGD step on one batch; returns the detached loss terms."""
    device_type = batch["image"].device.type
    image = batch["image"].contiguous(memory_format=memory_format)
    with torch.autocast(device_type, dtype=torch.float16 if device_type == "cuda"
                        else torch.bfloat16, enabled=amp):
        outputs = net(image)
    loss, terms = total_loss(outputs, batch, loss_config)
    if not torch.isfinite(loss):
        raise ConfigError(f"loss became {loss.item()} at iteration {iteration}; lower --lr "
                          f"or check the targets")
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return terms


def _load_init_weights(model: PanopticContourNet, path: PathLike, allow_partial: bool = False):
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "--init-weights file not found")
    state = safe_torch_load(path, "--init-weights file")
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise InputError(path, f"expected a state dict, got {type(state).__name__}")
    report = load_torchvision_weights(model.encoder, state, source=str(path))
    n_own = len(report.loaded) + len(report.missing)
    if not allow_partial and 2 * len(report.loaded) < n_own:
        raise InputError(path, f"matches only {len(report.loaded)} of the {n_own} encoder "
                               f"tensors (under half: weights of another network?); pass "
                               f"--allow-partial to train from it anyway")
    return report
