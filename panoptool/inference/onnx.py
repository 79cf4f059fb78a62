"""Deployable network: ``panoptool export`` (ONNX / TorchScript) and the onnxruntime backend.

The exported model is the network *with* the step that turns its outputs into prediction
maps (:func:`panoptool.inference.maps.maps_from_outputs`): softmax, argmax as uint8 train ids, the
softmax probability of the argmax, the contour sigmoid and the offsets. Running it therefore
gives the maps ``infer`` writes, with no panoptool training code (and, for ONNX, no torch).

Model file contract (format ``panoptool-maps``, version 1)
---------------------------------------------------------
- input ``image``: float32 (N, 3, H, W), normalised as ``panoptool.training.data.normalize``
  does (RGB / 255, minus ``mean``, divided by ``std``; both stored in the metadata); H and W
  multiples of ``stride`` (32). N is always dynamic; H and W are fixed unless the model was
  exported with ``--dynamic``.
- outputs ``train_ids`` uint8 (N, H, W), ``confidence`` float32 (N, H, W), ``contour_prob``
  float32 (N, H, W), ``offset_yx`` float32 (N, 2, H, W).
- metadata (ONNX ``metadata_props``; TorchScript extra file ``panoptool.json``): the keys of
  :func:`model_metadata`. A file without ``panoptool.format`` = ``panoptool-maps`` is refused.

Backends implement the duck-typed protocol of ``panoptool.inference.backends``: ``n_classes``,
``stride`` and ``__call__(images float32 (N, 3, H, W)) -> list of maps dicts``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from panoptool.errors import ConfigError, InputError
from panoptool.io.files import atomic_path

PathLike = str | os.PathLike

MODEL_FORMAT = "panoptool-maps"
MODEL_FORMAT_VERSION = 1
#: Input sides must be multiples of this (the encoder's coarsest stride).
STRIDE = 32
INPUT_NAME = "image"
OUTPUT_NAMES = ("train_ids", "confidence", "contour_prob", "offset_yx")
#: Name of the label table the class indices refer to.
LABEL_TABLE = "cityscapes"
#: TorchScript extra file that holds the metadata.
TORCHSCRIPT_META = "panoptool.json"
FORMATS = ("onnx", "torchscript")


def maps_module(network):
    """Wrap a :class:`~panoptool.model.PanopticContourNet` so that its forward returns the
    prediction maps (the tensors of :func:`panoptool.inference.maps.maps_from_outputs`).

    Forward: float32 (N, 3, H, W) -> (``train_ids`` uint8 (N, H, W), ``confidence`` float32
    (N, H, W), ``contour_prob`` float32 (N, H, W), ``offset_yx`` float32 (N, 2, H, W)).
    """
    import torch

    class MapsNet(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, image: torch.Tensor):
            out = self.net(image)
            # the softmax probability of the argmax, max_k exp(l_k) / sum_k exp(l_k), as
            # 1 / sum_k exp(l_k - max_l): the same value without a Softmax over the channel
            # axis, which onnxruntime computes through transposes (a third of the time of
            # the whole model at 512x1024); the argmax of the logits is that of the softmax
            logits = out["semantic_logits"].float()
            top, train_ids = logits.max(dim=1)
            confidence = 1.0 / torch.exp(logits - top[:, None]).sum(dim=1)
            contour = torch.sigmoid(out["contour_logits"].float())[:, 0]
            return train_ids.to(torch.uint8), confidence, contour, out["offset_yx"].float()

    return MapsNet(network).eval()


def model_metadata(ckpt: dict, checkpoint: PathLike, *, height: int | None,
                   width: int | None, fmt: str) -> dict[str, str]:
    """The metadata every exported model carries (all values strings).

    Keys: ``panoptool.format``, ``panoptool.format_version``, ``panoptool.version``,
    ``network`` (JSON of the NetworkConfig), ``n_classes``, ``stride``, ``mean``, ``std``
    (JSON lists, RGB, 0..1 scale), ``label_table`` (the label space's name), ``labels`` (the
    label space, JSON; :func:`labels_of_metadata`), ``input_size`` (``HxW`` or ``dynamic``),
    ``checkpoint`` (file name), ``checkpoint_sha256``, ``checkpoint_iteration``, ``config``
    (the training run's config.json, so ``infer --model`` keeps the provenance chain),
    ``export_format``.
    """
    from panoptool import __version__
    from panoptool.training.checkpoints import labels_of_checkpoint
    from panoptool.training.data import MEAN, STD

    network = json.loads(ckpt["network"])
    labels = labels_of_checkpoint(ckpt, checkpoint)
    return {
        "panoptool.format": MODEL_FORMAT,
        "panoptool.format_version": str(MODEL_FORMAT_VERSION),
        "panoptool.version": __version__,
        "network": json.dumps(network, sort_keys=True),
        "n_classes": str(int(network.get("num_classes", 19))),
        "stride": str(STRIDE),
        "mean": json.dumps([float(v) for v in MEAN]),
        "std": json.dumps([float(v) for v in STD]),
        "label_table": labels.name,
        "labels": json.dumps(labels.to_dict()),
        "input_size": "dynamic" if height is None else f"{height}x{width}",
        "checkpoint": Path(checkpoint).name,
        "checkpoint_sha256": file_sha256(checkpoint),
        "checkpoint_iteration": str(int(ckpt["iteration"])),
        "config": ckpt["config"] if isinstance(ckpt["config"], str)
        else json.dumps(ckpt["config"]),
        "export_format": fmt,
    }


def file_sha256(path: PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_size(height: int | None, width: int | None, dynamic: bool) -> None:
    if (height is None) != (width is None):
        raise ConfigError("give both --height and --width (a fixed input size) or neither")
    if height is not None and dynamic:
        raise ConfigError("--dynamic and --height/--width exclude each other")
    if height is not None:
        for name, v in (("height", height), ("width", width)):
            if v < STRIDE or v % STRIDE:
                raise ConfigError(f"--{name} must be a positive multiple of {STRIDE}, got {v}")


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export_model` wrote."""

    out: str
    format: str
    input_size: str
    n_classes: int
    megabytes: float


def export_onnx(checkpoint: PathLike, out: PathLike, *, height: int | None = None,
                width: int | None = None, dynamic: bool = False,
                opset: int = 17) -> ExportSummary:
    """Export a checkpoint's network with its maps step to ONNX (legacy TorchScript-based
    exporter, which needs nothing beyond torch and onnx).

    Parameters
    ----------
    checkpoint : a ``train`` checkpoint.
    out : the ``.onnx`` file to write (atomically).
    height, width : fixed input size (multiples of 32); both None = dynamic H and W.
    dynamic : dynamic H and W (the default when no size is given; excludes a size).
    opset : ONNX opset (>= 13).

    Raises
    ------
    InputError
        On an unreadable checkpoint (named).
    ConfigError
        On an inconsistent size or an opset below 13.
    """
    return export_model(checkpoint, out, fmt="onnx", height=height, width=width,
                        dynamic=dynamic, opset=opset)


def export_model(checkpoint: PathLike, out: PathLike, *, fmt: str = "onnx",
                 height: int | None = None, width: int | None = None, dynamic: bool = False,
                 opset: int = 17) -> ExportSummary:
    """Export to ``fmt`` = ``onnx`` or ``torchscript`` (see :func:`export_onnx`).

    A TorchScript export is a ``torch.jit.trace`` of the same module; its metadata is the
    extra file ``panoptool.json``. Traced shapes stay symbolic, so it runs at any size.
    """
    from panoptool.training.loop import model_from_checkpoint

    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if opset < 13:
        raise ConfigError(f"--opset must be >= 13, got {opset}")
    _check_size(height, width, dynamic)
    model, ckpt = model_from_checkpoint(checkpoint)
    meta = model_metadata(ckpt, checkpoint, height=height, width=width, fmt=fmt)
    if fmt == "onnx":
        data = onnx_bytes(model, meta, height=height, width=width, opset=opset)
        with atomic_path(out) as tmp:
            tmp.write_bytes(data)
    else:
        with atomic_path(out) as tmp:
            write_torchscript(model, meta, tmp, height=height, width=width)
    return ExportSummary(out=str(out), format=fmt, input_size=meta["input_size"],
                         n_classes=int(meta["n_classes"]),
                         megabytes=Path(out).stat().st_size / 2 ** 20)


def _example(height: int | None, width: int | None):
    import torch
    g = torch.Generator().manual_seed(0)
    return torch.randn(1, 3, height or 2 * STRIDE, width or 4 * STRIDE, generator=g)


def onnx_bytes(network, metadata: dict[str, str], *, height: int | None = None,
               width: int | None = None, opset: int = 17) -> bytes:
    """The serialised ONNX model of ``maps_module(network)`` with ``metadata``.

    The batch axis is always dynamic; H and W too when ``height`` is None.
    """
    import onnx
    import torch

    module = maps_module(network.float().cpu().eval())
    axes = {INPUT_NAME: {0: "batch"}, **{name: {0: "batch"} for name in OUTPUT_NAMES}}
    if height is None:
        axes[INPUT_NAME].update({2: "height", 3: "width"})
        for name in OUTPUT_NAMES:
            h_axis = 2 if name == "offset_yx" else 1
            axes[name].update({h_axis: "height", h_axis + 1: "width"})
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation/tracer notes
        torch.onnx.export(module, (_example(height, width),), buf, dynamo=False,
                          opset_version=opset, input_names=[INPUT_NAME],
                          output_names=list(OUTPUT_NAMES), dynamic_axes=axes,
                          do_constant_folding=True)
    proto = onnx.load_from_string(buf.getvalue())
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "panoptool"
    return proto.SerializeToString()


def write_torchscript(network, metadata: dict[str, str], path: PathLike, *,
                      height: int | None = None, width: int | None = None) -> None:
    """``torch.jit.trace`` of ``maps_module(network)`` saved to ``path`` (not atomic: the
    caller passes a temporary path) with ``metadata`` as the extra file ``panoptool.json``."""
    import torch

    module = maps_module(network.float().cpu().eval())
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, (_example(height, width),), check_trace=False)
        torch.jit.save(traced, str(path),
                       _extra_files={TORCHSCRIPT_META: json.dumps(metadata, sort_keys=True)})


