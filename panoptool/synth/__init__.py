"""Stage 0: synthetic street scenes written in the Cityscapes layout (``panoptool synth``).
"""

from panoptool.synth.scenes import (BASE_COLORS, CITIES, SynthConfig, TEXTURE, config_filename,
                                    make_dataset, make_scene, stem_of)  # noqa: F401
