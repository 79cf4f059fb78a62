"""Prediction heads: a 3x3 convolution block and a 1x1 classifier/regressor."""

from __future__ import annotations

import torch
from torch import nn

from panoptool.model.resnet import group_norm


class Head(nn.Module):
    """A 1x1 convolution to ``out_channels`` (Panoptic FPN's classifier), optionally after a
    3x3 conv (+ GroupNorm + ReLU) block, at the neck's resolution; no activation (logits, or
    raw regression values).

    Parameters
    ----------
    in_channels : neck channels (128).
    out_channels : 19 semantic logits, 1 contour logit or 2 offset values.
    hidden : channels of the optional 3x3 block; 0 = no block (the default: on 2 CPU cores
        three 128-channel 3x3 blocks at 1/4 resolution cost a quarter of the training step).
    prior : initial bias of the output (e.g. a contour logit of -log((1-p)/p) for a rare
        positive class); 0 by default.
    gn_groups : GroupNorm groups.

    Forward: float (N, in_channels, h, w) -> float (N, out_channels, h, w).
    """

    def __init__(self, in_channels: int = 128, out_channels: int = 19, *, hidden: int = 0,
                 prior: float = 0.0, gn_groups: int = 32):
        super().__init__()
        if hidden:
            self.block = nn.Sequential(nn.Conv2d(in_channels, hidden, 3, padding=1, bias=False),
                                       group_norm(hidden, gn_groups), nn.ReLU(inplace=True))
            nn.init.kaiming_normal_(self.block[0].weight, mode="fan_out", nonlinearity="relu")
        else:
            self.block = nn.Identity()
        self.out = nn.Conv2d(hidden or in_channels, out_channels, 1)
        nn.init.normal_(self.out.weight, std=0.01)
        nn.init.constant_(self.out.bias, prior)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.block(x))
