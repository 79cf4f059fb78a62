"""Stage 1: training targets from ground truth (``panoptool make-targets``): semantic train
ids, the dilated instance contours and the centre offsets.
"""

from panoptool import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "panoptool.targets.core": ("IS_THING_INSTANCE", "TargetConfig", "TargetSummary",
                               "boundary_of_instances", "compute_targets", "contour_target",
                               "inner_boundary", "instance_centroids", "instance_index_map",
                               "is_done", "make_targets", "offset_target", "semantic_target",
                               "thing_instance_ids", "thing_instance_mask"),
})
__all__ = ["IS_THING_INSTANCE", "TargetConfig", "TargetSummary", "boundary_of_instances",
           "compute_targets", "contour_target", "inner_boundary", "instance_centroids",
           "instance_index_map", "is_done", "make_targets", "offset_target", "semantic_target",
           "thing_instance_ids", "thing_instance_mask"]
