"""Training on a COCO-panoptic dataset (the real two-image sample, 133 classes, images of two
sizes): the crop and its padding, the class count and the label space taken from the
dataset, recorded in the checkpoint, and checked against the targets and on --resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from coco_helpers import describe_sample
from panoptool.errors import ConfigError
from panoptool.io.datasets import open_dataset
from panoptool.targets.core import make_targets
from panoptool.training.checkpoints import (checkpoint_path, labels_of_checkpoint,
                                            load_checkpoint, model_from_checkpoint)
from panoptool.training.data import Augment, TrainDataset
from panoptool.training.loop import train
from train_helpers import config_for


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    """(description, targets) of the real sample's split ``val``."""
    folder = tmp_path_factory.mktemp("coco_train")
    desc = describe_sample(folder / "data")
    targets = folder / "targets"
    make_targets(desc, "val", targets, workers=1, show_progress=False)
    return desc, targets


def test_images_of_two_sizes_share_one_crop_padded_with_ignore(coco):
    desc, targets = coco
    data = TrainDataset(desc, "val", targets, Augment(crop=(512, 1024), scale=(1.0, 1.0),
                                                     flip=False))
    # the crop is clipped to the largest image (640x427), not to the first one
    assert data.image_size == (427, 640) and data.crop == (427, 640)
    sizes = {}
    for i, s in enumerate(data.samples):
        item = data[(i, 0)]
        assert item["image"].shape == (3, 427, 640)
        sizes[s.image.height] = item
    small = sizes[360]  # the 640x360 image: rows 360.. are padding
    valid = small["pixel_valid"].numpy()
    assert valid[:360].all() and not valid[360:].any()
    assert (small["semantic"].numpy()[360:] == 255).all()
    assert not small["contour"].numpy()[360:].any()
    assert not small["offset_valid"].numpy()[360:].any()
    assert (small["semantic"].numpy()[:360] != 255).mean() > 0.9
    assert sizes[427]["pixel_valid"].numpy().all()


@pytest.fixture(scope="module")
def coco_run(coco, tmp_path_factory):
    """A 2-iteration CPU run on the sample: (description, targets, run folder)."""
    desc, targets = coco
    out = tmp_path_factory.mktemp("coco_run")
    summary = train(config_for((desc, targets), out, split="val", iters=2, crop=(64, 96),
                               neck="shared"), show_progress=False)
    assert summary.iterations == 2
    return desc, targets, out


def test_the_network_has_the_datasets_classes_and_the_checkpoint_its_labels(coco_run):
    desc, _, out = coco_run
    labels = open_dataset(desc).label_space("val")
    ckpt = load_checkpoint(checkpoint_path(out))
    assert labels_of_checkpoint(ckpt, checkpoint_path(out)) == labels
    assert json.loads(ckpt["network"])["num_classes"] == 133
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["network"]["num_classes"] == 133
    assert config["upstream"]["settings"]["labels"] == labels.to_dict()
    model, _ = model_from_checkpoint(checkpoint_path(out))
    with torch.no_grad():
        logits = model(torch.zeros(1, 3, 64, 64))["semantic_logits"]
    assert logits.shape == (1, 133, 64, 64)
    assert np.isfinite([float(r) for r in (out / "metrics.csv").read_text()
                        .splitlines()[-1].split(",")]).all()


def test_targets_of_another_label_space_are_refused(coco, tmp_path):
    desc, targets = coco
    other = describe_sample(tmp_path / "other", ignore_categories=[193])
    with pytest.raises(ConfigError) as info:
        train(config_for((other, targets), tmp_path / "run", split="val", iters=1),
              show_progress=False)
    message = str(info.value)
    assert "label spaces differ" in message and "\n" not in message
    assert str(other) in message and str(targets / "config.json") in message
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_resume_with_another_label_space_is_refused(coco_run, tmp_path):
    desc, targets, out = coco_run
    other = describe_sample(tmp_path / "other", ignore_categories=[193])
    other_targets = tmp_path / "targets"
    make_targets(other, "val", other_targets, workers=1, show_progress=False)
    before = checkpoint_path(out).read_bytes()
    with pytest.raises(ConfigError) as info:
        train(config_for((other, other_targets), out, split="val", iters=3, crop=(64, 96),
                         neck="shared"), resume=True, show_progress=False)
    message = str(info.value)
    assert "label spaces differ" in message and "\n" not in message
    assert str(checkpoint_path(out)) in message and str(other) in message
    assert "132 classes" in message and "133 classes" in message
    assert checkpoint_path(out).read_bytes() == before


def test_a_class_count_other_than_the_label_spaces_is_refused(coco, tmp_path):
    desc, targets = coco
    with pytest.raises(ConfigError, match="num_classes is 7, the label space 'coco-sample'"):
        train(config_for((desc, targets), tmp_path / "run", split="val", iters=1,
                         num_classes=7), show_progress=False)


def test_the_command_line_takes_a_dataset_description(coco, tmp_path):
    from panoptool_cli.train import config_from_args

    desc, targets = coco
    config = config_from_args(["--root", desc, "--targets", targets, "--out", tmp_path,
                               "--split", "val"])
    assert config.run.root == str(desc) and config.run.split == "val"
    assert config.network.num_classes == 19  # left at its default: train takes the dataset's
