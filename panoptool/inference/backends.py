"""Backends that compute prediction maps from a batch of images: what ``predict`` runs.

A backend is any object with the :class:`MapsBackend` interface, so ``predict`` does not
care whether the network runs in torch (:class:`TorchBackend`, a ``train`` checkpoint) or in
another runtime (``panoptool.inference.onnx.OnnxBackend``, an exported model).
"""

from __future__ import annotations

import json
import os
from typing import Protocol, runtime_checkable

import numpy as np

from panoptool.errors import ConfigError, InputError

PathLike = str | os.PathLike

#: Inputs are padded to a multiple of this (the encoder's coarsest scale is 1/32).
STRIDE = 32


@runtime_checkable
class MapsBackend(Protocol):
    """What ``predict`` needs from a network.

    Attributes
    ----------
    n_classes : semantic classes the network predicts.
    labels : the label space it was trained on (its ``num_classes`` is ``n_classes``).
    stride : inputs are padded to a multiple of it (32).

    ``backend(images)`` takes float32 (N, 3, H, W), normalised exactly as
    :func:`panoptool.training.data.normalize` does, H and W multiples of ``stride``, and returns
    one dict per image as :func:`panoptool.inference.maps.maps_from_outputs` does: ``train_ids``
    uint8 (H, W), ``confidence`` float32 (H, W), ``contour_prob`` float32 (H, W),
    ``offset_yx`` float32 (2, H, W).
    """

    n_classes: int
    labels: object  # panoptool.labels.LabelSpace
    stride: int

    def __call__(self, images: np.ndarray) -> list[dict[str, np.ndarray]]: ...


class TorchBackend:
    """A ``train`` checkpoint run with torch (:func:`panoptool.inference.maps.predict`).

    Parameters
    ----------
    checkpoint : ``runs/NAME/checkpoints/last.pt``.
    device : ``auto``, ``cpu``, ``cuda`` or ``cuda:K``.
    amp : mixed precision (float16 on CUDA, bfloat16 on CPU).
    channels_last : NHWC memory format; None = on CPU (faster forward there).
    threads : torch CPU threads; 0 = all cores.

    Attributes
    ----------
    n_classes, labels, stride : see :class:`MapsBackend`.
    upstream : the training run's ``config.json`` (for the provenance chain).
    iteration : training iteration of the checkpoint.
    network : the checkpoint's architecture (dict).

    Raises
    ------
    InputError
        On a missing or unreadable checkpoint (named).
    """

    stride = STRIDE

    def __init__(self, checkpoint: PathLike, device: str = "auto", amp: bool = False,
                 channels_last: bool | None = None, threads: int = 0):
        import torch

        from panoptool.inference.maps import load_model
        from panoptool.runtime.pool import default_workers
        from panoptool.training.checkpoints import labels_of_checkpoint
        from panoptool.training.loop import resolve_device

        if device.startswith("cuda:"):
            if not torch.cuda.is_available():
                raise ConfigError(f"--device {device}: no CUDA device is available")
            self.device = torch.device(device)
        else:
            self.device = resolve_device(device)
        if self.device.type == "cpu":
            torch.set_num_threads(threads or default_workers())
        self.amp = bool(amp)
        self.channels_last = (self.device.type == "cpu" if channels_last is None
                              else bool(channels_last))
        self.model, ckpt = load_model(checkpoint, self.device, self.channels_last)
        self.network = json.loads(ckpt["network"])
        self.n_classes = int(self.network["num_classes"])
        self.labels = labels_of_checkpoint(ckpt, checkpoint)
        self.iteration = int(ckpt["iteration"])
        self.upstream = json.loads(ckpt["config"])
        self.checkpoint = str(checkpoint)

    def __call__(self, images: np.ndarray) -> list[dict[str, np.ndarray]]:
        import torch

        from panoptool.inference.maps import predict

        if images.ndim != 4 or images.shape[1] != 3:
            raise ConfigError(f"images must be (N, 3, H, W), got shape {images.shape}")
        if images.shape[2] % self.stride or images.shape[3] % self.stride:
            raise ConfigError(f"image size {images.shape[2]}x{images.shape[3]} is not a "
                              f"multiple of the stride {self.stride}")
        x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
        x = x.to(self.device, non_blocking=True)
        return predict(self.model, x, amp=self.amp, channels_last=self.channels_last)


def check_classes(backend: MapsBackend, expected: int, source: PathLike) -> None:
    """Refuse a network whose class count differs from its label space's (``expected``).

    Raises
    ------
    InputError
        Naming ``source`` (the checkpoint or model file), the expected and the actual count.
    """
    if int(backend.n_classes) != int(expected):
        raise InputError(source, f"the network predicts {backend.n_classes} semantic "
                                 f"classes; the label table has {expected}")
