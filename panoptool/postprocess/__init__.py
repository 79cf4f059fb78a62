"""``postprocess``: instances and panoptic segments from prediction maps.

Library (pure functions on arrays): :func:`derive_panoptic` (the whole method),
:func:`derive_instances`, and the steps in :mod:`.instances` and :mod:`.refine`.
Runner (files): :func:`postprocess_maps`, :func:`postprocess_oracle` in :mod:`.runner`.
"""

from panoptool.postprocess.config import PostprocessConfig
from panoptool.postprocess.panoptic import PanopticResult, Segment, derive_instances, derive_panoptic

__all__ = ["PostprocessConfig", "PanopticResult", "Segment", "derive_instances",
           "derive_panoptic"]

from panoptool.postprocess.runner import PostprocessSummary, postprocess_maps, postprocess_oracle  # noqa: E402

__all__ += ["PostprocessSummary", "postprocess_maps", "postprocess_oracle"]