# --- reading models ------------------------------------------------------------------------

def check_metadata(meta: dict[str, str], path: PathLike,
                   n_classes: int | None = None) -> dict[str, str]:
    """Validate a model file's metadata; return it.

    Raises
    ------
    InputError
        If it is not a panoptool model, of another format version, or its class count is not
        ``n_classes`` (when given).
    """
    if meta.get("panoptool.format") != MODEL_FORMAT:
        raise InputError(path, "not a panoptool model (no 'panoptool.format' = "
                               f"{MODEL_FORMAT!r} metadata; write one with `panoptool export`)")
    if meta.get("panoptool.format_version") != str(MODEL_FORMAT_VERSION):
        raise InputError(path, f"model format version {meta.get('panoptool.format_version')}, "
                               f"this panoptool reads version {MODEL_FORMAT_VERSION}")
    missing = [k for k in ("n_classes", "stride", "input_size", "network") if k not in meta]
    if missing:
        raise InputError(path, f"model metadata lacks {', '.join(missing)}")
    if n_classes is not None and int(meta["n_classes"]) != n_classes:
        raise InputError(path, f"model predicts {meta['n_classes']} classes, the "
                               f"{meta.get('label_table', LABEL_TABLE)} label table has "
                               f"{n_classes}")
    return meta


