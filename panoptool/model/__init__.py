"""The compact multi-task network of panoptool (encoder, FPN, necks, heads)."""

from panoptool import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "panoptool.model.network": ("HEADS", "NECKS", "NetworkConfig", "PanopticContourNet",
                                "count_parameters"),
    "panoptool.model.resnet": ("ARCHS", "LoadReport", "ResNetEncoder", "load_torchvision_weights"),
})

__all__ = ["ARCHS", "HEADS", "LoadReport", "NECKS", "NetworkConfig", "PanopticContourNet",
           "ResNetEncoder", "count_parameters", "load_torchvision_weights"]
