"""Stage 5: evaluation (``panoptool report``): the metrics (:mod:`.metrics`), the runner over a
results folder (:mod:`.runner`), COCO mask AP (:mod:`.coco`), the contour-head score
(:mod:`.contour_score`), comparison tables (:mod:`.compare`, :mod:`.tables`) and the
official evaluators as the reference (:mod:`.official`).
"""
