"""Stage 5: evaluation (``panoptool report``): the metrics (:mod:`.metrics`); the runner over a
results folder (:mod:`.runner`), made of its settings (:mod:`.config`), the plan of per-image
jobs (:mod:`.plan`), per-image statistics (:mod:`.image`), their summary (:mod:`.summary`) and
the written report (:mod:`.report`); COCO mask AP (:mod:`.coco`), the contour-head score
(:mod:`.contour_score`), comparison tables (:mod:`.compare`, :mod:`.tables`) and the
official evaluators as the reference (:mod:`.official`). Result files are read by
:mod:`panoptool.io.results`.
"""