def labels_of_metadata(meta: dict[str, str], path: PathLike):
    """The label space of an exported model (its ``labels`` metadata); Cityscapes' for a
    model exported before label spaces were recorded.

    Raises
    ------
    InputError
        If the recorded label space is not one (named).
    """
    from panoptool.errors import ConfigError
    from panoptool.labels import CITYSCAPES, LabelSpace

    if "labels" not in meta:
        return CITYSCAPES
    try:
        space = LabelSpace.from_dict(json.loads(meta["labels"]))
    except (ConfigError, ValueError, TypeError, AttributeError) as exc:
        raise InputError(path, f"model's label space is invalid ({exc})") from None
    return CITYSCAPES if space == CITYSCAPES else space


def _input_size(meta: dict[str, str]) -> tuple[int, int] | None:
    if meta["input_size"] == "dynamic":
        return None
    h, w = meta["input_size"].split("x")
    return int(h), int(w)


def _check_images(images: np.ndarray, size: tuple[int, int] | None, path: str) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ConfigError(f"{path}: images must be float32 (N, 3, H, W), got shape "
                          f"{images.shape}")
    if size is not None and tuple(images.shape[2:]) != size:
        raise ConfigError(f"{path}: exported for {size[0]}x{size[1]} images, got "
                          f"{images.shape[2]}x{images.shape[3]} (export with --dynamic or "
                          f"at this size)")


