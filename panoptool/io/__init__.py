"""Files and formats: atomic file io, PNG/JSON/npz, the Cityscapes layout, panoptool's own
stage formats, the official result formats and COCO results JSON.

``from panoptool.io import read_png`` etc. still work (they are :mod:`panoptool.io.files`).
"""

from panoptool import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "panoptool.io.files": ("CapturedStderr", "LABEL_PNG_PARAMS", "MAX_PIXELS", "PNG8_DECODER",
                           "PNG_SIGNATURE", "UP_PNG_PARAMS", "atomic_path", "capture_c_stderr",
                           "check_png_size", "decode_png", "load_npz", "make_folder",
                           "npz_shapes", "output_error", "png_size", "read_json", "read_png",
                           "remove_stale_temporaries", "safe_join", "save_npz", "write_json",
                           "write_png", "write_text", "writing"),
})
__all__ = ["CapturedStderr", "LABEL_PNG_PARAMS", "MAX_PIXELS", "PNG8_DECODER", "PNG_SIGNATURE",
           "UP_PNG_PARAMS", "atomic_path", "capture_c_stderr", "check_png_size", "decode_png",
           "load_npz", "make_folder", "npz_shapes", "output_error", "png_size", "read_json",
           "read_png", "remove_stale_temporaries", "safe_join", "save_npz", "write_json",
           "write_png", "write_text", "writing"]
