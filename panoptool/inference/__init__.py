"""Stage 3: prediction maps from a checkpoint (``panoptool infer``, :mod:`.maps`), the torch and
onnxruntime backends (:mod:`.backends`, :mod:`.onnx`; ``panoptool export``).
"""

from panoptool.inference.maps import (InferConfig, InferSummary, infer, load_model,
                                      maps_from_outputs, predict)  # noqa: F401
