"""``panoptool infer``: maps of the format postprocess reads, provenance, skip/overwrite."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from panoptool.training.data import normalize
from panoptool.io.cityscapes import list_samples, read_image
from panoptool.errors import ConfigError, InputError
from panoptool.io.formats import maps_path, read_maps
from panoptool.inference.maps import InferConfig, infer, maps_from_outputs
from panoptool.training.loop import TrainConfig, checkpoint_path, model_from_checkpoint, train
from panoptool_cli.main import cli


@pytest.fixture(scope="module")
def trained(make_synth, tmp_path_factory):
    """(train root, val root, run folder) of a 2-iteration run on tiny data."""
    from panoptool.targets.core import TargetConfig, make_targets
    root = make_synth(n=2, height=64, width=128, seed=7, split="train")
    val = make_synth(n=2, height=64, width=128, seed=8, split="val")
    targets = tmp_path_factory.mktemp("inf_targets")
    make_targets(root, "train", targets, TargetConfig(), workers=1, show_progress=False)
    run = tmp_path_factory.mktemp("inf_run")
    train(TrainConfig(root=str(root), targets=str(targets), out=str(run), iters=2, batch=2,
                      crop=(64, 128), workers=0, threads=1, device="cpu", neck="shared"),
          show_progress=False)
    return root, val, run


def test_maps_from_outputs_by_hand():
    logits = torch.zeros(1, 3, 1, 2)
    logits[0, 2, 0, 0] = np.log(2.0)  # probs (1/4, 1/4, 1/2) -> class 2, conf 0.5
    logits[0, 0, 0, 1] = 5.0
    out = {"semantic_logits": logits, "contour_logits": torch.tensor([[[[0.0, 100.0]]]]),
           "offset_yx": torch.tensor([[[[1.5, -2.0]], [[3.0, 0.0]]]])}
    (maps,) = maps_from_outputs(out)
    assert maps["train_ids"].dtype == np.uint8 and maps["train_ids"].tolist() == [[2, 0]]
    assert maps["confidence"][0, 0] == pytest.approx(0.5)
    assert maps["contour_prob"].tolist() == [[0.5, 1.0]]
    assert maps["offset_yx"].shape == (2, 1, 2) and maps["offset_yx"][1, 0, 0] == 3.0


def test_infer_writes_valid_maps_equal_to_the_network(trained, tmp_path):
    _, val, run = trained
    ckpt = checkpoint_path(run)
    out = tmp_path / "maps"
    summary = infer(InferConfig(checkpoint=str(ckpt), root=str(val), split="val", out=str(out),
                                device="cpu", batch=2, threads=1, workers=0),
                    show_progress=False)
    samples = list_samples(val, "val")
    assert summary.images == 2 and summary.skipped == 0
    model, _ = model_from_checkpoint(ckpt)
    model.eval()
    for s in samples:
        maps = read_maps(maps_path(out, "val", s.stem))
        assert maps["train_ids"].shape == (64, 128) and maps["offset_yx"].shape == (2, 64, 128)
        with torch.no_grad():
            expected = maps_from_outputs(model(torch.from_numpy(
                normalize(read_image(s)))[None]))[0]
        agree = (maps["train_ids"] == expected["train_ids"]).mean()
        assert agree > 0.99  # channels_last/float16 storage may flip exact ties only
        assert np.allclose(maps["contour_prob"], expected["contour_prob"], atol=2e-3)
        assert np.allclose(maps["offset_yx"], expected["offset_yx"], rtol=2e-3, atol=2e-2)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["stage"] == "infer" and cfg["upstream"]["stage"] == "train"
    assert cfg["upstream"]["upstream"]["stage"] == "make-targets"
    assert cfg["settings"]["network"]["neck"] == "shared"
    # resume: nothing to redo
    again = infer(InferConfig(checkpoint=str(ckpt), root=str(val), split="val", out=str(out),
                              device="cpu", threads=1, workers=0), show_progress=False)
    assert again.skipped == 2


def test_infer_refuses_maps_of_another_checkpoint(trained, tmp_path):
    _, val, run = trained
    out = tmp_path / "maps"
    cfg = InferConfig(checkpoint=str(checkpoint_path(run)), root=str(val), split="val",
                      out=str(out), device="cpu", threads=1, workers=0)
    infer(cfg, show_progress=False)
    other = tmp_path / "other.pt"
    other.write_bytes(checkpoint_path(run).read_bytes())
    with pytest.raises(ConfigError, match="--overwrite"):
        infer(InferConfig(**{**cfg.__dict__, "checkpoint": str(other)}), show_progress=False)
    infer(InferConfig(**{**cfg.__dict__, "checkpoint": str(other)}), overwrite=True,
          show_progress=False)


def test_cli_infer_and_bad_checkpoint(trained, tmp_path):
    _, val, run = trained
    result = CliRunner().invoke(cli, ["infer", "--checkpoint", str(checkpoint_path(run)),
                                      "--root", str(val), "--split", "val", "--out",
                                      str(tmp_path / "m"), "--device", "cpu", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "m").rglob("*_maps.npz"))) == 2
    bad = tmp_path / "bad.pt"
    bad.write_bytes(checkpoint_path(run).read_bytes()[:1000])
    result = CliRunner().invoke(cli, ["infer", "--checkpoint", str(bad), "--root", str(val),
                                      "--out", str(tmp_path / "n")])
    assert result.exit_code == 1
    assert "panoptool: error:" in result.output and "bad.pt" in result.output
    with pytest.raises(InputError):
        infer(InferConfig(checkpoint=str(tmp_path / "none.pt"), root=str(val)),
              show_progress=False)
