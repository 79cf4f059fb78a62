"""The compact multi-task network: ResNet -> FPN -> neck(s) -> semantic, contour, offset heads."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from panoptool.errors import ConfigError
from panoptool.model.fpn import FPN
from panoptool.model.heads import Head
from panoptool.model.neck import PanopticNeck
from panoptool.model.resnet import ARCHS, ResNetEncoder

HEADS = ("semantic", "contour", "offset")
#: ``shared``: one neck feeds all heads; ``separate``: one neck per head.
NECKS = ("shared", "separate")


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture of :class:`PanopticContourNet` (stored in every checkpoint as JSON).

    Parameters
    ----------
    backbone : ``resnet18``, ``resnet34``, ``resnet50`` or ``resnet101``.
    neck : ``shared`` (one neck feeds all heads) or ``separate`` (one neck per head).
    num_classes : semantic classes (19 Cityscapes trainIds); ``train`` takes the label
        space's count where this is left at 19.
    fpn_channels, neck_channels : 256 and 128 as in the paper.
    gn_groups : GroupNorm groups.
    head_conv : channels of a 3x3 conv block at the start of each head; 0 = none (each head
        is the 1x1 classifier of Panoptic FPN).
    offset_scale : the offset head's raw output times ``offset_scale`` is the offset in pixels
        of the input image; a scale > 1 lets the small-initialised head reach offsets of tens
        of pixels quickly.
    contour_prior : initial probability of the contour output (its bias is the logit).
    """

    backbone: str = "resnet18"
    neck: str = "separate"
    num_classes: int = 19
    fpn_channels: int = 256
    neck_channels: int = 128
    gn_groups: int = 32
    head_conv: int = 0
    offset_scale: float = 4.0
    contour_prior: float = 0.05

    def __post_init__(self):
        if self.backbone not in ARCHS:
            raise ConfigError(f"unknown backbone {self.backbone!r}; choose from "
                              f"{', '.join(ARCHS)}")
        if self.neck not in NECKS:
            raise ConfigError(f"neck must be 'shared' or 'separate', got {self.neck!r}")
        for name in ("num_classes", "fpn_channels", "neck_channels", "gn_groups"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.head_conv < 0:
            raise ConfigError(f"head_conv must be >= 0, got {self.head_conv}")
        if not self.offset_scale > 0:
            raise ConfigError(f"offset_scale must be > 0, got {self.offset_scale}")
        if not 0 < self.contour_prior < 1:
            raise ConfigError(f"contour_prior must be in (0, 1), got {self.contour_prior}")

    def to_dict(self) -> dict:
        return asdict(self)


class PanopticContourNet(nn.Module):
    """ResNet encoder (strides 4..32) -> FPN (256 ch) -> Panoptic-FPN neck(s) (128 ch, stride
    4) -> heads, bilinearly upsampled 4x to the input size.

    Build it from explicit keyword arguments (those of :class:`NetworkConfig`), e.g.
    ``PanopticContourNet(backbone="resnet50", neck="shared")``.

    Forward
    -------
    image : float (N, 3, H, W), normalised (see ``panoptool.training.data.normalize``); H and W
        need not be multiples of 32 (features are resized to match).

    Returns a dict of float tensors at the input size:
    ``semantic_logits`` (N, num_classes, H, W), ``contour_logits`` (N, 1, H, W) and
    ``offset_yx`` (N, 2, H, W): (dy, dx) in input pixels from each pixel to its predicted
    instance centre.
    """

    def __init__(self, **kwargs):
        super().__init__()
        self.config = NetworkConfig(**kwargs)
        c = self.config
        self.encoder = ResNetEncoder(c.backbone, gn_groups=c.gn_groups)
        self.fpn = FPN(self.encoder.out_channels, c.fpn_channels)
        n_necks = 1 if c.neck == "shared" else len(HEADS)
        self.necks = nn.ModuleList(PanopticNeck(c.fpn_channels, 4, c.neck_channels, c.gn_groups)
                                   for _ in range(n_necks))
        prior = math.log(c.contour_prior / (1 - c.contour_prior))
        self.heads = nn.ModuleDict({
            "semantic": Head(c.neck_channels, c.num_classes, hidden=c.head_conv,
                             gn_groups=c.gn_groups),
            "contour": Head(c.neck_channels, 1, hidden=c.head_conv, prior=prior,
                            gn_groups=c.gn_groups),
            "offset": Head(c.neck_channels, 2, hidden=c.head_conv, gn_groups=c.gn_groups),
        })

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        size = image.shape[-2:]
        pyramid = self.fpn(self.encoder(image))
        shared = self.necks[0](pyramid) if len(self.necks) == 1 else None
        out = {}
        for i, name in enumerate(HEADS):
            feat = shared if shared is not None else self.necks[i](pyramid)
            out[name] = F.interpolate(self.heads[name](feat), size=size, mode="bilinear",
                                      align_corners=False)
        return {"semantic_logits": out["semantic"], "contour_logits": out["contour"],
                "offset_yx": out["offset"] * self.config.offset_scale}


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
