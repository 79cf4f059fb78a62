"""The compact multi-task network of panoptool (encoder, FPN, necks, heads)."""

from .network import HEADS, NetworkConfig, PanopticContourNet, count_parameters
from .resnet import ARCHS, LoadReport, ResNetEncoder, load_torchvision_weights

__all__ = ["ARCHS", "HEADS", "LoadReport", "NetworkConfig", "PanopticContourNet",
           "ResNetEncoder", "count_parameters", "load_torchvision_weights"]
