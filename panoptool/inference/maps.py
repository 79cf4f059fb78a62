"""``panoptool infer``: prediction maps of a trained network, one ``<stem>_maps.npz`` per image.

Pure part: :func:`maps_from_outputs` turns the network's outputs into the maps of the format
(``formats.MAPS_KEYS``). Runner: :func:`infer` runs a checkpoint over a split and writes
``maps/NAME/<split>/<city>/<stem>_maps.npz`` (``maps/NAME/<split>/<stem>_maps.npz`` for a
COCO-panoptic dataset) and ``maps/NAME/config.json`` (written last, with the training run's
config as ``upstream`` and the label space as ``labels``). Images whose maps exist are
skipped unless ``overwrite``. The network's label space (the checkpoint's or the exported
model's) must be the dataset's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from panoptool.io import formats
from panoptool.errors import ConfigError, InputError
from panoptool.io.files import read_json, remove_stale_temporaries, write_json
from panoptool.labels import LABELS_KEY, require_same

PathLike = str | os.PathLike


@dataclass(frozen=True)
class InferConfig:
    """Settings of ``panoptool infer``.

    Parameters
    ----------
    checkpoint : a ``train`` checkpoint (``runs/NAME/checkpoints/last.pt``); or give ``model``.
    root, split : the dataset (a Cityscapes root, a COCO-panoptic folder or description:
        :func:`panoptool.io.datasets.open_dataset`) and split.
    out : maps folder.
    device : ``auto``, ``cpu`` or ``cuda``.
    amp : mixed precision (float16 on CUDA, bfloat16 on CPU).
    batch : images per forward pass (images of one size are batched together).
    channels_last : NHWC memory format; None = on CPU (20% faster forward there).
    threads : torch CPU threads; 0 = all cores.
    workers : image-loading worker processes; 0 = auto (1 on CPU, up to 8 on CUDA).
    model : instead of ``checkpoint``, a model written by ``panoptool export`` (ONNX runs
        with onnxruntime on the CPU, TorchScript with torch); ``amp`` and ``channels_last``
        do not apply to it.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) each process takes every ``WORLD_SIZE``-th image
    (``panoptool.runtime.sharding``) and rank 0 writes ``config.json`` after all have finished.
    """

    checkpoint: str = ""
    root: str = ""
    split: str = "val"
    out: str = "maps"
    device: str = "auto"
    amp: bool = False
    batch: int = 1
    channels_last: bool | None = None
    threads: int = 0
    workers: int = 0
    model: str = ""

    def __post_init__(self):
        for name in ("checkpoint", "root", "out", "model"):
            object.__setattr__(self, name, str(getattr(self, name)))
        if bool(self.checkpoint) == bool(self.model):
            raise ConfigError("give exactly one of --checkpoint and --model")
        if not self.root:
            raise ConfigError("a dataset root is needed (--root)")
        if self.model and (self.amp or self.device == "cuda"):
            raise ConfigError("--model runs on the CPU in float32 (onnxruntime / TorchScript);"
                              " --amp and --device cuda apply to --checkpoint only")
        if self.batch < 1:
            raise ConfigError(f"--batch must be >= 1, got {self.batch}")
        if self.threads < 0 or self.workers < 0:
            raise ConfigError("threads and workers must be >= 0")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"--device must be auto, cpu or cuda, got {self.device!r}")


def maps_from_outputs(outputs: dict[str, torch.Tensor]) -> list[dict[str, np.ndarray]]:
    """Network outputs -> one dict of prediction maps per image (the ``_maps.npz`` content).

    Parameters
    ----------
    outputs : ``semantic_logits`` (N, C, H, W), ``contour_logits`` (N, 1, H, W),
        ``offset_yx`` (N, 2, H, W) in pixels.

    Returns
    -------
    list of N dicts: ``train_ids`` uint8 (H, W) argmax, ``confidence`` float32 (H, W) softmax
    probability of the argmax, ``contour_prob`` float32 (H, W) sigmoid, ``offset_yx`` float32
    (2, H, W).
    """
    prob = torch.softmax(outputs["semantic_logits"].float(), dim=1)
    confidence, train_ids = prob.max(dim=1)
    contour = torch.sigmoid(outputs["contour_logits"].float())[:, 0]
    offset = outputs["offset_yx"].float()
    return [{"train_ids": train_ids[i].to(torch.uint8).cpu().numpy(),
             "confidence": confidence[i].cpu().numpy(),
             "contour_prob": contour[i].cpu().numpy(),
             "offset_yx": offset[i].cpu().numpy()} for i in range(prob.shape[0])]


class _Images(torch.utils.data.Dataset):
    def __init__(self, samples: list):
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        from panoptool.training.data import BadSample, normalize
        from panoptool.errors import PanoptoolError
        try:
            return i, torch.from_numpy(normalize(self.samples[i].read_image()))
        except PanoptoolError as exc:  # returned, not raised: see data_torch.BadSample
            return i, BadSample.of(exc, self.samples[i].image_path)


def _worker_init(_: int) -> None:
    from panoptool.runtime.guard import worker_initializer
    worker_initializer(_PARENT[0])


_PARENT = [os.getpid()]


def _collate(items):
    return items


@dataclass
class InferSummary:
    images: int
    skipped: int
    seconds: float
    out: str

    @property
    def ms_per_image(self) -> float:
        return 1000 * self.seconds / max(self.images - self.skipped, 1)


def load_model(checkpoint: PathLike, device: torch.device, channels_last: bool):
    """The network of a checkpoint, on ``device``, in eval mode; returns (model, checkpoint)."""
    from panoptool.training.loop import model_from_checkpoint
    model, ckpt = model_from_checkpoint(checkpoint)
    model.eval().to(device, memory_format=torch.channels_last if channels_last
                    else torch.contiguous_format)
    return model, ckpt


@torch.inference_mode()
def predict(model: torch.nn.Module, images: torch.Tensor, *, amp: bool = False,
            channels_last: bool = False) -> list[dict[str, np.ndarray]]:
    """Maps of a batch of normalised images float (N, 3, H, W) on the model's device."""
    device = images.device
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    with torch.autocast(device.type, dtype=dtype, enabled=amp):
        outputs = model(images)
    return maps_from_outputs(outputs)


