"""Feature pyramid network (Lin et al. 2017) over the four ResNet stages."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FPN(nn.Module):
    """Lateral 1x1 convolutions, a top-down pathway (nearest 2x upsampling + sum) and a 3x3
    output convolution per level.

    Parameters
    ----------
    in_channels : channels of the encoder stages, finest first (strides 4, 8, 16, 32).
    channels : channels of every pyramid level (256).

    Forward: list of 4 tensors (finest first) -> list of 4 tensors of ``channels`` channels at
    the same resolutions.
    """

    def __init__(self, in_channels: tuple[int, ...], channels: int = 256):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.output = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1)
                                    for _ in in_channels)
        self.channels = channels
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.zeros_(m.bias)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        laterals = [conv(f) for conv, f in zip(self.lateral, features)]
        for i in range(len(laterals) - 2, -1, -1):
            laterals[i] = laterals[i] + F.interpolate(laterals[i + 1],
                                                      size=laterals[i].shape[-2:],
                                                      mode="nearest")
        return [conv(x) for conv, x in zip(self.output, laterals)]
