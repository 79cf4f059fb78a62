"""The real COCO-panoptic sample (../shared/data/coco_panoptic_sample: two COCO val2017 images,
CC BY 4.0 annotations) as a dataset of the stages: a description JSON in a temporary folder
that points at it (read-only), or at a changed copy of its JSON."""

from __future__ import annotations

import json
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco_panoptic_sample"
SAMPLE_JSON = SAMPLE / "panoptic_examples.json"


def describe_sample(folder: Path, *, data: dict | None = None, name: str = "coco-sample",
                    ignore_categories=()) -> Path:
    """Write ``folder/panoptool_dataset.json``: split ``val`` = the sample's images and PNGs,
    with the sample's JSON or (``data``) a changed copy of it written beside; returns the
    description's path."""
    from panoptool.io.datasets import DESCRIPTION_NAME, write_description

    folder.mkdir(parents=True, exist_ok=True)
    json_path = SAMPLE_JSON
    if data is not None:
        json_path = folder / "panoptic_val.json"
        json_path.write_text(json.dumps(data))
    return write_description(folder / DESCRIPTION_NAME, {"val": {
        "images": str(SAMPLE / "images"), "panoptic_json": str(json_path),
        "panoptic_dir": str(SAMPLE / "panoptic_examples")}}, name=name,
        ignore_categories=ignore_categories)


def sample_json() -> dict:
    """The sample's panoptic JSON, loaded."""
    return json.loads(SAMPLE_JSON.read_text())


def tiny_coco_run(folder: Path, iters: int = 1) -> tuple[Path, Path, Path]:
    """Targets of the sample and a tiny CPU training run on them (shared neck, 64x96 crops):
    (description, targets, checkpoint)."""
    from panoptool.targets.core import make_targets
    from panoptool.training.checkpoints import checkpoint_path
    from panoptool.training.config import TrainConfig
    from panoptool.training.loop import train

    desc = describe_sample(folder / "data")
    targets = folder / "targets"
    make_targets(desc, "val", targets, workers=1, show_progress=False)
    run = folder / "run"
    train(TrainConfig(root=str(desc), targets=str(targets), out=str(run), split="val",
                      iters=iters, batch=2, crop=(64, 96), workers=0, threads=1,
                      device="cpu", neck="shared", warmup_iters=1),
          show_progress=False)
    return desc, targets, checkpoint_path(run)


def write_both_formats(cityscapes_root: Path, coco_root: Path, config, workers: int = 1
                       ) -> tuple[Path, Path]:
    """The same synthetic scenes (``config``, a SynthConfig) as a Cityscapes root and as
    COCO panoptic in COCO's layout."""
    from panoptool.synth.scenes import make_dataset

    make_dataset(cityscapes_root, config, workers=workers, show_progress=False)
    make_dataset(coco_root, config, workers=workers, show_progress=False,
                 format="coco-panoptic")
    return cityscapes_root, coco_root
