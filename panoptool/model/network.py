"""The compact multi-task network: ResNet -> FPN -> neck(s) -> semantic, contour, offset heads."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from panoptool.model.fpn import FPN
from panoptool.model.heads import Head
from panoptool.model.neck import PanopticNeck
from panoptool.model.config import HEADS, NECKS, NetworkConfig  # noqa: F401  (re-exported)
from panoptool.model.resnet import ResNetEncoder


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
