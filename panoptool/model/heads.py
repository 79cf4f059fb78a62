"""Prediction heads: a 3x3 convolution block and a 1x1 classifier/regressor."""

from __future__ import annotations

import torch
from torch import nn

from .resnet import group_norm


class Head(nn.Module):
    """3x3 conv (+ GroupNorm + ReLU) then a 1x1 conv to ``out_channels``, at the neck's
    resolution; no activation (logits, or raw regression values).

    Parameters
    ----------
    in_channels : neck channels (128).
    out_channels : 19 semantic logits, 1 contour logit or 2 offset values.
    hidden : channels of the 3x3 block.
    prior : initial bias of the output (e.g. a contour logit of -log((1-p)/p) for a rare
        positive class); 0 by default.
    gn_groups : GroupNorm groups.

    Forward: float (N, in_channels, h, w) -> float (N, out_channels, h, w).
    """

    def __init__(self, in_channels: int = 128, out_channels: int = 19, *, hidden: int = 128,
                 prior: float = 0.0, gn_groups: int = 32):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(in_channels, hidden, 3, padding=1, bias=False),
                                   group_norm(hidden, gn_groups), nn.ReLU(inplace=True))
        self.out = nn.Conv2d(hidden, out_channels, 1)
        nn.init.kaiming_normal_(self.block[0].weight, mode="fan_out", nonlinearity="relu")
        nn.init.normal_(self.out.weight, std=0.01)
        nn.init.constant_(self.out.bias, prior)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.block(x))
