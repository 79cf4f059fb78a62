"""Stage 3: prediction maps from a checkpoint (``panoptool infer``, :mod:`.maps`), the torch and
onnxruntime backends (:mod:`.backends`, :mod:`.onnx`; ``panoptool export``).
"""

from panoptool import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "panoptool.inference.maps": ("InferConfig", "InferSummary", "infer", "load_model",
                                 "maps_from_outputs", "predict"),
})
__all__ = ["InferConfig", "InferSummary", "infer", "load_model", "maps_from_outputs", "predict"]