def infer(config: InferConfig, *, overwrite: bool = False, show_progress: bool = True,
          on_bad_image: str = "stop") -> InferSummary:
    """Write the prediction maps of every image of ``config.split``.

    The split may lack ground truth (Cityscapes: images found through ``leftImg8bit/``);
    ``out`` may hold maps of other splits made with the same checkpoint (``config.json``
    lists them all, and the label space).
    ``on_bad_image``: ``stop`` ends on an unreadable image with one line naming it; ``skip``
    logs it and goes on (no maps for it).

    Under torchrun (``WORLD_SIZE`` > 1) this process writes its shard of the images (see
    :mod:`panoptool.runtime.sharding`) and the summary counts that shard; rank 0 holds the output
    lock, removes stale temporaries and writes ``config.json`` once every process has finished.

    Raises
    ------
    InputError
        On a missing/unreadable checkpoint or model, dataset or image (named), or a network
        whose class count is not its label space's.
    ConfigError
        If the network's label space is not the dataset's (both named), or ``out`` holds
        maps of another checkpoint and ``overwrite`` is False.
    """
    from panoptool.training.data import check_on_bad_image
    from panoptool.runtime.sharding import process_group, shard_from_env

    check_on_bad_image(on_bad_image)
    shard = shard_from_env()
    with process_group(shard) as barrier:
        return _infer(config, shard, barrier, overwrite=overwrite,
                      show_progress=show_progress and shard.main, on_bad_image=on_bad_image)


def _load_runner(config: InferConfig, device: torch.device, channels_last: bool,
                 threads: int):
    """(run, iteration, network, upstream, labels): ``run`` maps a batch of normalised images
    to their maps, with the checkpoint's network or an exported ``--model``; ``labels`` is
    the label space the network was trained on."""
    if config.model:
        from panoptool.inference.onnx import check_metadata, load_backend
        backend = load_backend(config.model, threads=threads)
        meta = backend.metadata
        check_metadata(meta, config.model, backend.labels.num_classes)
        upstream = json.loads(meta["config"]) if meta.get("config") else None

        def run(images: torch.Tensor) -> list[dict[str, np.ndarray]]:
            return backend(images.numpy())
        return (run, int(meta["checkpoint_iteration"]), json.loads(meta["network"]), upstream,
                backend.labels)
    from panoptool.training.checkpoints import labels_of_checkpoint

    model, ckpt = load_model(config.checkpoint, device, channels_last)
    network = json.loads(ckpt["network"])
    labels = labels_of_checkpoint(ckpt, config.checkpoint)
    if network.get("num_classes", labels.num_classes) != labels.num_classes:
        raise InputError(config.checkpoint, f"network predicts {network['num_classes']} "
                                            f"classes, the label table has "
                                            f"{labels.num_classes}")

    def run(images: torch.Tensor) -> list[dict[str, np.ndarray]]:
        return predict(model, images, amp=config.amp, channels_last=channels_last)
    return run, int(ckpt["iteration"]), network, json.loads(ckpt["config"]), labels


def _splits_of(out: Path, settings: dict, split: str, overwrite: bool) -> list[str]:
    """The splits ``out/config.json`` will list; refuses maps of another network."""
    config_path = out / formats.CONFIG_JSON
    if not config_path.is_file():
        return [split]
    old = read_json(config_path)
    old = old.get("settings", {}) if isinstance(old, dict) else {}
    keys = ("checkpoint", "checkpoint_iteration", "network")
    if any(old.get(k) != settings[k] for k in keys) or \
            old.get("model", "") != settings["model"]:
        if not overwrite:
            raise ConfigError(f"{out} holds maps of another checkpoint; pass --overwrite to "
                              f"replace them or choose another --out")
        return [split]
    return sorted({*old.get("splits", [old.get("split")]), split} - {None})


