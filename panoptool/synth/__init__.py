"""Stage 0: synthetic street scenes written in the Cityscapes layout (``panoptool synth``).
"""

from panoptool import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "panoptool.synth.scenes": ("BASE_COLORS", "CITIES", "SynthConfig", "TEXTURE",
                               "config_filename", "make_dataset", "make_scene", "stem_of"),
})
__all__ = ["BASE_COLORS", "CITIES", "SynthConfig", "TEXTURE", "config_filename", "make_dataset",
           "make_scene", "stem_of"]
