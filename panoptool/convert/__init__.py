"""Format conversion (``panoptool convert``): Cityscapes ground truth and results to and from
COCO panoptic (:mod:`.panoptic`); the instance conversions live with COCO mask AP in
:mod:`panoptool.evaluation.coco`.
"""
