"""``postprocess``: instances and panoptic segments from prediction maps.

Library (pure functions on arrays): :func:`derive_panoptic` (the whole method),
:func:`derive_instances`, and the steps in :mod:`.instances` and :mod:`.refine`.
Runner (files): :func:`postprocess_maps`, :func:`postprocess_oracle` in :mod:`.runner`.
"""

from panoptool import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "panoptool.postprocess.config": ("PostprocessConfig",),
    "panoptool.postprocess.panoptic": ("PanopticResult", "Segment", "derive_instances",
                                       "derive_panoptic"),
    "panoptool.postprocess.runner": ("PostprocessSummary", "postprocess_maps",
                                     "postprocess_oracle"),
})

__all__ = ["PostprocessConfig", "PanopticResult", "Segment", "derive_instances",
           "derive_panoptic"]

__all__ += ["PostprocessSummary", "postprocess_maps", "postprocess_oracle"]
