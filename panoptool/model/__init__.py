"""The compact multi-task network of panoptool (encoder, FPN, necks, heads)."""

from panoptool import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "panoptool.model.config": ("ARCHS", "HEADS", "NECKS", "NetworkConfig"),
    "panoptool.model.network": ("PanopticContourNet", "count_parameters"),
    "panoptool.model.resnet": ("LoadReport", "ResNetEncoder", "load_torchvision_weights"),
})

__all__ = ["ARCHS", "HEADS", "LoadReport", "NECKS", "NetworkConfig", "PanopticContourNet",
           "ResNetEncoder", "count_parameters", "load_torchvision_weights"]
