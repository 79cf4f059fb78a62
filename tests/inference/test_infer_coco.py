"""``panoptool infer`` (and ``export``) on a COCO-panoptic dataset: maps of every image of the
real sample with the label space in config.json, and the refusal of a network trained on
another label space (the checkpoint's, or an exported model's, against the dataset's)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from coco_helpers import tiny_coco_run
from panoptool.errors import ConfigError
from panoptool.inference.maps import InferConfig, infer
from panoptool.inference.onnx import export_model, labels_of_metadata, read_onnx_metadata
from panoptool.io.datasets import open_dataset
from panoptool.io.formats import maps_path
from panoptool.labels import CITYSCAPES, labels_of_config
from panoptool.training.checkpoints import checkpoint_path, model_from_checkpoint
from panoptool.training.data import normalize
from panoptool.training.loop import TrainConfig, train
from panoptool_cli.main import cli


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    """(description, checkpoint) of a 1-iteration run on the sample."""
    desc, _, ckpt = tiny_coco_run(tmp_path_factory.mktemp("coco_infer"))
    return desc, ckpt


@pytest.fixture(scope="module")
def cityscapes(make_synth, tmp_path_factory):
    """(synthetic Cityscapes val root, checkpoint of a 1-iteration run on synthetic data)."""
    from panoptool.targets.core import make_targets
    root = make_synth(n=2, height=64, width=128, seed=7, split="train")
    targets = tmp_path_factory.mktemp("cs_targets")
    make_targets(root, "train", targets, workers=1, show_progress=False)
    run = tmp_path_factory.mktemp("cs_run")
    train(TrainConfig(root=str(root), targets=str(targets), out=str(run), iters=1, batch=2,
                      crop=(64, 128), workers=0, threads=1, device="cpu", neck="shared"),
          show_progress=False)
    return make_synth(n=2, height=64, width=128, seed=8, split="val"), checkpoint_path(run)


def _infer_args(ckpt, root, out) -> list[str]:
    return ["infer", "--checkpoint", str(ckpt), "--root", str(root), "--split", "val",
            "--out", str(out), "--device", "cpu", "--threads", "1", "--workers", "0"]


def test_infer_writes_the_maps_of_every_image_and_the_label_space(coco, tmp_path):
    desc, ckpt = coco
    out = tmp_path / "maps"
    result = CliRunner().invoke(cli, _infer_args(ckpt, desc, out))
    assert result.exit_code == 0, result.output
    dataset = open_dataset(desc)
    labels = dataset.label_space("val")
    model, _ = model_from_checkpoint(ckpt)
    model.eval()
    for s in dataset.samples("val"):
        path = maps_path(out, "val", s.stem)
        assert path.parent == out / "val"  # no city
        with np.load(path) as maps:
            train_ids = maps["train_ids"]
            assert maps["offset_yx"].shape == (2, s.image.height, s.image.width)
        assert train_ids.shape == (s.image.height, s.image.width)
        with torch.no_grad():
            x = torch.from_numpy(normalize(s.read_image()))[None]
            expected = model(x)["semantic_logits"][0].argmax(0).numpy()
        assert (train_ids == expected).mean() > 0.999
        assert train_ids.max() < labels.num_classes
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["labels"] == labels.to_dict()
    assert labels_of_config(config) == labels
    assert config["upstream"]["stage"] == "train"


def test_a_network_of_another_label_space_is_refused(coco, cityscapes, tmp_path):
    desc, coco_ckpt = coco
    cs_root, cs_ckpt = cityscapes
    # a Cityscapes checkpoint on the COCO sample: one line naming both
    result = CliRunner().invoke(cli, _infer_args(cs_ckpt, desc, tmp_path / "a"))
    assert result.exit_code == 1
    line = result.output.strip()
    assert line.startswith("panoptool: error:") and len(line.splitlines()) == 1
    assert "label spaces differ" in line and str(cs_ckpt) in line and str(desc) in line
    assert "'cityscapes' (19 classes" in line and "(133 classes" in line
    # the COCO checkpoint on a Cityscapes root
    with pytest.raises(ConfigError, match="label spaces differ") as info:
        infer(InferConfig(checkpoint=str(coco_ckpt), root=str(cs_root), split="val",
                          out=str(tmp_path / "b"), device="cpu", threads=1),
              show_progress=False)
    assert str(coco_ckpt) in str(info.value) and str(cs_root) in str(info.value)
    for folder in ("a", "b"):
        assert not (tmp_path / folder).exists()


def test_an_exported_model_carries_the_label_space(coco, cityscapes, tmp_path):
    desc, ckpt = coco
    cs_root, cs_ckpt = cityscapes
    labels = open_dataset(desc).label_space("val")
    model = tmp_path / "coco.onnx"
    summary = export_model(ckpt, model, fmt="onnx", height=64, width=96)
    assert summary.n_classes == 133
    meta = read_onnx_metadata(model)
    assert meta["label_table"] == "coco-sample" and meta["n_classes"] == "133"
    assert labels_of_metadata(meta, model) == labels
    # a Cityscapes export says so; a model without the entry is a Cityscapes one
    cs_model = tmp_path / "cs.onnx"
    export_model(cs_ckpt, cs_model, fmt="onnx", height=64, width=128)
    cs_meta = read_onnx_metadata(cs_model)
    assert labels_of_metadata(cs_meta, cs_model) is CITYSCAPES
    assert labels_of_metadata({k: v for k, v in meta.items() if k != "labels"},
                              model) is CITYSCAPES
    # infer --model refuses a dataset of another label space, naming both
    result = CliRunner().invoke(cli, ["infer", "--model", str(model), "--root", str(cs_root),
                                      "--split", "val", "--out", str(tmp_path / "maps"),
                                      "--threads", "1"])
    assert result.exit_code == 1
    line = result.output.strip()
    assert len(line.splitlines()) == 1 and "label spaces differ" in line
    assert str(model) in line and str(cs_root) in line