def _device_for(config: InferConfig, shard) -> tuple[torch.device, int, bool]:
    """(device, CPU threads, channels_last) of this process: an exported ``--model`` runs
    on the CPU; under torchrun each process takes its local GPU and its share of the cores.
    Sets torch's thread count on the CPU."""
    from panoptool.runtime.pool import default_workers
    from panoptool.training.loop import resolve_device

    device = resolve_device(config.device) if not config.model else torch.device("cpu")
    if device.type == "cuda" and shard.world > 1:
        device = torch.device("cuda", shard.local_rank)
        torch.cuda.set_device(device)
    threads = config.threads or max(1, default_workers() // shard.local_world)
    if device.type == "cpu":
        torch.set_num_threads(threads)
    channels_last = device.type == "cpu" if config.channels_last is None else \
        config.channels_last
    return device, threads, channels_last


def _image_loader(config: InferConfig, todo: list, device: torch.device
                  ) -> torch.utils.data.DataLoader:
    """Batches of (index into ``todo``, image or BadSample), read in ``config.workers``
    processes (0 = 1 on the CPU, up to 8 on a GPU)."""
    from panoptool.runtime.pool import default_workers

    workers = config.workers or (1 if device.type == "cpu"
                                 else max(1, min(8, default_workers() // 2)))
    _PARENT[0] = os.getpid()
    return torch.utils.data.DataLoader(_Images(todo), batch_size=config.batch,
                                       num_workers=workers if todo else 0,
                                       collate_fn=_collate, worker_init_fn=_worker_init,
                                       pin_memory=device.type == "cuda")


def _write_batch(items: list, run, device: torch.device, out: Path, split: str,
                 todo: list, on_bad_image: str) -> None:
    """Run the network on one loaded batch (grouped by image size) and write each image's
    maps; a bad image stops the run or, with ``on_bad_image == "skip"``, is logged and
    left out."""
    from panoptool.runtime.pool import console

    groups: dict[tuple, list] = {}
    for i, image in items:
        if not isinstance(image, torch.Tensor):  # a BadSample
            if on_bad_image == "stop":
                raise image.error()
            console.print(f"skipped (--on-bad-image skip): {image.line()}")
            continue
        groups.setdefault(tuple(image.shape), []).append((i, image))
    for group in groups.values():
        images = torch.stack([im for _, im in group]).to(device, non_blocking=True)
        for (i, _), maps in zip(group, run(images)):
            formats.write_maps(formats.maps_path(out, split, todo[i].stem), **maps)


def _infer(config: InferConfig, shard, barrier, *, overwrite: bool, show_progress: bool,
           on_bad_image: str) -> InferSummary:
    from panoptool.runtime.guard import output_lock
    from panoptool.runtime.pool import make_progress

    from panoptool.io.datasets import open_dataset

    start = time.perf_counter()
    device, threads, channels_last = _device_for(config, shard)
    dataset = open_dataset(config.root)
    samples = dataset.images(config.split)
    run, iteration, network, upstream, labels = _load_runner(config, device, channels_last,
                                                             threads)
    require_same(labels, dataset.label_space(config.split),
                 f"the {'model' if config.model else 'checkpoint'} "
                 f"{config.model or config.checkpoint}", f"the dataset {dataset.root}")
    out = Path(config.out)
    settings = {**dataclasses.asdict(config), "checkpoint_iteration": iteration,
                "network": network, LABELS_KEY: labels.to_dict()}
    config_path = out / formats.CONFIG_JSON
    settings["splits"] = _splits_of(out, settings, config.split, overwrite)
    lock = contextlib.ExitStack()  # released at the end; the kernel frees it on a kill
    if shard.main:
        lock.enter_context(output_lock(out, "infer"))
        remove_stale_temporaries(out)
    barrier()  # no process writes before the debris of an interrupted run is gone
    mine = shard.take(samples)
    todo = [s for s in mine if overwrite
            or not formats.maps_path(out, config.split, s.stem).is_file()]
    loader = _image_loader(config, todo, device)
    progress = make_progress() if show_progress else contextlib.nullcontext()
    done = 0
    t0 = time.perf_counter()
    with lock, progress:
        task = progress.add_task(f"infer {config.split}", total=len(todo), rate="") \
            if show_progress else None
        for items in loader:
            _write_batch(items, run, device, out, config.split, todo, on_bad_image)
            done += len(items)
            if task is not None:
                rate = done / max(time.perf_counter() - t0, 1e-9)
                progress.update(task, completed=done, rate=f"{rate:.2f} img/s")
        barrier()  # every shard is written
        if shard.main:
            write_json(config_path, formats.stage_config("infer", settings, upstream))
    return InferSummary(images=len(mine), skipped=len(mine) - len(todo),
                        seconds=time.perf_counter() - start, out=str(out))
