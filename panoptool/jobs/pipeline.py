"""The multi-stage jobs under their former module name: the step runner (:mod:`.steps`),
``demo`` (:mod:`.demo`) and ``ablate`` (:mod:`.ablate`) are re-exported here, so that
``panoptool.jobs.pipeline`` keeps importing.
"""

from __future__ import annotations

from panoptool.jobs.ablate import (ALL_LOSS, CONTOUR_COLUMNS, CONTOUR_TABLES, DEFAULT_TABLES,
                                   RUN_ORDER, TABLE_SETTINGS, TABLE_TITLES, TABLES,
                                   AblateConfig, Refinement, Row, TrainRun, ablate_steps,
                                   ablation_rows, ablation_table_path)
from panoptool.jobs.demo import DEMO_TRAIN_ARGS, DemoConfig, demo_layout, demo_steps
from panoptool.jobs.steps import (RUNTIME_OPTIONS, RUNTIME_SETTINGS, Invoke, PathLike, Step,
                                  StepError, StepStatus, plan, run_steps)
from panoptool.postprocess.config import (CITYSCAPES_PIXELS, PostprocessConfig, scale_area,
                                          scaled_config)

__all__ = ["ALL_LOSS", "CITYSCAPES_PIXELS", "CONTOUR_COLUMNS", "CONTOUR_TABLES",
           "DEFAULT_TABLES", "DEMO_TRAIN_ARGS", "RUNTIME_OPTIONS", "RUNTIME_SETTINGS",
           "RUN_ORDER", "TABLES", "TABLE_SETTINGS", "TABLE_TITLES", "AblateConfig",
           "DemoConfig", "Invoke", "PathLike", "PostprocessConfig", "Refinement", "Row", "Step",
           "StepError", "StepStatus", "TrainRun", "ablate_steps", "ablation_rows",
           "ablation_table_path", "demo_layout", "demo_steps", "plan", "run_steps",
           "scale_area", "scaled_config", "scaled_postprocess_args"]


def scaled_postprocess_args(scale: float) -> tuple:
    """``postprocess`` options that scale its pixel sizes to an image ``scale`` times as large
    in area as 1024x2048, where the defaults hold: ``--eps`` and ``--cell`` (lengths) by
    ``sqrt(scale)``, ``--min-samples`` (a count of pixels) by ``scale``. Kept for callers of
    the former module; the jobs themselves use
    :func:`~panoptool.postprocess.config.scaled_config`.

    >>> scaled_postprocess_args(256 * 512 / (1024 * 2048))
    ('--eps', 5.0, '--min-samples', 6, '--cell', 1.0)
    """
    c = scaled_config(PostprocessConfig(), round(scale * CITYSCAPES_PIXELS))
    return ("--eps", c.eps, "--min-samples", c.min_samples, "--cell", c.cell)
