"""Panoptic-FPN neck: every pyramid level to one 1/4-resolution map."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from panoptool.model.resnet import group_norm


class PanopticNeck(nn.Module):
    """Per pyramid level a 1x1 convolution (+ GroupNorm + ReLU) to ``channels``, bilinear
    upsampling to the finest level (stride 4), and the sum over levels.

    Parameters
    ----------
    in_channels : channels of each pyramid level (the FPN's 256).
    levels : number of pyramid levels (4).
    channels : output channels (128).
    gn_groups : GroupNorm groups.

    Forward: list of ``levels`` tensors, finest first -> float (N, channels, H/4, W/4).
    """

    def __init__(self, in_channels: int = 256, levels: int = 4, channels: int = 128,
                 gn_groups: int = 32):
        super().__init__()
        self.levels = nn.ModuleList(
            nn.Sequential(nn.Conv2d(in_channels, channels, 1, bias=False),
                          group_norm(channels, gn_groups), nn.ReLU(inplace=True))
            for _ in range(levels))
        self.channels = channels
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, pyramid: list[torch.Tensor]) -> torch.Tensor:
        size = pyramid[0].shape[-2:]
        out = self.levels[0](pyramid[0])
        for level, x in zip(self.levels[1:], pyramid[1:]):
            out = out + F.interpolate(level(x), size=size, mode="bilinear",
                                      align_corners=False)
        return out
