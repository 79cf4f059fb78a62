"""Stage 2: training the network (``panoptool train``).

config -> pure steps -> runner, as the other stages:

- :mod:`.config`: ``TrainConfig``, composed of the network, loss, augmentation, optimiser
  and run configs, and the named presets (``--preset``);
- :mod:`.losses`, :mod:`.data` (augmentation, the resumable sample stream),
  :mod:`.schedule` (warm-up, poly decay, fit to a time budget);
- :mod:`.distributed` (torchrun processes), :mod:`.checkpoints`;
- :mod:`.loop`: ``train``, the loop made of small named steps around a ``TrainState``.
"""

from panoptool import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "panoptool.training.checkpoints": ("CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "LAST",
                                       "checkpoint_path", "load_checkpoint",
                                       "model_from_checkpoint", "network_of", "safe_torch_load",
                                       "save_checkpoint"),
    "panoptool.training.config": ("FIELDS", "PRESETS", "RESUME_FREE", "SETTINGS", "OptimConfig",
                                  "Preset", "RunConfig", "TrainConfig"),
    "panoptool.training.distributed": ("Dist", "resolve_device", "setup_distributed"),
    "panoptool.training.loop": ("TrainState", "TrainSummary", "train"),
    "panoptool.training.schedule": ("Schedule", "ScheduleFitter", "learning_rate"),
})

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "FIELDS", "LAST", "PRESETS", "RESUME_FREE",
           "SETTINGS", "Dist", "OptimConfig", "Preset", "RunConfig", "Schedule",
           "ScheduleFitter", "TrainConfig", "TrainState", "TrainSummary", "checkpoint_path",
           "learning_rate", "load_checkpoint", "model_from_checkpoint", "network_of",
           "resolve_device", "safe_torch_load", "save_checkpoint", "setup_distributed", "train"]
