"""Checkpoints: writing, reading (refusing pickles that would run code), restoring a network.

Checkpoints hold only tensors and plain Python values (configs as JSON strings), so they load
with ``torch.load(..., weights_only=True)``. A checkpoint (:func:`make_checkpoint`) holds the
weights, the optimizer (momentum buffers), the AMP scaler, the iteration, the fitted schedule
length and the schedule's progress, the training time used and the torch RNG states; with
the data stream a function of the seed and the iteration (:mod:`panoptool.training.data`),
``--resume`` continues exactly where the run stopped. It also holds the label space the
network was trained on (``labels``, JSON; :func:`labels_of_checkpoint`): a checkpoint of
panoptool before label spaces were recorded is a Cityscapes one.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import torch

from panoptool.errors import ConfigError, InputError
from panoptool.io.files import atomic_path
from panoptool.labels import CITYSCAPES, LABELS_KEY, LabelSpace
from panoptool.model import NetworkConfig, PanopticContourNet, load_torchvision_weights
from panoptool.training.config import FIELDS, RESUME_FREE, SETTINGS, TrainConfig

PathLike = str | os.PathLike

CHECKPOINT_FORMAT = "panoptool-checkpoint"
CHECKPOINT_VERSION = 1
LAST = "last.pt"


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
    if LABELS_KEY in ckpt and not isinstance(ckpt[LABELS_KEY], str):
        raise InputError(path, f"checkpoint entry {LABELS_KEY!r} is a "
                               f"{type(ckpt[LABELS_KEY]).__name__}, expected str")
    for key in ("network", "config", LABELS_KEY):
        try:
            if key in ckpt:
                json.loads(ckpt[key])
        except ValueError:
            raise InputError(path, f"checkpoint entry {key!r} is not valid JSON") from None
    return ckpt


def labels_of_checkpoint(ckpt: dict, path: PathLike) -> LabelSpace:
    """The label space a checkpoint's network was trained on; :data:`~panoptool.labels.
    CITYSCAPES` for a checkpoint without one (panoptool before label spaces were recorded).

    Raises
    ------
    InputError
        If the recorded label space is not one (named).
    """
    if LABELS_KEY not in ckpt:
        return CITYSCAPES
    try:
        space = LabelSpace.from_dict(json.loads(ckpt[LABELS_KEY]))
    except (ConfigError, ValueError, TypeError, AttributeError) as exc:
        raise InputError(path, f"checkpoint's label space is invalid ({exc})") from None
    return CITYSCAPES if space == CITYSCAPES else space


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
    load_weights(model, ckpt["model"], path, net)
    return model, ckpt


def describe_network(net: NetworkConfig) -> str:
    return f"{net.backbone} with {net.neck} neck(s)"


def load_weights(model: torch.nn.Module, state: dict, path: PathLike,
                  net: NetworkConfig) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        lines = [l.strip() for l in str(exc).splitlines() if l.strip()]
        raise InputError(path, f"weights do not fit a {describe_network(net)} network: "
                               f"{' '.join(lines[:2])[:300]}") from None



def make_checkpoint(*, network: NetworkConfig, run_config: dict, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, scaler: dict, iteration: int,
                    total: int, elapsed: float, schedule: dict,
                    device: torch.device, labels: LabelSpace = CITYSCAPES) -> dict:
    """The checkpoint of a training state (what :func:`load_checkpoint` reads back).

    ``run_config`` is the run folder's config.json; ``scaler`` the AMP scaler's state ({} when
    unused); ``schedule`` the :meth:`~panoptool.training.schedule.Schedule.state`; the torch
    RNG states (CPU, and CUDA on a CUDA ``device``) are taken now; ``labels`` the label space
    of the training data (as JSON, :func:`labels_of_checkpoint`).
    """
    return {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
            "network": json.dumps(network.to_dict()),
            LABELS_KEY: json.dumps(labels.to_dict()),
            "config": json.dumps(run_config), "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "scaler": scaler,
            "iteration": iteration, "total_iters": total, "elapsed_s": elapsed,
            "schedule": schedule,
            "rng_torch": torch.get_rng_state(),
            "rng_cuda": (torch.cuda.get_rng_state(device) if device.type == "cuda" else None)}


def check_resume(ckpt: dict, config: TrainConfig, path: Path) -> None:
    """Refuse to resume the checkpoint ``ckpt`` (at ``path``) with settings that would change
    the result: another network, other losses, other settings but :data:`RESUME_FREE`.

    Raises
    ------
    InputError
        If the checkpoint holds another network.
    ConfigError
        If other settings differ.
    """
    net = network_of(ckpt, path)
    if net != config.network:
        pairs = _differences(net.to_dict(), config.network.to_dict())
        raise InputError(path, f"checkpoint is a {describe_network(net)} network; this run "
                               f"asks for a {describe_network(config.network)} one ({pairs}): "
                               f"use another --out or the same network options")
    old = json.loads(ckpt["config"])["settings"]
    new = config.settings()
    pairs = [f"{k}: {old.get(k)} -> {new[k]}" for k in new
             if k not in RESUME_FREE and old.get(k) != new[k]]
    if isinstance(old.get("loss"), dict):  # the loss fields that the flat settings lack
        hidden = {f for name, (part, f) in FIELDS.items() if part == "loss"
                  and name not in SETTINGS}
        loss = config.stage_settings(1)["loss"]
        pairs += [f"loss.{k}: {old['loss'][k]} -> {loss[k]}" for k in sorted(hidden)
                  if k in old["loss"] and old["loss"][k] != loss[k]]
    if pairs:
        raise ConfigError(f"--resume with other settings than the run in {path.parent.parent} "
                          f"({', '.join(pairs)}); use the same options or another --out")


def _differences(old: dict, new: dict) -> str:
    """``"key: old -> new, ..."`` over the keys whose values differ."""
    return ", ".join(f"{k}: {old.get(k)} -> {v}" for k, v in new.items() if old.get(k) != v)


def load_init_weights(model: PanopticContourNet, path: PathLike, allow_partial: bool = False):
    """Load a torchvision ResNet state dict (``--init-weights``) into the encoder; returns the
    :class:`~panoptool.model.LoadReport`.

    Raises
    ------
    InputError
        If the file is missing or unreadable, not a state dict, or matches under half of the
        encoder's tensors (unless ``allow_partial``).
    """
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
