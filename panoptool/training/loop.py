"""The training loop: small named steps around a :class:`TrainState`.

``train(TrainConfig(...))`` runs the whole loop; ``panoptool train`` is a thin CLI over it.
The settings are in :mod:`.config`, the learning-rate schedule in :mod:`.schedule`, what the
``torchrun`` processes share in :mod:`.distributed`, checkpoints in :mod:`.checkpoints`, the
sample stream in :mod:`.data` and the losses in :mod:`.losses`.

Run folder::

    runs/NAME/config.json              stage_config("train", settings, upstream=targets config)
    runs/NAME/metrics.csv              one row per iteration: every loss term, lr, time
    runs/NAME/checkpoints/last.pt      the latest checkpoint (written atomically)
    runs/NAME/summary.json             iterations done, seconds, it/s, last losses

One call of :func:`train`: :func:`_open_run` (checks, threads, the config.json to write, the
dataset) -> :func:`_build_state` (the seeded network and its optimizer, restored from
``last.pt`` on ``--resume``) -> :func:`_prepare_folder` -> :func:`_run_iterations` (each
:func:`_iteration`: learning rate, batch, SGD step, log row, schedule refit, progress, stop
vote, checkpoint) -> :func:`_finish` (``summary.json``).

The data stream is a function of the seed and the iteration (:mod:`panoptool.training.data`)
and a checkpoint holds everything else that changes (:func:`~.checkpoints.make_checkpoint`),
so ``--resume`` continues exactly where the run stopped. Ctrl-C / SIGTERM finish the current
iteration, write ``last.pt`` and stop; an error writes ``last.pt`` before the run ends.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from panoptool.errors import ConfigError, OutputError
from panoptool.io import formats
from panoptool.labels import CITYSCAPES, LabelSpace, labels_of_config, require_same
from panoptool.io.files import (atomic_path, make_folder, read_json, remove_stale_temporaries,
                                write_json, writing)
from panoptool.model import PanopticContourNet
from panoptool.runtime.pool import console, default_workers, make_progress
from panoptool.training.checkpoints import (LAST, check_resume, checkpoint_path,
                                            labels_of_checkpoint, load_checkpoint,
                                            load_init_weights, load_weights, make_checkpoint,
                                            save_checkpoint)
from panoptool.training.config import RunConfig, TrainConfig, config_for_labels
from panoptool.training.data import (StreamBatchSampler, TrainDataset, check_on_bad_image,
                                     make_loader)
from panoptool.training.distributed import (Dist, agree_on_length, check_batch,
                                            mean_over_processes, setup_distributed, vote_stop,
                                            wrap_model)
from panoptool.training.losses import LossConfig, total_loss
from panoptool.training.schedule import Schedule, ScheduleFitter

# names that lived here before the split into config, schedule, distributed and checkpoints
# (their old import path; the package panoptool.training exports them all)
from panoptool.training.checkpoints import (CHECKPOINT_FORMAT, CHECKPOINT_VERSION,  # noqa: E402
                                            model_from_checkpoint, network_of,
                                            safe_torch_load)
from panoptool.training.config import RESUME_FREE  # noqa: E402
from panoptool.training.distributed import resolve_device  # noqa: E402
from panoptool.training.schedule import learning_rate  # noqa: E402

__all__ = ["TrainOptions", "TrainState", "TrainSummary", "train",
           # old import paths
           "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "LAST", "RESUME_FREE", "Dist", "Schedule",
           "ScheduleFitter", "TrainConfig", "checkpoint_path", "learning_rate", "load_checkpoint",
           "model_from_checkpoint", "network_of", "resolve_device", "safe_torch_load",
           "save_checkpoint", "setup_distributed"]


@dataclass
class TrainSummary:
    """What a call of :func:`train` did."""

    iterations: int
    total_iters: int
    seconds: float
    stopped: str  # "done", "time budget", "stop_after", "interrupted"
    checkpoint: str
    last_terms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainOptions:
    """How one call of :func:`train` runs (see its parameters); not saved with the run."""

    resume: bool = False
    overwrite: bool = False
    stop_after: int | None = None
    show_progress: bool = True
    on_bad_image: str = "stop"
    allow_partial: bool = False


@dataclass(frozen=True)
class _Run:
    """What stays fixed during one call: settings (``num_classes`` the label space's),
    processes, files, dataset and its label space."""

    config: TrainConfig
    dist: Dist
    out: Path
    run_config: dict  # the run folder's config.json
    columns: list[str]  # of metrics.csv
    memory_format: torch.memory_format
    dataset: TrainDataset
    labels: LabelSpace = CITYSCAPES

    @property
    def ckpt_path(self) -> Path:
        return checkpoint_path(self.out)

    @property
    def metrics_path(self) -> Path:
        return self.out / "metrics.csv"


@dataclass
class TrainState:
    """What changes while training (a checkpoint is a snapshot of the first part,
    :meth:`checkpoint`), and the loop's bookkeeping of this call."""

    model: PanopticContourNet
    net: torch.nn.Module  # the model, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    use_scaler: bool
    schedule: Schedule
    fitter: ScheduleFitter
    iteration: int = 0  # iterations done
    total: int = 0  # the schedule's current length
    elapsed: float = 0.0  # training seconds of the whole run, resumed parts included
    resumed: bool = False
    # bookkeeping of this call
    start_iter: int = 0
    start_time: float = 0.0
    start_elapsed: float = 0.0
    saved_iter: int = 0
    saved_time: float = 0.0
    last_terms: dict[str, float] = field(default_factory=dict)
    stopped: str = "done"

    def start_clock(self) -> None:
        self.start_iter, self.start_time = self.iteration, time.perf_counter()
        self.start_elapsed = self.elapsed
        self.saved_iter, self.saved_time = self.iteration, self.start_time

    def checkpoint(self, run: _Run) -> dict:
        return make_checkpoint(
            network=run.config.network, run_config=run.run_config, model=self.model,
            optimizer=self.optimizer,
            scaler=self.scaler.state_dict() if self.use_scaler else {},
            iteration=self.iteration, total=self.total, elapsed=self.elapsed,
            schedule=self.schedule.state(), device=run.dist.device, labels=run.labels)


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


class _ProgressBar:
    """The rich progress bar of the main process; does nothing when off."""

    def __init__(self, enabled: bool):
        self.progress = make_progress() if enabled else None
        self.task = None

    @contextlib.contextmanager
    def showing(self, state: TrainState):
        if self.progress is None:
            yield
            return
        with self.progress:
            self.task = self.progress.add_task("train", total=state.total,
                                               completed=state.iteration, rate="")
            yield

    def update(self, state: TrainState, now: float) -> None:
        if self.task is None:
            return
        t = state.last_terms
        rate_s = (state.iteration - state.start_iter) / max(now - state.start_time, 1e-9)
        text = (f"loss {t['loss']:.3f} sem {t['loss_semantic']:.3f} cont "
                f"{t['loss_contour']:.4f} off {t['loss_offset']:.3f} | {rate_s:.2f} it/s")
        self.progress.update(self.task, completed=state.iteration, total=state.total,
                             rate=text)


class _MetricsLog:
    """``metrics.csv``, one row appended per iteration with a step (main process only)."""

    def __init__(self, path: Path, columns: list[str], enabled: bool):
        self.path, self.file, self.writer = path, None, None
        if enabled:
            with writing(path):
                self.file = open(path, "a", newline="", encoding="utf-8")
            self.writer = csv.DictWriter(self.file, columns)

    def write(self, row: dict) -> None:
        if self.writer is not None:
            with writing(self.path):
                self.writer.writerow(row)
                self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _metric_columns(loss: LossConfig) -> list[str]:
    return (["iter", "loss", "loss_semantic", "loss_contour", "loss_offset"]
            + [f"loss_{t}" for t in loss.contour_terms] + ["lr", "time"])


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


def _pick_workers(workers: int, world: int) -> int:
    if workers:
        return workers
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
    from panoptool.runtime.guard import output_lock

    opts = TrainOptions(resume=resume, overwrite=overwrite, stop_after=stop_after,
                        show_progress=show_progress,
                        on_bad_image=check_on_bad_image(on_bad_image),
                        allow_partial=allow_partial)
    dist = setup_distributed(config.run.device)
    lock = contextlib.ExitStack()  # the run folder's lock, held by the main process
    if dist.main:
        lock.enter_context(output_lock(Path(config.run.out), "train"))
    with lock:
        run = _open_run(config, dist, opts)
        state = _build_state(run, opts)
        _prepare_folder(run, state, opts)
        loader = _make_loader(run, state)
        _run_iterations(run, state, loader, opts)
        return _finish(run, state)


def _open_run(config: TrainConfig, dist: Dist, opts: TrainOptions) -> _Run:
    """Check that the run may start, set the CPU threads, open the dataset, check that the
    targets were made with its label space, take the network's class count from it and make
    the run's config.json."""
    out = Path(config.run.out)
    if checkpoint_path(out).exists() and not (opts.resume or opts.overwrite):
        raise OutputError(f"{out}: holds a training run (checkpoints/{LAST}); pass --resume to "
                          f"continue it or --overwrite to start again")
    check_batch(config.optim.batch, dist)
    threads = config.run.threads or max(1, default_workers() // dist.world)
    if dist.device.type == "cpu":
        torch.set_num_threads(threads)
    channels_last = bool(config.run.channels_last)
    targets_config_path = Path(config.run.targets) / formats.CONFIG_JSON
    upstream = read_json(targets_config_path) if targets_config_path.is_file() else None
    dataset = TrainDataset(config.run.root, config.run.split, config.run.targets,
                           config.augment)
    labels = dataset.dataset.label_space(config.run.split)
    where = f"the dataset {dataset.dataset.root}"
    # targets without a config.json, or of panoptool before label spaces were recorded:
    # Cityscapes'
    require_same(labels, labels_of_config(upstream, default=CITYSCAPES), where,
                 f"the targets ({targets_config_path})" if upstream is not None
                 else f"the targets in {config.run.targets} (no config.json: Cityscapes')")
    config = config_for_labels(config, labels, where)
    run_config = formats.stage_config("train", config.stage_settings(dist.world), upstream)
    return _Run(config=config, dist=dist, out=out, run_config=run_config,
                columns=_metric_columns(config.loss),
                memory_format=(torch.channels_last if channels_last
                               else torch.contiguous_format),
                dataset=dataset, labels=labels)


def _build_state(run: _Run, opts: TrainOptions) -> TrainState:
    """The network initialised from the seed (then from ``last.pt`` on --resume, or from
    ``--init-weights``), its optimizer and AMP scaler, and the schedule."""
    config, dist = run.config, run.dist
    torch.manual_seed(config.run.seed)
    model = PanopticContourNet(**config.network.to_dict())
    ckpt = None
    if opts.resume and run.ckpt_path.exists():
        ckpt = load_checkpoint(run.ckpt_path)
        require_same(labels_of_checkpoint(ckpt, run.ckpt_path), run.labels,
                     f"the checkpoint {run.ckpt_path}", f"the dataset {run.dataset.dataset.root}")
        check_resume(ckpt, config, run.ckpt_path)
        load_weights(model, ckpt["model"], run.ckpt_path, config.network)
    elif config.run.init_weights:
        report = load_init_weights(model, config.run.init_weights, opts.allow_partial)
        if dist.main:
            console.print(f"init weights {config.run.init_weights}: {report.summary()}")
    model.to(dist.device, memory_format=run.memory_format)
    o = config.optim
    optimizer = torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum,
                                weight_decay=o.weight_decay)
    use_scaler = config.run.amp and dist.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    iteration, total, elapsed, schedule_state = 0, o.iters, 0.0, None
    if ckpt is not None:
        iteration, total, elapsed, schedule_state = _restore(ckpt, optimizer, scaler, config,
                                                             dist)
    return TrainState(model=model, net=wrap_model(model, dist), optimizer=optimizer,
                      scaler=scaler, use_scaler=use_scaler,
                      schedule=Schedule(o, total, iteration, schedule_state),
                      fitter=ScheduleFitter(o.max_minutes * 60.0, o.iters),
                      iteration=iteration, total=total, elapsed=elapsed,
                      resumed=ckpt is not None)


def _restore(ckpt: dict, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
             config: TrainConfig, dist: Dist) -> tuple[int, int, float, dict | None]:
    """Load the optimizer, scaler and RNG states of a checkpoint; return its (iteration,
    schedule length, training seconds, schedule state)."""
    optimizer.load_state_dict(ckpt["optimizer"])
    if ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    iteration, total = int(ckpt["iteration"]), int(ckpt["total_iters"])
    if not config.optim.max_minutes and json.loads(ckpt["config"])["settings"].get("iters") \
            != config.optim.iters:
        total = config.optim.iters  # --resume --iters N: continue to N, schedule stretched
    torch.set_rng_state(ckpt["rng_torch"])
    if dist.device.type == "cuda" and ckpt.get("rng_cuda") is not None:
        torch.cuda.set_rng_state(ckpt["rng_cuda"], dist.device)
    return iteration, total, float(ckpt["elapsed_s"]), ckpt.get("schedule")


def _prepare_folder(run: _Run, state: TrainState, opts: TrainOptions) -> None:
    """The run folder (main process): clean, config.json written, metrics.csv cut to the
    checkpoint's iteration."""
    if not run.dist.main:
        return
    make_folder(run.out)
    remove_stale_temporaries(run.out)
    if opts.overwrite and not opts.resume:
        for p in (run.metrics_path, run.ckpt_path, run.out / "summary.json"):
            p.unlink(missing_ok=True)
    write_json(run.out / formats.CONFIG_JSON, run.run_config)
    _trim_metrics(run.metrics_path, run.columns, state.iteration)
    if state.resumed:
        console.print(f"resuming {run.out} at iteration {state.iteration} of {state.total}")


def _make_loader(run: _Run, state: TrainState) -> torch.utils.data.DataLoader:
    """This process's part of the sample stream from the state's iteration on."""
    config, dist = run.config, run.dist
    sampler = StreamBatchSampler(len(run.dataset), config.optim.batch // dist.world,
                                 config.run.seed, start=state.iteration, rank=dist.rank,
                                 world=dist.world)
    return make_loader(run.dataset, sampler, _pick_workers(config.run.workers, dist.world),
                       pin_memory=dist.device.type == "cuda")


def _run_iterations(run: _Run, state: TrainState, loader, opts: TrainOptions) -> None:
    """Iterate until the schedule ends or a stop; on an error, keep what was trained (so
    that --resume loses at most the iteration that failed), then re-raise."""
    state.start_clock()
    bar = _ProgressBar(run.dist.main and opts.show_progress)
    log = _MetricsLog(run.metrics_path, run.columns, enabled=run.dist.main)
    batches = iter(loader)
    try:
        with _StopFlag() as flag, bar.showing(state):
            while state.iteration < state.total:
                if _iteration(run, state, batches, flag, bar, log, opts):
                    break
    except Exception:
        # any error (an unreadable image, a full disk, a NaN loss ...)
        if state.iteration > state.saved_iter:
            with contextlib.suppress(Exception):
                _save(run, state)
        raise
    finally:
        del batches
        log.close()


def _iteration(run: _Run, state: TrainState, batches, flag: _StopFlag, bar: _ProgressBar,
               log: _MetricsLog, opts: TrainOptions) -> bool:
    """One iteration; True when the run stops after it."""
    lr = _set_learning_rate(state)
    raw = _next_batch(batches, run.dist, opts.on_bad_image)
    if raw is None:  # nothing readable in this batch: an iteration without a step
        terms = {k: torch.tensor(float("nan")) for k in run.columns
                 if k not in ("iter", "lr", "time")}
    else:
        batch = {k: v.to(run.dist.device, non_blocking=True) for k, v in raw.items()}
        terms = _step(state.net, state.optimizer, state.scaler, batch, run.config.loss,
                      amp=run.config.run.amp, memory_format=run.memory_format,
                      iteration=state.iteration)
    state.iteration += 1
    now = time.perf_counter()
    state.elapsed = state.start_elapsed + (now - state.start_time)
    state.last_terms = mean_over_processes(terms, run.dist)
    if raw is not None:
        log.write({"iter": state.iteration, **state.last_terms, "lr": lr,
                   "time": round(state.elapsed, 3)})
    _advance_schedule(state, now, run.dist)
    bar.update(state, now)
    stop = vote_stop(_stop_reason(state, flag, opts.stop_after), run.dist)
    if stop or _save_due(state, now, run.config.run):
        _save(run, state)
    if stop:
        state.stopped = stop
    return stop is not None


def _set_learning_rate(state: TrainState) -> float:
    lr = state.schedule.rate()
    for group in state.optimizer.param_groups:
        group["lr"] = lr
    return lr


def _next_batch(batches, dist: Dist, on_bad_image: str) -> dict[str, torch.Tensor] | None:
    """The next batch of readable samples (None if none is); an unreadable sample raises
    (``stop``) or is logged (``skip``)."""
    raw, bad = next(batches)
    for sample in bad:
        if on_bad_image == "stop":
            raise sample.error()
        if dist.main:
            console.print(f"skipped (--on-bad-image skip): {sample.line()}")
    return raw


def _advance_schedule(state: TrainState, now: float, dist: Dist) -> None:
    """Refit the schedule's length to the time budget (all processes agree), then step."""
    fitted = agree_on_length(state.fitter.update(state.iteration, now, state.elapsed), dist)
    if fitted is not None:
        state.total = fitted
    state.schedule.step(state.iteration - 1, state.total)


def _stop_reason(state: TrainState, flag: _StopFlag, stop_after: int | None) -> str | None:
    stop = None
    if state.fitter.spent(state.elapsed):
        stop = "time budget"
    if stop_after is not None and state.iteration >= stop_after:
        stop = "stop_after"
    if flag.signal is not None:
        stop = "interrupted"
    return stop


def _save_due(state: TrainState, now: float, run: RunConfig) -> bool:
    return (state.iteration >= state.total or state.iteration - state.saved_iter >= run.save_every
            or now - state.saved_time >= run.save_minutes * 60)


def _save(run: _Run, state: TrainState) -> None:
    if run.dist.main:
        save_checkpoint(run.ckpt_path, state.checkpoint(run))
    state.saved_iter, state.saved_time = state.iteration, time.perf_counter()


def _finish(run: _Run, state: TrainState) -> TrainSummary:
    """Write ``summary.json``; an interrupted run ends in KeyboardInterrupt (last.pt is
    written)."""
    seconds = time.perf_counter() - state.start_time
    summary = TrainSummary(iterations=state.iteration, total_iters=state.total,
                           seconds=seconds, stopped=state.stopped,
                           checkpoint=str(run.ckpt_path), last_terms=state.last_terms)
    if run.dist.main:
        write_json(run.out / "summary.json", {
            **dataclasses.asdict(summary), "training_seconds_total": state.elapsed,
            "it_per_s": (state.iteration - state.start_iter) / max(seconds, 1e-9)})
    if state.stopped == "interrupted":
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

