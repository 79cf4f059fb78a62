"""The network's settings (:class:`NetworkConfig`) without torch: a command's ``--help`` and
its settings checks import this module, not the network."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from panoptool.errors import ConfigError

#: name -> (block type, blocks per stage)
ARCHS = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
}

#: The three heads, in the order of the outputs.
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
