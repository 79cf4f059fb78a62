"""Images and video in, results out (``panoptool predict``): network and derivation streamed
in one process, no maps on disk.
"""

from panoptool import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "panoptool.predict.config": ("BACKENDS", "DEFAULT_FORMATS", "FORMATS", "PredictConfig"),
    "panoptool.predict.stream": ("ANNOTATIONS_DIR",
                                 "IMAGE_EXTENSIONS", "JPEG_QUALITY", "MAPS_DIR", "OVERLAY_ALPHA",
                                 "OVERLAY_DIR", "PredictSummary", "Source",
                                 "VIDEO_FOURCC", "VIDEO_MARKER_SUFFIX", "annotation_path",
                                 "assemble_panoptic_json", "check_output", "clear_output",
                                 "coco_annotation", "is_done", "iter_video", "list_sources",
                                 "make_backend", "maps_file", "onnx_cache_dir", "overlay_path",
                                 "pad_to_stride", "panoptic_png", "predict", "quantize_maps",
                                 "read_input_image", "render_overlay", "resolve_backend",
                                 "video_marker"),
})
__all__ = ["ANNOTATIONS_DIR", "BACKENDS", "DEFAULT_FORMATS", "FORMATS", "IMAGE_EXTENSIONS",
           "JPEG_QUALITY", "MAPS_DIR", "OVERLAY_ALPHA", "OVERLAY_DIR", "PredictConfig",
           "PredictSummary", "Source", "VIDEO_FOURCC", "VIDEO_MARKER_SUFFIX", "annotation_path",
           "assemble_panoptic_json", "check_output", "clear_output", "coco_annotation", "is_done",
           "iter_video", "list_sources", "make_backend", "maps_file", "onnx_cache_dir",
           "overlay_path", "pad_to_stride", "panoptic_png", "predict", "quantize_maps",
           "read_input_image", "render_overlay", "resolve_backend", "video_marker"]
