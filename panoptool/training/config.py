"""Settings of the training stage (``panoptool train``) and its named presets.

:class:`TrainConfig` is composed of one frozen dataclass per concern; each declares the
defaults and the validation of its fields, once:

=========  ==============================================  ==================================
part       dataclass                                       its fields
=========  ==============================================  ==================================
run        :class:`RunConfig`                              paths, device, workers, seed,
                                                           checkpoint cadence
network    :class:`panoptool.model.NetworkConfig`          backbone, neck, head_conv, ...
loss       :class:`panoptool.training.losses.LossConfig`   contour terms, lambdas, NMS, ...
augment    :class:`panoptool.training.data.Augment`        crop, scale, flip
optim      :class:`OptimConfig`                            SGD, schedule, length, budget
=========  ==============================================  ==================================

A :class:`TrainConfig` is built from its parts or from flat keywords, one per field of a part
(:data:`FIELDS`; the losses' ``contour_terms`` is ``contour_loss``, its name in config.json)::

    TrainConfig(root="data", targets="targets", out="runs/r18", batch=2, head_conv=64)

A run folder's ``config.json`` holds the flat :data:`SETTINGS` (the keys every run folder has
held), the preset if one was chosen, the number of processes and the whole network and loss
configs (:meth:`TrainConfig.stage_settings`).

Presets (:data:`PRESETS`) are named sets of flat keywords under the explicit ones:
``TrainConfig(..., preset="cpu", lr=0.02)`` is the ``cpu`` preset with another learning rate.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from types import MappingProxyType

from panoptool.errors import ConfigError
from panoptool.labels import LabelSpace
from panoptool.model.config import NetworkConfig

#: The contour loss terms `--contour-terms` chooses from (Table I of the paper).
CONTOUR_TERMS = ("wbce", "huber", "nms")


@dataclass(frozen=True)
class LossConfig:
    """Settings of :func:`total_loss`.

    Parameters
    ----------
    contour_terms : subset of ``("wbce", "huber", "nms")`` summed into the contour loss.
    lambdas : weights of the semantic, contour and offset losses (1, 50, 0.1).
    contour_huber_delta : Huber delta on the contour probability (0.3).
    offset_huber_delta : Huber delta on the offsets, in pixels (1).
    nms_radius : the NMS loss samples ``2 * nms_radius + 1`` positions, 1 px apart, along the
        boundary normal (2 -> 5 samples).
    nms_tau : softmax temperature of the NMS loss on the probabilities (0.1, as Acuna et al.).
    nms_sigma : Gaussian sigma (px) smoothing the ground-truth contour before its normals and
        centre line are taken.
    semantic_top_k : fraction of hardest pixels the cross entropy averages over (1 = all).
    """

    contour_terms: tuple[str, ...] = CONTOUR_TERMS
    lambdas: tuple[float, float, float] = (1.0, 50.0, 0.1)
    contour_huber_delta: float = 0.3
    offset_huber_delta: float = 1.0
    nms_radius: int = 2
    nms_tau: float = 0.1
    nms_sigma: float = 1.0
    semantic_top_k: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "contour_terms", tuple(self.contour_terms))
        object.__setattr__(self, "lambdas", tuple(float(v) for v in self.lambdas))
        unknown = [t for t in self.contour_terms if t not in CONTOUR_TERMS]
        if unknown or len(set(self.contour_terms)) != len(self.contour_terms):
            raise ConfigError(f"contour loss terms must be distinct names among "
                              f"{','.join(CONTOUR_TERMS)}, got {','.join(self.contour_terms)}")
        if len(self.lambdas) != 3 or any(not (v >= 0 and math.isfinite(v))
                                         for v in self.lambdas):
            raise ConfigError(f"lambdas must be 3 non-negative numbers (semantic, contour, "
                              f"offset), got {self.lambdas}")
        for name in ("contour_huber_delta", "offset_huber_delta", "nms_tau", "nms_sigma"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 < self.semantic_top_k <= 1:
            raise ConfigError(f"semantic_top_k must be in (0, 1], got {self.semantic_top_k}")
        if self.nms_radius < 1:
            raise ConfigError(f"nms_radius must be >= 1, got {self.nms_radius}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Augment:
    """Augmentation settings (the augmentation part of
    :class:`~panoptool.training.config.TrainConfig`).

    crop : (height, width) of the training crops, both >= 32 (the network's stride); each
        side is clipped to the largest image side (at scale 1), so crops never exceed an
        image that is not enlarged; a smaller image (COCO's vary in size) is padded.
    scale : (min, max) of the random rescaling factor (uniform), 0 < min <= max.
    flip : random horizontal flips (p = 0.5).
    """

    crop: tuple[int, int] = (512, 1024)
    scale: tuple[float, float] = (0.5, 2.0)
    flip: bool = True

    def __post_init__(self):
        object.__setattr__(self, "crop", tuple(self.crop))
        object.__setattr__(self, "scale", tuple(self.scale))
        if len(self.crop) != 2 or min(self.crop) < 32:
            raise ConfigError(f"--crop must be HxW with both sides >= 32, got {self.crop}")
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1]:
            raise ConfigError(f"--scale must be MIN,MAX with 0 < MIN <= MAX, got {self.scale}")


#: ``--device`` values: ``auto`` = cuda if available, else cpu.
DEVICES = ("auto", "cpu", "cuda")


def _at_least(config, names: tuple[str, ...], low: float) -> None:
    for name in names:
        if getattr(config, name) < low:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= {low:g}, got "
                              f"{getattr(config, name)}")


@dataclass(frozen=True)
class OptimConfig:
    """SGD and its learning-rate schedule (:mod:`panoptool.training.schedule`).

    Parameters
    ----------
    iters : iterations (with ``max_minutes``: the most iterations).
    max_minutes : training-time budget (0 = none): after a few iterations the speed is
        measured and the schedule's length is fitted so that it ends within the budget; the
        run stops cleanly when the budget is spent.
    batch : global batch (split over DDP processes).
    lr, momentum, weight_decay : SGD.
    warmup_iters, poly_power : linear warm-up from 0.1 lr over ``min(warmup_iters,
        total / 10)`` iterations, then ``lr (1 - t / total) ** poly_power``.
    """

    iters: int = 48000
    max_minutes: float = 0.0
    batch: int = 4
    lr: float = 0.005
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 200
    poly_power: float = 0.9

    def __post_init__(self):
        _at_least(self, ("iters", "batch"), 1)
        _at_least(self, ("max_minutes", "warmup_iters", "weight_decay", "momentum"), 0)
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise ConfigError(f"--lr must be > 0, got {self.lr}")


@dataclass(frozen=True)
class RunConfig:
    """What one run reads and writes and how it runs: data, run folder, device, processes,
    seed, checkpoint cadence.

    Parameters
    ----------
    root, split : dataset root and training split.
    targets : ``make-targets`` output folder (holds ``<split>/`` and ``config.json``).
    out : run folder.
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
        _at_least(self, ("save_every",), 1)
        _at_least(self, ("workers", "threads", "seed"), 0)
        if not self.save_minutes > 0:
            raise ConfigError(f"--save-minutes must be > 0, got {self.save_minutes}")
        if self.device not in DEVICES:
            raise ConfigError(f"--device must be auto, cpu or cuda, got {self.device!r}")


#: The parts of a :class:`TrainConfig`, by attribute name.
PARTS: dict[str, type] = {"run": RunConfig, "network": NetworkConfig, "loss": LossConfig,
                          "augment": Augment, "optim": OptimConfig}
#: Flat names that differ from the part's field name.
_ALIASES = {("loss", "contour_terms"): "contour_loss"}


def _flat_fields() -> dict[str, tuple[str, str]]:
    flat: dict[str, tuple[str, str]] = {}
    for part, cls in PARTS.items():
        for f in dataclasses.fields(cls):
            name = _ALIASES.get((part, f.name), f.name)
            if name in flat or name in PARTS or name == "preset":
                raise TypeError(f"{cls.__name__}.{f.name}: flat name {name!r} is taken")
            flat[name] = (part, f.name)
    return flat


#: Flat keyword of :class:`TrainConfig` -> (part, field of that part): every field of every part.
FIELDS: dict[str, tuple[str, str]] = _flat_fields()

#: The flat ``settings`` of a run folder's config.json, in their order (the keys every run
#: folder has held; ``ablate`` and ``report --compare`` read them as ``train.<key>``). The
#: network and loss fields are all in its ``network`` and ``loss`` dicts.
SETTINGS = ("root", "targets", "out", "split", "backbone", "neck", "offset_scale", "iters",
            "max_minutes", "batch", "lr", "momentum", "weight_decay", "warmup_iters",
            "poly_power", "crop", "scale", "flip", "contour_loss", "lambdas", "semantic_top_k",
            "device", "amp", "workers", "threads", "channels_last", "seed", "init_weights",
            "save_every", "save_minutes")

#: Settings that may change between a run and its --resume (they do not change the result).
RESUME_FREE = ("device", "workers", "threads", "save_every", "save_minutes", "max_minutes",
               "iters", "init_weights", "preset")


@dataclass(frozen=True)
class Preset:
    """Named training settings: flat :class:`TrainConfig` keywords that explicit ones
    override, and why they exist."""

    name: str
    settings: Mapping[str, object]
    about: str


#: The presets of ``panoptool train --preset``.
PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("paper", MappingProxyType({}),
           "the paper's settings (the defaults), meant for a GPU: in a 15-minute run on 2 CPU "
           "cores they reach mIoU 52 / PQ 43 on held-out synthetic data"),
    Preset("cpu", MappingProxyType({"batch": 2, "crop": (256, 256), "scale": (0.75, 1.25),
                                    "lr": 0.01, "semantic_top_k": 0.25, "workers": 1}),
           "the training figure's and the demo's settings, which learn most in minutes on a "
           "CPU: many small SGD steps on small crops, a higher learning rate from scratch, "
           "the cross entropy over each image's hardest pixels (it helps small classes in "
           "short runs) and one loader worker (more only compete with the training threads "
           "for the cores): in the same 15-minute CPU run they reach mIoU 72 / PQ 58"),
)}


