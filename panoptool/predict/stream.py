"""``panoptool predict``: panoptic results for any images and videos, streamed.

network -> maps in memory -> :func:`panoptool.postprocess.derive_panoptic` -> result files,
with no dataset layout and no ground truth. The three stages overlap: frames are decoded in
loader processes (a torch ``DataLoader``) while the network computes the current batch, and
the derivation and the writing of each frame run in a pool of worker processes with a
bounded queue of frames in flight; results are taken back in input order.

Output folder::

    panoptic/<name>.png            COCO panoptic PNG, id = R + 256 G + 256^2 B
    panoptic.json                  COCO panoptic (images, annotations, categories)
    semantic/<name>_pred_labelIds.png, instance/<name>_pred.txt + instance/masks/
                                   the official Cityscapes result files (format "cityscapes")
    overlay/<name>.jpg             the image under the panoptic colours, instance outlines
    overlay/<video>.mp4            the same for a video, as a video
    maps/<name>_maps.npz           prediction maps (``save_maps``), what postprocess reads
    .annotations/<name>.json       one frame's COCO annotation, written last: the frame is done
    .annotations/<video>.video.json  written after a video's last frame: the video is done
    config.json                    formats.stage_config("predict", ...), upstream = the
                                   training run's config

``<name>`` is the input's path below the folder it was found in, without its extension (a
file given directly: its file name without extension; two inputs with the same name keep
their extension, ``a_jpg``), and ``<video>_<frame:06d>`` for the frames of a video.

Derivation sizes: the pixel sizes of :class:`PostprocessConfig` (min-area, eps, min-samples,
cell) are given for a 1024x2048 image and scaled to each image's size
(:func:`scaled_config`, as ``demo`` and ``ablate`` do) unless ``scale_areas`` is False.

Maps: the network's maps are rounded to float16 (as ``infer`` stores them) before the
derivation, so ``predict`` gives exactly what ``infer`` + ``postprocess`` give, and
``postprocess`` on the saved maps gives exactly the same results again.

Under ``torchrun`` (``WORLD_SIZE`` > 1) the inputs (images, whole videos) are sharded by
rank, ``RANK::WORLD_SIZE``; rank 0 writes ``config.json`` and ``panoptic.json`` (gloo
barriers between), and the files are the same as those of one process.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np
import torch

from panoptool.io import formats
from panoptool.errors import ConfigError, InputError, OutputError
from panoptool.io.files import (LABEL_PNG_PARAMS, UP_PNG_PARAMS, atomic_path, decode_png, read_json,
                 remove_stale_temporaries, write_json, write_png, write_text)
from panoptool.labels import CITYSCAPES, LABELS_KEY, LabelSpace
from panoptool.postprocess.config import PostprocessConfig, scaled_config
from panoptool.predict.config import PredictConfig
from panoptool.postprocess.panoptic import (PanopticResult, coco_categories, derive_panoptic,
                                   segment_bboxes)

PathLike = str | os.PathLike

#: Image files a folder is searched for (case-insensitive); other files are videos only when
#: given directly.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

ANNOTATIONS_DIR = ".annotations"
OVERLAY_DIR = "overlay"
MAPS_DIR = "maps"
VIDEO_MARKER_SUFFIX = ".video.json"
OVERLAY_ALPHA = 0.5
JPEG_QUALITY = 90
VIDEO_FOURCC = "mp4v"



# --- inputs --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Source:
    """One input: an image, or a video (whose frames are named ``<name>_<k:06d>``).

    Attributes
    ----------
    path : the file.
    name : output name (see the module docstring).
    kind : ``image`` or ``video``.
    frames : 1 for an image; the container's frame count for a video (0 = unknown).
    fps : frames per second of a video (0 for an image).
    """

    path: str
    name: str
    kind: str
    frames: int = 1
    fps: float = 0.0

    def frame_name(self, k: int) -> str:
        return self.name if self.kind == "image" else f"{self.name}_{k:06d}"


def _is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _probe_video(path: Path) -> tuple[int, float]:
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise InputError(path, "neither an image nor a video OpenCV can read")
        frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(cap.get(cv2.CAP_PROP_FPS))
    finally:
        cap.release()
    return max(frames, 0), (fps if fps > 0 and math.isfinite(fps) else 25.0)


def list_sources(inputs: Sequence[PathLike], exclude: PathLike | None = None
                 ) -> list[Source]:
    """The images and videos of ``inputs``, in the order given (folders sorted).

    ``exclude``: a folder whose files are never inputs (the output folder, when it lies
    inside an input folder: its overlays are not new images).

    Raises
    ------
    InputError
        If an input does not exist, a folder holds no image, a file is neither an image nor
        a video OpenCV reads, or two inputs would be written under the same name.
    """
    found: list[tuple[Path, str, str]] = []  # (path, name without collision fix, kind)
    skip = Path(exclude).resolve() if exclude is not None else None
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            images = sorted(p for p in path.rglob("*") if p.is_file() and _is_image_file(p)
                            and not any(part.startswith(".")
                                        for part in p.relative_to(path).parts)
                            and (skip is None or skip not in p.resolve().parents))
            if not images:
                raise InputError(path, f"folder holds no image "
                                       f"({'/'.join(e[1:] for e in IMAGE_EXTENSIONS)})")
            found += [(p, p.relative_to(path).with_suffix("").as_posix(), "image")
                      for p in images]
        elif path.is_file():
            found.append((path, path.stem, "image" if _is_image_file(path) else "video"))
        else:
            raise InputError(path, "input not found (no such file or folder)")
    counts: dict[str, int] = {}
    for _, name, _ in found:
        counts[name] = counts.get(name, 0) + 1
    sources, seen = [], {}
    for path, name, kind in found:
        if counts[name] > 1:
            name = f"{name}_{path.suffix[1:].lower()}" if path.suffix else name
        if name in seen:
            raise InputError(path, f"same output name {name!r} as {seen[name]}; give each "
                                   f"input once")
        seen[name] = path
        if kind == "video":
            frames, fps = _probe_video(path)
            sources.append(Source(str(path), name, "video", frames, fps))
        else:
            sources.append(Source(str(path), name, "image"))
    return sources


def read_input_image(path: PathLike) -> np.ndarray:
    """An input image as uint8 RGB (H, W, 3): grey is repeated, alpha dropped, 16-bit
    images scaled to 8 bits.

    Raises
    ------
    InputError
        If the file cannot be read or decoded (named).
    """
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise InputError(path, f"cannot read file ({exc.strerror})") from None
    image = decode_png(data, path)
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise InputError(path, f"unsupported image dtype {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    elif image.shape[2] == 4:
        image = np.ascontiguousarray(image[..., :3])
    elif image.shape[2] != 3:
        raise InputError(path, f"expected 1, 3 or 4 channels, got {image.shape[2]}")
    return image


def iter_video(source: Source) -> Iterator[np.ndarray]:
    """The frames of a video, uint8 RGB (H, W, 3), one at a time (never held).

    Raises
    ------
    InputError
        If the video cannot be opened, or a frame fails to decode before the frame count
        the container announces (named with the frame number).
    """
    cap = cv2.VideoCapture(source.path)
    try:
        if not cap.isOpened():
            raise InputError(source.path, "cannot open video")
        k = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                if source.frames and k < source.frames:
                    raise InputError(source.path, f"frame {k} of {source.frames} cannot be "
                                                  f"decoded (damaged video)")
                return
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            k += 1
    finally:
        cap.release()


def pad_to_stride(x: np.ndarray, stride: int) -> np.ndarray:
    """Zero-pad float (3, H, W) at the bottom and right to multiples of ``stride`` (zero is
    the mean colour after normalisation).

    >>> pad_to_stride(np.ones((3, 5, 33), np.float32), 32).shape
    (3, 32, 64)
    """
    _, h, w = x.shape
    ph, pw = -h % stride, -w % stride
    if not ph and not pw:
        return x
    out = np.zeros((x.shape[0], h + ph, w + pw), dtype=x.dtype)
    out[:, :h, :w] = x
    return out


# --- the pure per-frame part ---------------------------------------------------------------

def quantize_maps(maps: dict[str, np.ndarray], height: int, width: int
                  ) -> dict[str, np.ndarray]:
    """Crop a frame's maps to (height, width) and round the float maps to float16, as
    ``infer`` stores them (see the module docstring)."""
    return {"train_ids": np.ascontiguousarray(maps["train_ids"][:height, :width]),
            "confidence": maps["confidence"][:height, :width].astype(np.float16),
            "contour_prob": maps["contour_prob"][:height, :width].astype(np.float16),
            "offset_yx": maps["offset_yx"][:, :height, :width].astype(np.float16)}


def render_overlay(image: np.ndarray, train_ids: np.ndarray, result: PanopticResult,
                   alpha: float = OVERLAY_ALPHA, labels: LabelSpace = CITYSCAPES
                   ) -> np.ndarray:
    """The image under the panoptic colours of ``labels`` (the network's label space), with
    white instance outlines.

    Parameters
    ----------
    image : uint8 RGB (H, W, 3).
    train_ids : uint8 (H, W).
    result : the frame's :class:`PanopticResult`.
    alpha : weight of the colours.
    labels : class colours and thing classes.

    Returns
    -------
    uint8 RGB (H, W, 3).
    """
    from panoptool.visualize.render import OUTLINE_COLOR, blend, colorize_panoptic, instance_boundaries

    colours = colorize_panoptic(train_ids, result.panoptic_ids, outline=False, labels=labels)
    out = blend(image, colours, alpha)
    inst = result.instance_ids
    out[instance_boundaries(inst) & (inst > 0)] = OUTLINE_COLOR
    return out


def coco_annotation(name: str, result: PanopticResult, height: int, width: int) -> dict:
    """The COCO-panoptic annotation of one frame."""
    bboxes = segment_bboxes(result.panoptic_ids, [s.id for s in result.segments])
    return {"image_id": name, "file_name": f"{name}.png", "width": width, "height": height,
            "segments_info": [{"id": s.id, "category_id": s.label_id, "area": s.area,
                               "bbox": bboxes[s.id], "iscrowd": 0} for s in result.segments]}


# --- the output folder ---------------------------------------------------------------------

def panoptic_png(out: PathLike, name: str) -> Path:
    return Path(out) / formats.PANOPTIC_DIR / f"{name}.png"


def annotation_path(out: PathLike, name: str) -> Path:
    return Path(out) / ANNOTATIONS_DIR / f"{name}.json"


def video_marker(out: PathLike, name: str) -> Path:
    return Path(out) / ANNOTATIONS_DIR / f"{name}{VIDEO_MARKER_SUFFIX}"


def overlay_path(out: PathLike, source: Source, name: str) -> Path:
    if source.kind == "video":
        return Path(out) / OVERLAY_DIR / f"{source.name}.mp4"
    return Path(out) / OVERLAY_DIR / f"{name}.jpg"


def maps_file(out: PathLike, name: str) -> Path:
    return Path(out) / MAPS_DIR / f"{name}{formats.MAPS_SUFFIX}"


def is_done(out: PathLike, source: Source) -> bool:
    """A source is done once its annotation (image) or its video marker exists."""
    if source.kind == "video":
        return video_marker(out, source.name).is_file()
    return annotation_path(out, source.name).is_file()


#: What this stage writes below the output folder (``overwrite`` removes only these).
_OUTPUT_DIRS = (formats.PANOPTIC_DIR, formats.SEMANTIC_DIR, formats.INSTANCE_DIR, OVERLAY_DIR,
                MAPS_DIR, ANNOTATIONS_DIR)


def _compared(config_json: dict) -> dict:
    """The part of a config.json two runs must share to continue each other."""
    return {k: v for k, v in config_json.items() if k != "panoptool_version"}


def check_output(out: Path, config_json: dict, overwrite: bool) -> None:
    """Refuse an output folder that holds other results (read-only check).

    Raises
    ------
    OutputError
        If ``out`` is a file, holds a ``config.json`` of other settings or of another stage,
        or holds result folders without a ``config.json`` (unless ``overwrite``).
    """
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    if overwrite or not out.is_dir():
        return
    hint = "; pass --overwrite to replace them or choose another --out"
    cfg = out / formats.CONFIG_JSON
    if cfg.is_file():
        old = read_json(cfg)
        if not isinstance(old, dict) or _compared(old) != _compared(config_json):
            a = formats.flatten_config(old if isinstance(old, dict) else {})
            b = formats.flatten_config(config_json)
            keys = [k for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)][:3]
            diff = ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys) or "settings"
            raise OutputError(f"{out}: holds results made with other settings ({diff}){hint}")
    elif any((out / d).exists() for d in _OUTPUT_DIRS):
        raise OutputError(f"{out}: holds result folders but no {formats.CONFIG_JSON}{hint}")


def clear_output(out: Path) -> None:
    """Remove what this stage writes (only that)."""
    for d in _OUTPUT_DIRS:
        if (out / d).is_dir():
            shutil.rmtree(out / d)
    for f in (formats.PANOPTIC_JSON, formats.CONFIG_JSON):
        with contextlib.suppress(FileNotFoundError):
            (out / f).unlink()


def assemble_panoptic_json(out: PathLike, sources: Sequence[Source],
                           labels: LabelSpace = CITYSCAPES) -> int:
    """Write ``panoptic.json`` from the per-frame annotations, streamed (a long video's
    annotations are never all in memory), with the categories of ``labels`` (the network's);
    returns the number of images."""
    out = Path(out)
    n = 0
    with atomic_path(formats.panoptic_json_path(out)) as tmp, open(tmp, "w",
                                                                    encoding="utf-8") as fh:
        fh.write('{"images": [')
        for name, source, k in _frames_of(out, sources):
            ann = read_json(annotation_path(out, name))
            image = {"id": name, "file_name": os.path.basename(source.path),
                     "width": ann["width"], "height": ann["height"]}
            if source.kind == "video":
                image["frame"] = k
            fh.write((", " if n else "") + json.dumps(image))
            n += 1
        fh.write('], "annotations": [')
        for i, (name, _, _) in enumerate(_frames_of(out, sources)):
            ann = read_json(annotation_path(out, name))
            fh.write((", " if i else "") + json.dumps(
                {"image_id": ann["image_id"], "file_name": ann["file_name"],
                 "segments_info": ann["segments_info"]}))
        fh.write('], "categories": ' + json.dumps(coco_categories(labels)) + "}\n")
    return n


def _frames_of(out: Path, sources: Sequence[Source]) -> Iterator[tuple[str, Source, int]]:
    for source in sources:
        if source.kind == "image":
            yield source.name, source, 0
        else:
            n = int(read_json(video_marker(out, source.name))["frames"])
            for k in range(n):
                yield source.frame_name(k), source, k


# --- worker processes ----------------------------------------------------------------------

def _die_with_parent() -> None:
    """Ask Linux to end this process when its parent dies (no orphaned workers)."""
    import signal
    with contextlib.suppress(OSError, AttributeError):
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _pool_init() -> None:
    from panoptool.runtime.pool import keep_freed_memory
    _die_with_parent()
    keep_freed_memory()


def _warm_up() -> int:
    """Load the compiled derivation kernels in a worker before the first frame."""
    derive_panoptic(np.zeros((4, 4), np.uint8), np.ones((4, 4), np.float32),
                    np.zeros((4, 4), np.float32), np.zeros((2, 4, 4), np.float32))
    return os.getpid()


@dataclass(frozen=True)
class _Job:
    """One frame for a derivation worker."""

    out: str
    source: Source
    k: int
    image: np.ndarray | None  # uint8 (H, W, 3), for the overlay only
    maps: dict  # quantised, see quantize_maps
    postprocess: PostprocessConfig
    formats: tuple[str, ...]
    save_maps: bool
    labels: LabelSpace = CITYSCAPES  # the network's: thing classes, label ids


def _finish_frame(job: _Job) -> tuple[str, int, np.ndarray | None, float, float]:
    """Derive and write one frame. Returns (name, instances, overlay frame of a video or
    None, derivation seconds, writing seconds); the annotation is written last."""
    t0 = time.perf_counter()
    name = job.source.frame_name(job.k)
    maps = {k: (v.astype(np.float32) if v.dtype == np.float16 else v)
            for k, v in job.maps.items()}
    h, w = maps["train_ids"].shape
    config = job.postprocess
    result = derive_panoptic(maps["train_ids"], maps["confidence"], maps["contour_prob"],
                             maps["offset_yx"], config, job.labels)
    t1 = time.perf_counter()
    out = Path(job.out)
    if job.save_maps:
        formats.write_maps(maps_file(out, name), **job.maps)
    if "panoptic" in job.formats:
        from panoptool.postprocess.runner import _panoptic_rgb
        write_png(panoptic_png(out, name), _panoptic_rgb(result.panoptic_ids),
                  params=UP_PNG_PARAMS)
    if "cityscapes" in job.formats:
        _write_cityscapes(out, name, maps["train_ids"], result, job.labels)
    overlay = None
    if "overlay" in job.formats:
        overlay = render_overlay(job.image, maps["train_ids"], result, labels=job.labels)
        if job.source.kind == "image":
            _write_jpeg(overlay_path(out, job.source, name), overlay)
            overlay = None
    write_json(annotation_path(out, name), coco_annotation(name, result, h, w), indent=None)
    return name, len(result.instances), overlay, t1 - t0, time.perf_counter() - t1


def _write_jpeg(path: Path, rgb: np.ndarray) -> None:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OutputError(f"{path}: JPEG encoding failed")
    with atomic_path(path) as tmp:
        buf.tofile(tmp)


def _write_cityscapes(out: Path, name: str, train_ids: np.ndarray,
                      result: PanopticResult, labels: LabelSpace = CITYSCAPES) -> None:
    """The official semantic and instance result files of one frame (label ids of
    ``labels``)."""
    h, w = train_ids.shape
    write_png(formats.semantic_result_path(out, name), labels.train_to_label[train_ids],
              params=LABEL_PNG_PARAMS)
    txt = formats.instance_txt_path(out, name)
    inst = result.instance_ids
    bboxes = segment_bboxes(result.panoptic_ids, [s.id for s in result.instances])
    lines = []
    for k, seg in enumerate(result.instances):
        rel = formats.instance_mask_relpath(name, k)
        x, y, bw, bh = bboxes[seg.id]
        mask = np.zeros((h, w), dtype=np.uint8)
        mask[y:y + bh, x:x + bw] = (inst[y:y + bh, x:x + bw] == seg.instance) * np.uint8(255)
        write_png(txt.parent / rel, mask, params=LABEL_PNG_PARAMS)
        lines.append(f"{rel} {seg.label_id} {seg.score:.6f}\n")
    write_text(txt, "".join(lines))


class _Frames(torch.utils.data.IterableDataset):
    """Decoded frames of the sources, for a torch DataLoader (an IterableDataset; loader
    worker ``w`` of ``W`` decodes sources ``w::W``). Items are dicts: a frame (``unit``,
    ``k``, ``image`` uint8 (H, W, 3), ``x`` float32 (3, H', W') normalised and padded), the
    end of a video (``unit``, ``end`` = frames), or an ``error`` (an InputError)."""

    def __init__(self, sources: Sequence[tuple[int, Source]], stride: int):
        super().__init__()
        self.sources = list(sources)
        self.stride = stride

    def __iter__(self):
        from panoptool.training.data import normalize

        info = torch.utils.data.get_worker_info()
        mine = self.sources if info is None else self.sources[info.id::info.num_workers]
        for unit, source in mine:
            try:
                frames = ([read_input_image(source.path)] if source.kind == "image"
                          else iter_video(source))
                n = 0
                for k, image in enumerate(frames):
                    x = pad_to_stride(normalize(image), self.stride)
                    yield {"unit": unit, "k": k, "image": torch.from_numpy(image),
                           "x": torch.from_numpy(x)}
                    n += 1
                if source.kind == "video":
                    yield {"unit": unit, "end": n}
            except InputError as exc:
                yield {"unit": unit, "error": exc}
                return


def _loader_init(_: int) -> None:
    _die_with_parent()


# --- the runner ----------------------------------------------------------------------------

@dataclass
class PredictSummary:
    """What a run did (this process's share under torchrun)."""

    out: str
    sources: int = 0
    skipped: int = 0
    frames: int = 0
    instances: int = 0
    seconds: float = 0.0
    network_seconds: float = 0.0
    wait_seconds: float = 0.0  # waiting for decoded frames
    derive_seconds: float = 0.0  # in the workers, summed
    write_seconds: float = 0.0  # in the workers, summed
    rank: int = 0
    world: int = 1
    times: dict = field(default_factory=dict)  # "run": wall seconds of the frame loop

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        share = f" (rank {self.rank} of {self.world})" if self.world > 1 else ""
        return (f"predict{share}: {self.frames} frame(s) written from "
                f"{self.sources - self.skipped} input(s), {self.skipped} already done, "
                f"{self.instances} instance(s), {self.seconds:.1f} s ({self.fps:.2f} "
                f"frames/s) -> {self.out}")


#: what ``--backend`` accepts


def resolve_backend(config: PredictConfig) -> str:
    """``torch`` or ``onnxruntime``: what ``config.backend`` means for this run.

    ``auto`` runs a checkpoint with onnxruntime on the CPU (exported once, cached; 1.1-1.4x
    faster than torch there, reports/bench.md) and with torch on a GPU or with ``--amp``;
    an exported ``--model`` always runs as what it is.
    """
    if config.model is not None:
        if config.backend == "torch":
            raise ConfigError(f"{config.model}: --backend torch needs --checkpoint; an "
                              f"exported --model runs with onnxruntime (or TorchScript)")
        return "onnxruntime"
    if config.backend != "auto":
        if config.backend == "onnxruntime" and (config.amp or _device_type(config) == "cuda"):
            raise ConfigError("--backend onnxruntime runs on the CPU without --amp; use "
                              "--backend torch for --device cuda or --amp")
        return config.backend
    return "onnxruntime" if _device_type(config) == "cpu" and not config.amp else "torch"


def _device_type(config: PredictConfig) -> str:
    from panoptool.training.loop import resolve_device
    return resolve_device(config.device).type


def onnx_cache_dir(out: str) -> Path:
    """Where a checkpoint's ONNX export is kept: ``$PANOPTOOL_CACHE/onnx`` (default
    ``~/.cache/panoptool/onnx``; entries are keyed by the checkpoint's SHA-256, so any number of
    runs share them), else ``<out>/.onnx_cache`` when that folder cannot be created."""
    base = os.environ.get("PANOPTOOL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "panoptool")
    folder = Path(base) / "onnx"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if os.access(folder, os.W_OK):
            return folder
    except OSError:
        pass
    return Path(out) / ".onnx_cache"


def make_backend(config: PredictConfig):
    """The :class:`~panoptool.inference.backends.MapsBackend` of ``config``: a torch checkpoint, the
    same checkpoint exported to ONNX (once, :func:`onnx_cache_dir`) and run
    with onnxruntime, or an exported model (``panoptool.inference.onnx``, imported only then)."""
    kind = resolve_backend(config)
    if config.checkpoint is not None and kind == "torch":
        from panoptool.inference.backends import TorchBackend
        device = config.device
        local = os.environ.get("LOCAL_RANK")
        if local is not None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            if _device_type(config) == "cuda":
                device = f"cuda:{int(local)}"
        return TorchBackend(config.checkpoint, device=device, amp=config.amp,
                            threads=config.threads)
    from panoptool.inference.onnx import (OnnxBackend, check_metadata, load_backend,
                                          onnx_for_checkpoint)
    if config.checkpoint is not None:
        path = onnx_for_checkpoint(config.checkpoint, onnx_cache_dir(config.out))
        backend = OnnxBackend(path, threads=config.threads)  # classes: checked by the caller
    else:
        backend = load_backend(config.model, threads=config.threads)
        check_metadata(backend.metadata, config.model, backend.labels.num_classes)
    meta = backend.metadata
    backend.network = json.loads(meta["network"])
    backend.iteration = int(meta["checkpoint_iteration"])
    backend.upstream = json.loads(meta["config"])
    return backend


def _labels_of(backend) -> LabelSpace:
    """The label space of a backend's network (Cityscapes' for a backend without one)."""
    return getattr(backend, "labels", None) or CITYSCAPES


def _stage_settings(config: PredictConfig, backend) -> dict:
    settings = {"inputs": [str(Path(p).resolve()) for p in config.inputs],
                "checkpoint": config.checkpoint, "model": config.model,
                **config.postprocess.to_dict(), "scale_areas": config.scale_areas,
                "formats": list(config.formats), "save_maps": config.save_maps,
                "amp": config.amp, "backend": resolve_backend(config),
                LABELS_KEY: _labels_of(backend).to_dict()}
    for attr in ("iteration", "network"):
        if hasattr(backend, attr):
            settings["checkpoint_iteration" if attr == "iteration" else attr] = \
                getattr(backend, attr)
    device = getattr(backend, "device", None)
    settings["device"] = getattr(device, "type", str(device) if device is not None else "cpu")
    return settings


class _Dist:
    """Rank and world size from torchrun's environment; gloo barriers when world > 1."""

    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0")) if self.world > 1 else 0
        self._group = False

    def barrier(self) -> None:
        if self.world <= 1:
            return
        import datetime

        import torch.distributed as tdist
        if not tdist.is_initialized():
            tdist.init_process_group("gloo", timeout=datetime.timedelta(days=7))
            self._group = True
        tdist.barrier()

    def close(self) -> None:
        if self._group:
            import torch.distributed as tdist
            tdist.destroy_process_group()


def predict(config: PredictConfig, *, overwrite: bool = False, show_progress: bool = True,
            backend=None) -> PredictSummary:
    """Panoptic results for every image and video frame of ``config.inputs``.

    Parameters
    ----------
    config : the settings.
    overwrite : replace results already in ``config.out`` (else finished inputs are kept and
        skipped: an interrupted run resumes).
    show_progress : a progress bar with frames per second.
    backend : a :class:`~panoptool.inference.backends.MapsBackend` to use instead of the one of
        ``config`` (``config.checkpoint`` / ``config.model`` then only name it).

    Raises
    ------
    InputError
        A missing input, an unreadable image or video, a frame that fails to decode, a
        network whose class count differs from the label table's (named). Frames written
        before the error are kept.
    OutputError
        ``config.out`` holds results of other settings.
    """
    from panoptool.inference.backends import check_classes
    from panoptool.runtime.pool import make_progress, resolve_workers

    start = time.perf_counter()
    dist = _Dist()
    out = Path(config.out)
    sources = list_sources(config.inputs, exclude=out)
    # the pool first: workers are forked before torch starts any thread
    n_workers = resolve_workers(config.workers)
    pool = ProcessPoolExecutor(max_workers=n_workers, initializer=_pool_init)
    try:
        warm = [pool.submit(_warm_up) for _ in range(n_workers)]
        if backend is None:
            backend = make_backend(config)
        check_classes(backend, _labels_of(backend).num_classes,
                      config.checkpoint or config.model)
        _prepare_output(config, backend, out, overwrite, dist)
        todo, summary = _share_of(sources, out, dist)
        for f in warm:
            f.result()
        _run(backend, config, out, todo, pool, 2 * n_workers + config.batch, summary,
             show_progress, make_progress)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    dist.barrier()
    if dist.rank == 0 and "panoptic" in config.formats:
        _write_panoptic_json(out, sources, _labels_of(backend))
    dist.close()
    summary.seconds = time.perf_counter() - start
    return summary


def _prepare_output(config: PredictConfig, backend, out: Path, overwrite: bool,
                    dist: _Dist) -> None:
    """Check the output folder against this run's settings; rank 0 clears it (``overwrite``)
    or removes stale temporaries, and writes ``config.json``; then all ranks meet."""
    upstream = getattr(backend, "upstream", None)
    config_json = formats.stage_config("predict", _stage_settings(config, backend), upstream)
    check_output(out, config_json, overwrite)
    if dist.rank == 0:
        if overwrite:
            clear_output(out)
        elif out.is_dir():
            remove_stale_temporaries(out)
        write_json(out / formats.CONFIG_JSON, config_json)
    dist.barrier()


def _share_of(sources: list[Source], out: Path, dist: _Dist
              ) -> tuple[list[tuple[int, Source]], PredictSummary]:
    """This rank's inputs not done yet, as (unit = index among all inputs, source), and the
    run's summary counting them."""
    mine = list(enumerate(sources))[dist.rank::dist.world]
    todo = [(u, s) for u, s in mine if not is_done(out, s)]
    summary = PredictSummary(out=str(out), sources=len(mine), skipped=len(mine) - len(todo),
                             rank=dist.rank, world=dist.world)
    return todo, summary


def _write_panoptic_json(out: Path, sources: list[Source],
                        labels: LabelSpace = CITYSCAPES) -> None:
    """``panoptic.json`` of all inputs (rank 0, after every rank is done).

    Raises
    ------
    OutputError
        If an input has no result after the run.
    """
    missing = [s.path for s in sources if not is_done(out, s)]
    if missing:
        raise OutputError(f"{out}: inputs without results after the run: "
                          f"{', '.join(missing[:3])}")
    assemble_panoptic_json(out, sources, labels)


def _run(backend, config: PredictConfig, out: Path, todo: list[tuple[int, Source]],
         pool: ProcessPoolExecutor, max_in_flight: int, summary: PredictSummary,
         show_progress: bool, make_progress) -> None:
    """Decode, run the network on and derive every frame of ``todo``, overlapped (see the
    module docstring); the first decoding error is raised after what was computed before it
    is written."""
    if not todo:
        return
    loader = _make_loader(backend, config, todo)
    progress = make_progress() if show_progress else contextlib.nullcontext()
    stream = _Stream(backend, config, out, dict(todo), pool, max_in_flight, summary, progress)
    total = sum(s.frames for _, s in todo) or None
    error: InputError | None = None
    t_run = time.perf_counter()
    try:
        with progress:
            if show_progress:
                stream.task = progress.add_task("predict", total=total, rate="")
            error = _feed(stream, loader, config.batch)
            stream.drain()  # what was computed is written, also before an error is raised
        summary.times["run"] = time.perf_counter() - t_run
    finally:
        stream.discard_videos()
        del loader
    if error is not None:
        raise error


def _make_loader(backend, config: PredictConfig, todo: list[tuple[int, Source]]
                 ) -> torch.utils.data.DataLoader:
    """The DataLoader decoding the frames of ``todo`` in ``config.loaders`` processes
    (0 = 4 on a GPU, 1 on the CPU; at most one per input)."""
    on_gpu = getattr(getattr(backend, "device", None), "type", "cpu") == "cuda"
    loaders = config.loaders or (4 if on_gpu else 1)
    loaders = min(loaders, len(todo))
    return torch.utils.data.DataLoader(
        _Frames(todo, int(backend.stride)), batch_size=None, num_workers=loaders,
        worker_init_fn=_loader_init if loaders else None,
        prefetch_factor=2 if loaders else None, pin_memory=False)


def _feed(stream: _Stream, loader, batch: int) -> InputError | None:
    """Submit the loader's frames to ``stream`` in batches (consecutive frames of one size,
    at most ``batch``) and mark the ends of videos; returns the first decoding error (the
    frames before it are submitted), else None."""
    summary = stream.summary
    items: list[dict] = []
    t_wait = time.perf_counter()
    for item in loader:
        summary.wait_seconds += time.perf_counter() - t_wait
        if "x" in item:
            if items and (len(items) >= batch or items[0]["x"].shape != item["x"].shape):
                stream.submit(items)
                items = []
            items.append(item)
        else:
            if items:
                stream.submit(items)
                items = []
            if "error" in item:
                return item["error"]
            stream.end_video(item["unit"], item["end"])
        t_wait = time.perf_counter()
    if items:
        stream.submit(items)
    return None


def _frame_job(config: PredictConfig, out: Path, source: Source, item: dict,
               maps: dict[str, np.ndarray], labels: LabelSpace = CITYSCAPES) -> _Job:
    """The derivation worker's job for one decoded frame ``item`` and its network maps
    (padded; cropped and quantised here), with the pixel sizes scaled to its size."""
    image = item["image"].numpy()
    h, w = image.shape[:2]
    pixels = h * w
    pp = scaled_config(config.postprocess, pixels) if config.scale_areas \
        else config.postprocess
    return _Job(str(out), source, item["k"], image if "overlay" in config.formats else None,
                quantize_maps(maps, h, w), pp, config.formats, config.save_maps, labels)


class _Stream:
    """The frames and video ends of one run in flight, in input order: the network runs in
    this process (:meth:`submit`), derivation and writing in the pool, at most
    ``max_in_flight`` frames at a time; results are taken back oldest first (the video
    overlays are appended here, and the summary and progress bar updated)."""

    def __init__(self, backend, config: PredictConfig, out: Path, units: dict[int, Source],
                 pool: ProcessPoolExecutor, max_in_flight: int, summary: PredictSummary,
                 progress):
        self.backend, self.config, self.out, self.units = backend, config, out, units
        self.pool, self.max_in_flight, self.summary = pool, max_in_flight, summary
        self.progress, self.task = progress, None
        self.queue: deque = deque()  # (future or None, kind, unit, payload), in input order
        self.writers: dict[int, tuple[cv2.VideoWriter, Path, Path]] = {}
        self.t_start = time.perf_counter()

    def submit(self, items: list[dict]) -> None:
        """Run the network on a batch of frames of one size and queue their derivation."""
        t0 = time.perf_counter()
        x = np.stack([it["x"].numpy() for it in items])
        maps = self.backend(x)
        self.summary.network_seconds += time.perf_counter() - t0
        for it, m in zip(items, maps):
            job = _frame_job(self.config, self.out, self.units[it["unit"]], it, m,
                             _labels_of(self.backend))
            while len(self.queue) >= self.max_in_flight:
                self.take_oldest()
            self.queue.append((self.pool.submit(_finish_frame, job), "frame", it["unit"], None))

    def end_video(self, unit: int, frames: int) -> None:
        """Queue the end of a video of ``frames`` frames (after its last frame)."""
        self.queue.append((None, "end", unit, frames))

    def drain(self) -> None:
        while self.queue:
            self.take_oldest()

    def take_oldest(self) -> None:
        future, kind, unit, payload = self.queue.popleft()
        if kind == "frame":
            self._frame_done(unit, future.result())
        elif kind == "end":
            self._video_done(unit, payload)
        elif kind == "error":
            raise payload

    def _frame_done(self, unit: int, result: tuple) -> None:
        _, n_inst, overlay, t_derive, t_write = result
        summary = self.summary
        summary.frames += 1
        summary.instances += n_inst
        summary.derive_seconds += t_derive
        summary.write_seconds += t_write
        if overlay is not None:
            _video_frame(self.writers, self.out, self.units[unit], unit, overlay)
        if self.task is not None:
            rate = summary.frames / max(time.perf_counter() - self.t_start, 1e-9)
            self.progress.update(self.task, completed=summary.frames,
                                 rate=f"{rate:.2f} frames/s")

    def _video_done(self, unit: int, frames: int) -> None:
        """Close the video's overlay (renamed to its final name) and write its marker."""
        if unit in self.writers:
            writer, tmp, final = self.writers.pop(unit)
            writer.release()
            os.replace(tmp, final)
        write_json(video_marker(self.out, self.units[unit].name), {"frames": frames},
                   indent=None)

    def discard_videos(self) -> None:
        """Release the overlays of videos not finished and remove their temporary files."""
        for writer, tmp, _ in self.writers.values():
            writer.release()
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def _video_frame(writers: dict, out: Path, source: Source, unit: int,
                 overlay: np.ndarray) -> None:
    """Append one overlay frame to the video's overlay (written under a temporary name and
    renamed after its last frame)."""
    if unit not in writers:
        final = overlay_path(out, source, source.name)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".tmp-{os.getpid()}-{final.name}")
        h, w = overlay.shape[:2]
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*VIDEO_FOURCC),
                                 source.fps or 25.0, (w, h))
        if not writer.isOpened():
            raise OutputError(f"{final}: cannot write video (OpenCV {VIDEO_FOURCC} encoder)")
        writers[unit] = (writer, tmp, final)
    writers[unit][0].write(cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
