"""Stage 6: pictures of maps, results and errors (``panoptool visualize``).
"""

from panoptool import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "panoptool.visualize.render": ("MISSING_COLOR", "OUTLINE_COLOR", "Tile", "VOID_COLOR",
                                   "VisualizeConfig", "blend", "color_wheel",
                                   "colorize_instances", "colorize_label_ids",
                                   "colorize_panoptic", "colorize_train_ids", "compose_panel",
                                   "gt_contour", "gt_offsets", "heatmap", "inset",
                                   "instance_boundaries", "offsets_to_rgb", "panel_path",
                                   "read_instance_result", "read_metrics_csv",
                                   "read_panoptic_result", "render_sample", "thing_instance_ids",
                                   "training_curve", "visualize_dataset", "write_training_curve"),
})
__all__ = ["MISSING_COLOR", "OUTLINE_COLOR", "Tile", "VOID_COLOR", "VisualizeConfig", "blend",
           "color_wheel", "colorize_instances", "colorize_label_ids", "colorize_panoptic",
           "colorize_train_ids", "compose_panel", "gt_contour", "gt_offsets", "heatmap", "inset",
           "instance_boundaries", "offsets_to_rgb", "panel_path", "read_instance_result",
           "read_metrics_csv", "read_panoptic_result", "render_sample", "thing_instance_ids",
           "training_curve", "visualize_dataset", "write_training_curve"]
