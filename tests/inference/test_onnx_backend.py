"""``panoptool export`` and the onnxruntime / TorchScript backends: the exported model gives
the maps ``infer`` computes with torch; foreign, corrupt and mismatched files are refused."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner

from panoptool.training.data import normalize
from panoptool.io.cityscapes import list_samples, read_image
from panoptool.errors import ConfigError, InputError
from panoptool.io.formats import maps_path, read_maps
from panoptool.inference.maps import InferConfig, infer, maps_from_outputs
from panoptool.inference.onnx import (OnnxBackend, TorchScriptBackend, export_model,
                                    export_onnx, load_backend, onnx_for_checkpoint,
                                    read_onnx_metadata)
from panoptool.training.loop import checkpoint_path, model_from_checkpoint
from panoptool_cli.main import cli


@pytest.fixture(scope="module")
def trained(make_synth, tmp_path_factory):
    """(val root, checkpoint) of a 3-iteration run on tiny data whose semantic classifier is
    then redrawn with large weights, so that the argmax varies from pixel to pixel (after 3
    iterations it is one class everywhere) and near-ties occur."""
    from panoptool.targets.core import TargetConfig, make_targets
    from panoptool.training.loop import TrainConfig, load_checkpoint, save_checkpoint, train
    root = make_synth(n=2, height=64, width=128, seed=7, split="train")
    val = make_synth(n=2, height=64, width=128, seed=8, split="val")
    targets = tmp_path_factory.mktemp("onnx_targets")
    make_targets(root, "train", targets, TargetConfig(), workers=1, show_progress=False)
    run = tmp_path_factory.mktemp("onnx_run")
    train(TrainConfig(root=str(root), targets=str(targets), out=str(run), iters=3, batch=2,
                      crop=(64, 128), workers=0, threads=1, device="cpu", neck="shared"),
          show_progress=False)
    ckpt = load_checkpoint(checkpoint_path(run))
    model, _ = model_from_checkpoint(checkpoint_path(run))
    with torch.no_grad():  # the neck's mean feature direction, which the new weights ignore
        feat = model.eval().necks[0](model.fpn(model.encoder(
            torch.from_numpy(_images(1, 64, 128, 9)))))
    u = feat.mean(dim=(0, 2, 3))
    u = u / u.norm()
    weight = torch.randn(19, u.numel(), generator=torch.Generator().manual_seed(3))
    weight = weight - torch.outer(weight @ u, u)
    ckpt["model"]["heads.semantic.out.weight"] = weight[:, :, None, None] * 0.5
    ckpt["model"]["heads.semantic.out.bias"].zero_()
    path = run / "redrawn.pt"
    save_checkpoint(path, ckpt)
    return val, path


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """Paths of the dynamic ONNX, fixed 64x128 ONNX and TorchScript exports."""
    _, ckpt = trained
    folder = tmp_path_factory.mktemp("exports")
    paths = {"dynamic": folder / "dyn.onnx", "fixed": folder / "fixed.onnx",
             "torchscript": folder / "model.ts"}
    export_onnx(ckpt, paths["dynamic"])
    export_onnx(ckpt, paths["fixed"], height=64, width=128)
    export_model(ckpt, paths["torchscript"], fmt="torchscript")
    return paths


def _torch_maps(ckpt, images: np.ndarray) -> list[dict[str, np.ndarray]]:
    model, _ = model_from_checkpoint(ckpt)
    with torch.no_grad():
        return maps_from_outputs(model.eval()(torch.from_numpy(images)))


def _assert_same_maps(got, expected):
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert set(g) == {"train_ids", "confidence", "contour_prob", "offset_yx"}
        assert g["train_ids"].dtype == np.uint8 and g["train_ids"].shape == e["train_ids"].shape
        for key in ("confidence", "contour_prob", "offset_yx"):
            assert g[key].dtype == np.float32 and g[key].shape == e[key].shape
        agree = (g["train_ids"] == e["train_ids"]).mean()
        assert agree >= 0.9999
        assert np.abs(g["confidence"] - e["confidence"]).max() <= 1e-4
        assert np.abs(g["contour_prob"] - e["contour_prob"]).max() <= 1e-4
        assert np.allclose(g["offset_yx"], e["offset_yx"], rtol=1e-4, atol=1e-3)


def _images(n: int, h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([normalize(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
                     for _ in range(n)])


def test_onnxruntime_maps_equal_torch_fixed_and_dynamic(trained, exported):
    _, ckpt = trained
    images = _images(2, 64, 128, 0)
    expected = _torch_maps(ckpt, images)
    assert len(np.unique(expected[0]["train_ids"])) > 1  # a network that discriminates
    fixed = OnnxBackend(exported["fixed"], threads=1, n_classes=19)
    assert fixed.n_classes == 19 and fixed.stride == 32 and fixed.input_size == (64, 128)
    _assert_same_maps(fixed(images), expected)
    dynamic = OnnxBackend(exported["dynamic"], threads=1)
    assert dynamic.input_size is None
    _assert_same_maps(dynamic(images), expected)
    # dynamic H and W: another size and batch than the export's example
    other = _images(3, 96, 160, 1)
    _assert_same_maps(dynamic(other), _torch_maps(ckpt, other))
    with pytest.raises(ConfigError, match="exported for 64x128 images, got 96x160"):
        fixed(other)


def test_torchscript_export_loads_and_matches(trained, exported):
    _, ckpt = trained
    images = _images(1, 96, 128, 2)
    backend = load_backend(exported["torchscript"], threads=1, n_classes=19)
    assert isinstance(backend, TorchScriptBackend) and backend.input_size is None
    _assert_same_maps(backend(images), _torch_maps(ckpt, images))
    assert isinstance(load_backend(exported["dynamic"], threads=1), OnnxBackend)


def test_metadata_describes_the_checkpoint(trained, exported):
    _, ckpt = trained
    meta = read_onnx_metadata(exported["fixed"])
    assert meta["panoptool.format"] == "panoptool-maps" and meta["input_size"] == "64x128"
    assert meta["n_classes"] == "19" and meta["stride"] == "32"
    assert meta["label_table"] == "cityscapes"
    assert json.loads(meta["network"])["neck"] == "shared"
    assert json.loads(meta["mean"]) == pytest.approx([0.485, 0.456, 0.406])
    assert json.loads(meta["std"]) == pytest.approx([0.229, 0.224, 0.225])
    import hashlib
    assert meta["checkpoint_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert json.loads(meta["config"])["stage"] == "train"


def test_infer_with_model_equals_infer_with_checkpoint(trained, exported, tmp_path):
    val, ckpt = trained
    common = dict(root=str(val), split="val", device="cpu", threads=1, workers=0)
    infer(InferConfig(checkpoint=str(ckpt), out=str(tmp_path / "torch"), channels_last=False,
                      **common), show_progress=False)
    result = CliRunner().invoke(cli, ["infer", "--model", str(exported["dynamic"]), "--root",
                                      str(val), "--split", "val", "--out",
                                      str(tmp_path / "onnx"), "--threads", "1"])
    assert result.exit_code == 0, result.output
    for s in list_samples(val, "val"):
        a = read_maps(maps_path(tmp_path / "torch", "val", s.stem))
        b = read_maps(maps_path(tmp_path / "onnx", "val", s.stem))
        assert (a["train_ids"] == b["train_ids"]).mean() >= 0.9999
        for key in ("confidence", "contour_prob"):  # stored as float16
            assert np.abs(a[key] - b[key]).max() <= 1e-3
    cfg = json.loads((tmp_path / "onnx" / "config.json").read_text())
    assert cfg["settings"]["model"] == str(exported["dynamic"])
    assert cfg["settings"]["network"]["neck"] == "shared"
    assert cfg["upstream"]["stage"] == "train"
    # the maps of a model are not mixed with those of a checkpoint
    with pytest.raises(ConfigError, match="another checkpoint"):
        infer(InferConfig(checkpoint=str(ckpt), out=str(tmp_path / "onnx"), **common),
              show_progress=False)
    with pytest.raises(ConfigError, match="exactly one"):
        InferConfig(checkpoint=str(ckpt), model=str(exported["dynamic"]), root=str(val))
    # a fixed-size model on images of another size: one clear message
    small = tmp_path / "small.onnx"
    export_onnx(ckpt, small, height=32, width=64)
    with pytest.raises(ConfigError, match="small.onnx: exported for 32x64"):
        infer(InferConfig(model=str(small), out=str(tmp_path / "s"), **common),
              show_progress=False)


def test_cli_export_and_its_errors(trained, tmp_path):
    _, ckpt = trained
    runner = CliRunner()
    out = tmp_path / "m.onnx"
    result = runner.invoke(cli, ["export", "--checkpoint", str(ckpt), "--out", str(out),
                                 "--height", "64", "--width", "128"])
    assert result.exit_code == 0, result.output
    assert "64x128" in result.output and read_onnx_metadata(out)["input_size"] == "64x128"
    for args, message in [(["--height", "64"], "both --height and --width"),
                          (["--height", "64", "--width", "100"], "multiple of 32"),
                          (["--height", "64", "--width", "128", "--dynamic"], "exclude")]:
        result = runner.invoke(cli, ["export", "--checkpoint", str(ckpt), "--out",
                                     str(tmp_path / "x.onnx"), *args])
        assert result.exit_code == 1 and message in result.output, result.output
    assert not (tmp_path / "x.onnx").exists()
    result = runner.invoke(cli, ["export", "--checkpoint", str(tmp_path / "none.pt"),
                                 "--out", str(tmp_path / "y.onnx")])
    assert result.exit_code == 1 and "none.pt" in result.output
    assert "--dynamic" in runner.invoke(cli, ["export", "--help"]).output


def _foreign_onnx(path, n_out: int = 4):
    """A valid ONNX model that panoptool did not write (an Identity graph)."""
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])
    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_bad_model_files_give_one_line_errors(trained, exported, tmp_path):
    val, _ = trained
    foreign = tmp_path / "foreign.onnx"
    _foreign_onnx(foreign)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(exported["fixed"].read_bytes()[:5000])
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model at all")
    # a model of ours whose class count is not the label table's
    proto = onnx.load(str(exported["fixed"]))
    for p in proto.metadata_props:
        if p.key == "n_classes":
            p.value = "7"
    classes = tmp_path / "classes7.onnx"
    onnx.save(proto, str(classes))
    cases = [(foreign, "not a panoptool model"), (corrupt, "cannot read ONNX model"),
             (garbage, "cannot read ONNX model"), (classes, "predicts 7 classes"),
             (tmp_path / "missing.onnx", "not found")]
    for path, message in cases:
        with pytest.raises(InputError, match=message) as info:
            OnnxBackend(path, n_classes=19)
        assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)
        result = CliRunner().invoke(cli, ["infer", "--model", str(path), "--root", str(val),
                                          "--out", str(tmp_path / "maps"), "--threads", "1"])
        assert result.exit_code == 1, result.output
        line = result.output.strip()
        assert line.startswith("panoptool: error:") and path.name in line and message in line
        assert len(line.splitlines()) == 1
    assert not (tmp_path / "maps" / "config.json").exists()
    ts_corrupt = tmp_path / "bad.ts"
    ts_corrupt.write_bytes(exported["torchscript"].read_bytes()[:4000])
    with pytest.raises(InputError, match="bad.ts"):
        TorchScriptBackend(ts_corrupt)


def test_onnx_for_checkpoint_exports_once(trained, tmp_path):
    _, ckpt = trained
    first = onnx_for_checkpoint(ckpt, tmp_path / "cache", height=64, width=128)
    mtime = first.stat().st_mtime_ns
    again = onnx_for_checkpoint(ckpt, tmp_path / "cache", height=64, width=128)
    assert again == first and again.stat().st_mtime_ns == mtime  # not re-exported
    assert read_onnx_metadata(first)["input_size"] == "64x128"
    dynamic = onnx_for_checkpoint(ckpt, tmp_path / "cache")
    assert dynamic != first and read_onnx_metadata(dynamic)["input_size"] == "dynamic"
    first.write_bytes(b"damaged")  # a broken cache entry is replaced
    assert read_onnx_metadata(onnx_for_checkpoint(ckpt, tmp_path / "cache", height=64,
                                                  width=128))["n_classes"] == "19"
    other = tmp_path / "other.pt"
    other.write_bytes(ckpt.read_bytes() + b"")
    assert onnx_for_checkpoint(other, tmp_path / "cache", height=64, width=128) == first
    assert not list((tmp_path / "cache").glob(".tmp-*"))


def test_export_bench_quick(tmp_path):
    from panoptool.bench.core import BenchConfig, merge_report, run_stage_here
    section = run_stage_here("export", BenchConfig(quick=True, workers=1,
                                                   workdir=str(tmp_path)))
    variants = {row["variant"] for row in section.rows}
    assert variants == {"torch NCHW", "torch channels-last", "onnxruntime fixed shape",
                        "onnxruntime dynamic shape"}
    for row in section.rows:
        assert row["size"] == "64x128" and row["ms/image"] > 0 and row["threads"] == 1
        assert row["argmax = torch NCHW (%)"] >= 99.99 and row["max |conf diff|"] < 1e-4
    assert "<!-- stage:export -->" in merge_report(tmp_path / "bench.md", {"export": section})
