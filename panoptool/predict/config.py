"""Settings of ``panoptool predict`` (no torch here: ``predict --help`` reads them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from panoptool.errors import ConfigError
from panoptool.postprocess.config import PostprocessConfig

#: What ``--format`` may choose.
FORMATS = ("panoptic", "cityscapes", "overlay")
DEFAULT_FORMATS = ("panoptic", "overlay")
BACKENDS = ("auto", "torch", "onnxruntime")


@dataclass(frozen=True)
class PredictConfig:
    """Settings of ``panoptool predict``.

    Parameters
    ----------
    inputs : image files, folders (searched recursively for :data:`IMAGE_EXTENSIONS`) and
        video files, mixed.
    out : results folder.
    checkpoint : a ``train`` checkpoint (torch); exactly one of ``checkpoint`` and ``model``.
    model : an exported ``.onnx`` model (onnxruntime, ``panoptool.inference.onnx``).
    postprocess : the derivation's settings, pixel sizes for a 1024x2048 image.
    scale_areas : scale the pixel sizes to each image's size (:func:`scaled_config`).
    formats : subset of :data:`FORMATS`.
    save_maps : also write ``maps/<name>_maps.npz``.
    device : ``auto``, ``cpu`` or ``cuda``.
    amp : mixed precision (float16 on CUDA, bfloat16 on CPU).
    backend : ``auto``, ``torch`` or ``onnxruntime`` (see :func:`resolve_backend`).
    batch : frames per forward pass (consecutive frames of one size are batched).
    threads : torch (or onnxruntime) CPU threads; 0 = all cores.
    workers : derivation-and-writing worker processes; 0 = all cores.
    loaders : decoding worker processes; 0 = auto (1 on CPU, 4 on CUDA).
    """

    inputs: tuple[str, ...]
    out: str
    checkpoint: str | None = None
    model: str | None = None
    postprocess: PostprocessConfig = PostprocessConfig()
    # metadata["help"]: the help of the `predict` option made from the field
    scale_areas: bool = field(default=True, metadata={
        "help": "The pixel sizes below (--min-area, --eps, --min-samples, --cell) are for a "
                "1024x2048 image and are scaled to each image's size (areas by the pixel "
                "ratio, lengths by its square root), as demo and ablate do; --no-scale-areas "
                "uses them as given."})
    formats: tuple[str, ...] = field(default=DEFAULT_FORMATS, metadata={
        "help": "Comma list of what to write: panoptic (COCO panoptic PNGs + panoptic.json), "
                "cityscapes (official semantic/ and instance/ result files), overlay (the "
                "image under the panoptic colours with instance outlines; an .mp4 per "
                "video)."})
    save_maps: bool = field(default=False, metadata={
        "help": "Also keep maps/<name>_maps.npz (what `panoptool postprocess --maps` reads)."})
    device: str = "auto"
    amp: bool = False
    backend: str = field(default="auto", metadata={
        "help": "What runs a --checkpoint: torch, or onnxruntime on the model exported once "
                "into ~/.cache/panoptool/onnx ($PANOPTOOL_CACHE; the CPU default: 1.1-1.4x "
                "faster than torch on 2 cores). auto = onnxruntime on the CPU, torch on a GPU "
                "or with --amp."})
    batch: int = field(default=1, metadata={
        "help": "Frames per forward pass (consecutive frames of one size)."})
    threads: int = field(default=0, metadata={"help": "Torch CPU threads; 0 = all cores."})
    workers: int = 0
    loaders: int = field(default=0, metadata={
        "help": "Decoding worker processes; 0 = auto (1 on CPU, 4 on CUDA)."})

    def __post_init__(self):
        object.__setattr__(self, "inputs", tuple(str(p) for p in self.inputs))
        object.__setattr__(self, "out", str(self.out))
        object.__setattr__(self, "formats", tuple(dict.fromkeys(self.formats)))
        # a network's maps: the seeded derivation without a band limit, as postprocess
        object.__setattr__(self, "postprocess", self.postprocess.on_maps())
        if not self.inputs:
            raise ConfigError("predict needs at least one INPUT (image, folder or video)")
        if (self.checkpoint is None) == (self.model is None):
            raise ConfigError("pass exactly one of --checkpoint CKPT and --model FILE.onnx")
        unknown = [f for f in self.formats if f not in FORMATS]
        if unknown or not self.formats:
            raise ConfigError(f"--format must be a non-empty comma list of "
                              f"{', '.join(FORMATS)}; got {','.join(self.formats) or '(empty)'}")
        if not isinstance(self.postprocess, PostprocessConfig):
            raise ConfigError("postprocess must be a PostprocessConfig")
        if self.batch < 1:
            raise ConfigError(f"--batch must be >= 1, got {self.batch}")
        for name in ("threads", "workers", "loaders"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name} must be >= 0, got {getattr(self, name)}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}, "
                              f"got {self.backend!r}")
