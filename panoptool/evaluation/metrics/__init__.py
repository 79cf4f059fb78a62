"""Cityscapes metrics equal to the official evaluators, on arrays.

Each metric module follows one pattern: ``update(...) -> Stats`` for one image, ``Stats +
Stats`` to combine images (in any order, in any process), ``compute(Stats) -> dict``.

* :mod:`.gt`: ground truth reduced to segments, and its on-disk cache.
* :mod:`.semantic`: IoU / iIoU (evalPixelLevelSemanticLabeling).
* :mod:`.instance`: AP / AP50 (evalInstanceLevelSemanticLabeling).
* :mod:`.panoptic`: PQ / SQ / RQ (createPanopticImgs + evalPanopticSemanticLabeling).
* :mod:`.boundary`: Boundary IoU / Boundary PQ (Cheng et al. 2021; ``report --boundary``).
* :mod:`.contour`: the contour head's ODS / OIS (BSDS-style; ``report --maps``).
"""

from panoptool.evaluation.metrics import gt, instance, panoptic, semantic

__all__ = ["gt", "instance", "panoptic", "semantic"]