@dataclass(frozen=True, init=False)
class TrainConfig:
    """Settings of ``panoptool train`` (saved in ``config.json`` and in every checkpoint).

    Parameters
    ----------
    run, network, loss, augment, optim : the parts (see the module docstring); a part not
        given is built from the flat keywords of its fields (its defaults for the others).
    preset : a name in :data:`PRESETS`, recorded in config.json; its settings apply to the
        parts not given whole, under the flat keywords.
    **flat : one keyword per field of a part (:data:`FIELDS`); on a part given whole, they
        replace its fields.

    >>> c = TrainConfig(root="r", targets="t", out="o", preset="cpu", lr=0.02, head_conv=64)
    >>> c.optim.batch, c.optim.lr, c.network.head_conv, c.augment.crop, c.run.workers
    (2, 0.02, 64, (256, 256), 1)
    >>> dataclasses.replace(c, seed=3).optim == c.optim   # replace keeps the preset's values
    True
    """

    run: RunConfig
    network: NetworkConfig
    loss: LossConfig
    augment: Augment
    optim: OptimConfig
    preset: str | None = None

    def __init__(self, *, run: RunConfig | None = None, network: NetworkConfig | None = None,
                 loss: LossConfig | None = None, augment: Augment | None = None,
                 optim: OptimConfig | None = None, preset: str | None = None, **flat):
        given = {"run": run, "network": network, "loss": loss, "augment": augment,
                 "optim": optim}
        unknown = [k for k in flat if k not in FIELDS]
        if unknown:
            raise TypeError(f"TrainConfig got unexpected keyword argument(s) "
                            f"{', '.join(unknown)}")
        if preset is not None and preset not in PRESETS:
            raise ConfigError(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")
        values = {k: v for k, v in (PRESETS[preset].settings if preset else {}).items()
                  if given[FIELDS[k][0]] is None}
        values.update(flat)
        per_part: dict[str, dict] = {part: {} for part in PARTS}
        for name, value in values.items():
            part, field_name = FIELDS[name]
            per_part[part][field_name] = value
        for part, cls in PARTS.items():
            obj = given[part]
            if obj is None:
                obj = cls(**per_part[part])
            elif not isinstance(obj, cls):
                raise TypeError(f"TrainConfig {part} must be a {cls.__name__}, got "
                                f"{type(obj).__name__}")
            elif per_part[part]:
                obj = dataclasses.replace(obj, **per_part[part])
            object.__setattr__(self, part, obj)
        object.__setattr__(self, "preset", preset)

    def get(self, name: str):
        """The value of the flat field ``name`` (:data:`FIELDS`).

        >>> TrainConfig(root="r", targets="t", out="o").get("contour_loss")
        ('wbce', 'huber', 'nms')
        """
        part, field_name = FIELDS[name]
        return getattr(getattr(self, part), field_name)

    @staticmethod
    def default(name: str):
        """The default of the flat field ``name``, as its dataclass declares it.

        >>> TrainConfig.default("batch"), TrainConfig.default("crop")
        (4, (512, 1024))
        """
        part, field_name = FIELDS[name]
        f = {f.name: f for f in dataclasses.fields(PARTS[part])}[field_name]
        if f.default is dataclasses.MISSING:
            raise KeyError(f"{name} has no default")
        return f.default

    def settings(self) -> dict:
        """The flat settings of config.json (:data:`SETTINGS`, then ``preset`` if one was
        chosen), JSON-able (tuples as lists)."""
        flat = {name: self.get(name) for name in SETTINGS}
        if self.preset is not None:
            flat["preset"] = self.preset
        return json.loads(json.dumps(flat))

    def stage_settings(self, world_size: int) -> dict:
        """The ``settings`` of the run folder's config.json: :meth:`settings`, the number of
        processes and the whole network and loss configs."""
        return {**self.settings(), "world_size": world_size,
                "network": self.network.to_dict(),
                "loss": json.loads(json.dumps(self.loss.to_dict()))}


def config_for_labels(config: TrainConfig, labels: LabelSpace, source: str = "the dataset"
                      ) -> TrainConfig:
    """``config`` with the network's ``num_classes`` taken from the label space of the
    training data: a ``num_classes`` left at its default (19) becomes
    ``labels.num_classes``; one set to another value must be that.

    >>> from panoptool.labels import CITYSCAPES
    >>> c = config_for_labels(TrainConfig(root="r", targets="t", out="o"), CITYSCAPES)
    >>> c.network.num_classes
    19

    Raises
    ------
    ConfigError
        If ``num_classes`` was set to a count other than the label space's (``source`` names
        where the label space comes from).
    """
    n = config.network.num_classes
    if n == labels.num_classes:
        return config
    if n != TrainConfig.default("num_classes"):
        raise ConfigError(f"num_classes is {n}, the label space {labels.name!r} of {source} "
                          f"has {labels.num_classes} classes")
    return dataclasses.replace(config, num_classes=labels.num_classes)
