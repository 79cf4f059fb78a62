"""Stage 2: training the network (``panoptool train``): losses (:mod:`.losses`), data
(:mod:`.data`), the loop and checkpoints (:mod:`.loop`).
"""

from panoptool.training.loop import (CHECKPOINT_FORMAT, CHECKPOINT_VERSION, Dist, LAST,
                                     RESUME_FREE, Schedule, ScheduleFitter, TrainConfig,
                                     TrainSummary, checkpoint_path, learning_rate,
                                     load_checkpoint, model_from_checkpoint, network_of,
                                     resolve_device, safe_torch_load, save_checkpoint,
                                     setup_distributed, train)  # noqa: F401
