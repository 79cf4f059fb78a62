"""ResNet-18/34/50/101 encoders in plain torch, with GroupNorm instead of BatchNorm.

Module and parameter names follow torchvision's ``resnet*`` (``conv1``, ``bn1``,
``layer1.0.conv1``, ``layer1.0.downsample.0`` ...), so an ImageNet state dict saved by
torchvision loads by name (:func:`load_torchvision_weights`). The normalisation layers keep
the names ``bn*`` / ``downsample.1`` but are :class:`torch.nn.GroupNorm`.

BatchNorm -> GroupNorm when loading ImageNet weights
----------------------------------------------------
A BatchNorm layer holds ``weight``, ``bias`` (the affine transform) and ``running_mean``,
``running_var``, ``num_batches_tracked`` (dataset statistics). GroupNorm normalises with
per-image, per-group statistics, so the running statistics have no counterpart: they are
dropped (reported in :class:`LoadReport.dropped`). The affine ``weight``/``bias`` are copied
into the GroupNorm's affine parameters, which keeps each channel's learned scale and shift.
The network is therefore not numerically the torchvision one after loading (no
BatchNorm->GroupNorm conversion is exact), but it starts from the ImageNet convolution filters,
which is what fine-tuning needs. ``fc.*`` (the ImageNet classifier) is unused and dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from panoptool.model.config import ARCHS



def group_norm(channels: int, groups: int = 32) -> nn.GroupNorm:
    """GroupNorm with ``min(groups, channels)`` groups (must divide ``channels``)."""
    g = min(groups, channels)
    while channels % g:
        g -= 1
    return nn.GroupNorm(g, channels)


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1, groups: int = 32):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = _conv3x3(cin, width, stride)
        self.bn1 = group_norm(width, groups)
        self.conv2 = _conv3x3(width, cout)
        self.bn2 = group_norm(cout, groups)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (nn.Sequential(_conv1x1(cin, cout, stride), group_norm(cout, groups))
                           if stride != 1 or cin != cout else None)

    def last_norm(self) -> nn.GroupNorm:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided, torchvision "v1.5") -> 1x1 with a residual (ResNet-50/101)."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1, groups: int = 32):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = _conv1x1(cin, width)
        self.bn1 = group_norm(width, groups)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = group_norm(width, groups)
        self.conv3 = _conv1x1(width, cout)
        self.bn3 = group_norm(cout, groups)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (nn.Sequential(_conv1x1(cin, cout, stride), group_norm(cout, groups))
                           if stride != 1 or cin != cout else None)

    def last_norm(self) -> nn.GroupNorm:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNetEncoder(nn.Module):
    """A ResNet without its classifier, returning the four stage outputs.

    Parameters
    ----------
    depth : one of ``resnet18``, ``resnet34``, ``resnet50``, ``resnet101``.
    gn_groups : GroupNorm groups (32, fewer where a layer has fewer channels).
    zero_init_residual : start the last norm of every residual branch at 0, so each block
        starts as the identity (trains faster from scratch; ignored after loading weights).

    Forward: float (N, 3, H, W) -> list of 4 tensors at strides 4, 8, 16, 32 with
    :attr:`out_channels` channels ((64, 128, 256, 512) or (256, 512, 1024, 2048)).
    """

    def __init__(self, depth: str = "resnet18", *, gn_groups: int = 32,
                 zero_init_residual: bool = True):
        super().__init__()
        if depth not in ARCHS:
            from panoptool.errors import ConfigError
            raise ConfigError(f"unknown backbone {depth!r}; choose from {', '.join(ARCHS)}")
        kind, blocks = ARCHS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.depth = depth
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = group_norm(64, gn_groups)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin, channels = 64, []
        for i, (n, width) in enumerate(zip(blocks, (64, 128, 256, 512))):
            layers = []
            for j in range(n):
                layers.append(block(cin, width, stride=2 if (j == 0 and i > 0) else 1,
                                    groups=gn_groups))
                cin = width * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
            channels.append(cin)
        self.out_channels = tuple(channels)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_norm().weight)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return [c2, c3, c4, c5]


_BN_STATS = ("running_mean", "running_var", "num_batches_tracked")


@dataclass
class LoadReport:
    """What :func:`load_torchvision_weights` did.

    loaded : encoder parameters set from the file.
    dropped : keys of the file not used on purpose (BatchNorm running statistics, ``fc.*``).
    unexpected : other keys of the file that match no encoder parameter (a sign of a wrong file).
    missing : encoder parameters the file did not provide (left at their initial values).
    """

    loaded: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def summary(self) -> str:
        def few(keys: list[str]) -> str:
            return ", ".join(keys[:5]) + (" ..." if len(keys) > 5 else "")
        text = (f"loaded {len(self.loaded)} tensors, dropped {len(self.dropped)} "
                f"(BatchNorm statistics, fc)")
        if self.missing:
            text += f"; missing {len(self.missing)}: {few(self.missing)}"
        if self.unexpected:
            text += f"; unexpected {len(self.unexpected)}: {few(self.unexpected)}"
        return text


def load_torchvision_weights(encoder: ResNetEncoder, state: dict[str, torch.Tensor], *,
                             source: str = "state dict") -> LoadReport:
    """Copy a torchvision ResNet state dict into ``encoder`` (in place).

    Convolution weights are copied as they are; BatchNorm ``weight``/``bias`` become the
    GroupNorm affine parameters; running statistics and ``fc.*`` are dropped (see the module
    docstring). Keys may carry a ``module.`` or ``backbone.`` prefix (DDP / detection
    checkpoints), which is stripped.

    Raises
    ------
    InputError
        If a tensor's shape differs from the encoder's (another depth), or if nothing at all
        matches (not a ResNet state dict).
    """
    from panoptool.errors import InputError

    own = encoder.state_dict()
    report = LoadReport()
    new_state = {}
    for key, value in state.items():
        name = key
        for prefix in ("module.", "backbone.", "encoder."):
            if name.startswith(prefix):
                name = name[len(prefix):]
        if name.startswith("fc.") or name.rsplit(".", 1)[-1] in _BN_STATS:
            report.dropped.append(key)
            continue
        if name not in own:
            report.unexpected.append(key)
            continue
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(own[name].shape):
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise InputError(source, f"tensor {key} has shape {got}, the {encoder.depth} "
                                     f"encoder expects {tuple(own[name].shape)} (weights of "
                                     f"another ResNet depth?)")
        new_state[name] = value
        report.loaded.append(key)
    if not report.loaded:
        raise InputError(source, f"no tensor matches a {encoder.depth} parameter: not a "
                                 f"torchvision ResNet state dict")
    report.missing = [k for k in own if k not in new_state]
    encoder.load_state_dict(new_state, strict=False)
    return report