def _split(outputs) -> list[dict[str, np.ndarray]]:
    tid, conf, contour, offset = outputs
    return [{"train_ids": tid[i], "confidence": conf[i], "contour_prob": contour[i],
             "offset_yx": offset[i]} for i in range(tid.shape[0])]


class OnnxBackend:
    """Runs an exported ``.onnx`` model with onnxruntime on the CPU.

    Parameters
    ----------
    path : a model written by ``panoptool export`` (ONNX).
    threads : intra-op threads; 0 = all cores this process may use.
    n_classes : expected class count (e.g. the label table's 19); None = any.
    optimization : onnxruntime graph optimisation level: ``all`` (default), ``extended``,
        ``basic`` or ``none``.
    spinning : let idle intra-op threads spin (faster on an idle machine, much slower on a
        shared one); off by default, like torch's ``OMP_WAIT_POLICY=PASSIVE`` in ``infer``.

    Attributes
    ----------
    n_classes, stride : from the metadata.
    labels : the label space the network was trained on (:func:`labels_of_metadata`).
    input_size : (H, W) of a fixed-size model, None if dynamic.
    metadata : dict of the model's metadata strings.

    Calling it: float32 (N, 3, H, W) normalised images -> list of N dicts ``train_ids`` uint8
    (H, W), ``confidence`` float32 (H, W), ``contour_prob`` float32 (H, W), ``offset_yx``
    float32 (2, H, W).

    Raises
    ------
    InputError
        On a missing, corrupt or foreign file, or a class count other than ``n_classes``.
    """

    def __init__(self, path: PathLike, *, threads: int = 0, n_classes: int | None = None,
                 optimization: str = "all", spinning: bool = False):
        import onnxruntime as ort

        from panoptool.runtime.pool import default_workers

        self.path = str(path)
        levels = {"none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                  "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                  "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                  "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
        if optimization not in levels:
            raise ConfigError(f"optimization must be one of {', '.join(levels)}, "
                              f"got {optimization!r}")
        if threads < 0:
            raise ConfigError(f"threads must be >= 0, got {threads}")
        data = _read_bytes(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_workers()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = levels[optimization]
        options.add_session_config_entry("session.intra_op.allow_spinning",
                                         "1" if spinning else "0")
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(data, options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own (Fail, InvalidProtobuf, ...)
            raise InputError(path, f"cannot read ONNX model (corrupt or not ONNX: "
                                   f"{_first_line(exc)})") from None
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        self.metadata = check_metadata(meta, path, n_classes)
        names_in = [i.name for i in self.session.get_inputs()]
        names_out = [o.name for o in self.session.get_outputs()]
        if names_in != [INPUT_NAME] or names_out != list(OUTPUT_NAMES):
            raise InputError(path, f"model has inputs {names_in} and outputs {names_out}, "
                                   f"expected [{INPUT_NAME!r}] and {list(OUTPUT_NAMES)}")
        self.n_classes = int(self.metadata["n_classes"])
        self.labels = labels_of_metadata(self.metadata, path)
        self.stride = int(self.metadata["stride"])
        self.input_size = _input_size(self.metadata)

    def __call__(self, images: np.ndarray) -> list[dict[str, np.ndarray]]:
        images = np.ascontiguousarray(images, dtype=np.float32)
        _check_images(images, self.input_size, self.path)
        return _split(self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: images}))


class TorchScriptBackend:
    """Runs a TorchScript export (``panoptool export --format torchscript``) with torch.

    Same parameters (``threads`` sets torch's threads when > 0), attributes and call as
    :class:`OnnxBackend`; ``device`` is a torch device string (``cpu``, ``cuda``).
    """

    def __init__(self, path: PathLike, *, threads: int = 0, n_classes: int | None = None,
                 device: str = "cpu"):
        import torch

        self.path = str(path)
        if not Path(path).is_file():
            raise InputError(path, "model file not found")
        extra = {TORCHSCRIPT_META: ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.jit's deprecation note
                self.module = torch.jit.load(str(path), map_location=device,
                                             _extra_files=extra)
        except Exception as exc:  # RuntimeError on corrupt archives
            raise InputError(path, f"cannot read TorchScript model (corrupt: "
                                   f"{_first_line(exc)})") from None
        try:
            meta = json.loads(extra[TORCHSCRIPT_META] or "{}")
        except ValueError:
            meta = {}
        self.metadata = check_metadata(meta if isinstance(meta, dict) else {}, path, n_classes)
        if threads:
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        self.n_classes = int(self.metadata["n_classes"])
        self.labels = labels_of_metadata(self.metadata, path)
        self.stride = int(self.metadata["stride"])
        self.input_size = _input_size(self.metadata)

    def __call__(self, images: np.ndarray) -> list[dict[str, np.ndarray]]:
        import torch

        images = np.ascontiguousarray(images, dtype=np.float32)
        _check_images(images, self.input_size, self.path)
        with torch.inference_mode():
            outputs = self.module(torch.from_numpy(images).to(self.device))
        return _split([t.cpu().numpy() for t in outputs])


def load_backend(path: PathLike, *, threads: int = 0, n_classes: int | None = None):
    """An :class:`OnnxBackend` or a :class:`TorchScriptBackend` for ``path``, chosen by its
    content (a TorchScript file is a zip archive, an ONNX file a protobuf)."""
    if not Path(path).is_file():
        raise InputError(path, "model file not found")
    if zipfile.is_zipfile(path):
        return TorchScriptBackend(path, threads=threads, n_classes=n_classes)
    return OnnxBackend(path, threads=threads, n_classes=n_classes)


def onnx_for_checkpoint(checkpoint: PathLike, cache_dir: PathLike, *,
                        height: int | None = None, width: int | None = None,
                        opset: int = 17) -> Path:
    """The ONNX export of ``checkpoint``, written once into ``cache_dir``.

    The file name is keyed by the checkpoint's SHA-256, the input size, the opset and the
    panoptool version (``<sha[:16]>-<HxW|dynamic>-opset<N>-v<version>.onnx``); an entry that
    is missing or unreadable is (re)exported atomically. Returns its path.
    """
    from panoptool import __version__

    if not Path(checkpoint).is_file():
        raise InputError(checkpoint, "checkpoint not found")
    _check_size(height, width, False)
    size = "dynamic" if height is None else f"{height}x{width}"
    path = Path(cache_dir) / (f"{file_sha256(checkpoint)[:16]}-{size}-opset{opset}"
                              f"-v{__version__}.onnx")
    if path.is_file():
        with contextlib.suppress(InputError):
            check_metadata(read_onnx_metadata(path), path)
            return path
    export_onnx(checkpoint, path, height=height, width=width, opset=opset)
    return path


def read_onnx_metadata(path: PathLike) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (without loading its weights into a session).

    Raises
    ------
    InputError
        If the file is missing or not a readable ONNX model.
    """
    import onnx

    data = _read_bytes(path)
    try:
        proto = onnx.load_from_string(data)
    except Exception as exc:  # google.protobuf DecodeError and friends
        raise InputError(path, f"cannot read ONNX model (corrupt or not ONNX: "
                               f"{_first_line(exc)})") from None
    return {p.key: p.value for p in proto.metadata_props}


def _read_bytes(path: PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(path, "model file not found") from None
    except OSError as exc:
        raise InputError(path, f"cannot read model file ({exc.strerror})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
