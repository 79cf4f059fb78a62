"""The compact multi-task network of panoptool (encoder, FPN, necks, heads)."""

from panoptool.model.network import (HEADS, NECKS, NetworkConfig, PanopticContourNet,
                                     count_parameters)
from panoptool.model.resnet import ARCHS, LoadReport, ResNetEncoder, load_torchvision_weights

__all__ = ["ARCHS", "HEADS", "LoadReport", "NECKS", "NetworkConfig", "PanopticContourNet",
           "ResNetEncoder", "count_parameters", "load_torchvision_weights"]
