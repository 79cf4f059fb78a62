"""The network: shapes, necks, GroupNorm, torchvision-format weight loading."""

from __future__ import annotations

import pytest
import torch

from panoptool.errors import ConfigError, InputError
from panoptool.model import (PanopticContourNet, ResNetEncoder, count_parameters,
                             load_torchvision_weights)


def torchvision_resnet_state(depth: str) -> dict[str, torch.Tensor]:
    """A state dict with torchvision's key names and shapes for resnet18/50, written from
    torchvision's naming rules (conv1, bn1, layerX.Y.convZ/bnZ, downsample.0/1, fc), with
    BatchNorm statistics, random values."""
    g = torch.Generator().manual_seed(0)
    state = {}

    def bn(name, c):
        state[f"{name}.weight"] = torch.rand(c, generator=g)
        state[f"{name}.bias"] = torch.rand(c, generator=g)
        state[f"{name}.running_mean"] = torch.rand(c, generator=g)
        state[f"{name}.running_var"] = torch.rand(c, generator=g)
        state[f"{name}.num_batches_tracked"] = torch.tensor(7)

    def conv(name, cout, cin, k):
        state[f"{name}.weight"] = torch.randn(cout, cin, k, k, generator=g)

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    bottleneck = depth == "resnet50"
    blocks = (3, 4, 6, 3) if bottleneck else (2, 2, 2, 2)
    cin = 64
    for i, (n, width) in enumerate(zip(blocks, (64, 128, 256, 512)), start=1):
        cout = width * (4 if bottleneck else 1)
        for j in range(n):
            p = f"layer{i}.{j}"
            if bottleneck:
                conv(f"{p}.conv1", width, cin, 1), bn(f"{p}.bn1", width)
                conv(f"{p}.conv2", width, width, 3), bn(f"{p}.bn2", width)
                conv(f"{p}.conv3", cout, width, 1), bn(f"{p}.bn3", cout)
            else:
                conv(f"{p}.conv1", width, cin, 3), bn(f"{p}.bn1", width)
                conv(f"{p}.conv2", width, width, 3), bn(f"{p}.bn2", width)
            if j == 0 and (i > 1 or cin != cout):
                conv(f"{p}.downsample.0", cout, cin, 1), bn(f"{p}.downsample.1", cout)
            cin = cout
    state["fc.weight"] = torch.randn(1000, cin, generator=g)
    state["fc.bias"] = torch.randn(1000, generator=g)
    return state


@pytest.mark.parametrize("depth, channels", [("resnet18", (64, 128, 256, 512)),
                                             ("resnet50", (256, 512, 1024, 2048))])
def test_encoder_scales_and_channels(depth, channels):
    enc = ResNetEncoder(depth)
    feats = enc(torch.randn(1, 3, 64, 96))
    assert [tuple(f.shape[1:]) for f in feats] == [(c, 64 // s, 96 // s)
                                                    for c, s in zip(channels, (4, 8, 16, 32))]
    assert enc.out_channels == channels
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in enc.modules())
    assert any(isinstance(m, torch.nn.GroupNorm) for m in enc.modules())


def test_encoder_parameter_counts_match_torchvision_without_fc():
    # torchvision: resnet18 11,689,512 and resnet50 25,557,032 parameters incl. fc
    # (512*1000+1000 and 2048*1000+1000); GroupNorm has as many affine parameters as BN.
    assert count_parameters(ResNetEncoder("resnet18")) == 11_689_512 - 513_000
    assert count_parameters(ResNetEncoder("resnet50")) == 25_557_032 - 2_049_000


@pytest.mark.parametrize("neck", ["shared", "separate"])
def test_network_outputs_at_input_size(neck):
    torch.manual_seed(0)
    net = PanopticContourNet(backbone="resnet18", neck=neck, num_classes=19)
    x = torch.randn(2, 3, 70, 100)  # not a multiple of 32
    out = net(x)
    assert set(out) == {"semantic_logits", "contour_logits", "offset_yx"}
    assert out["semantic_logits"].shape == (2, 19, 70, 100)
    assert out["contour_logits"].shape == (2, 1, 70, 100)
    assert out["offset_yx"].shape == (2, 2, 70, 100)
    sum(o.float().mean() for o in out.values()).backward()
    no_grad = [n for n, p in net.named_parameters() if p.grad is None]
    assert no_grad == []
    assert len(net.necks) == (1 if neck == "shared" else 3)


def test_separate_necks_have_more_parameters_and_offset_scale_applies():
    shared = PanopticContourNet(neck="shared")
    separate = PanopticContourNet(neck="separate")
    per_neck = count_parameters(shared.necks[0])
    assert count_parameters(separate) - count_parameters(shared) == 2 * per_neck
    torch.manual_seed(1)
    a = PanopticContourNet(offset_scale=1.0)
    torch.manual_seed(1)
    b = PanopticContourNet(offset_scale=8.0)
    x = torch.randn(1, 3, 64, 64)
    assert torch.allclose(b(x)["offset_yx"], 8 * a(x)["offset_yx"], rtol=1e-4, atol=1e-6)


def test_contour_prior_sets_initial_probability():
    net = PanopticContourNet(contour_prior=0.05)
    p = torch.sigmoid(net(torch.randn(1, 3, 64, 64))["contour_logits"])
    assert abs(p.mean().item() - 0.05) < 0.02


@pytest.mark.parametrize("kwargs", [{"backbone": "resnet19"}, {"neck": "both"},
                                    {"offset_scale": 0}, {"contour_prior": 1.0}])
def test_network_rejects_bad_arguments(kwargs):
    with pytest.raises(ConfigError):
        PanopticContourNet(**kwargs)


@pytest.mark.parametrize("depth", ["resnet18", "resnet50"])
def test_load_torchvision_state_dict(depth):
    state = torchvision_resnet_state(depth)
    enc = ResNetEncoder(depth)
    report = load_torchvision_weights(enc, state)
    own = enc.state_dict()
    assert report.missing == [] and report.unexpected == []
    assert set(report.loaded) == set(own)
    assert set(report.dropped) == {k for k in state if k.startswith("fc.")
                                   or k.rsplit(".", 1)[1] in ("running_mean", "running_var",
                                                              "num_batches_tracked")}
    assert torch.equal(own["layer2.0.downsample.0.weight"], state["layer2.0.downsample.0.weight"])
    # BatchNorm affine -> GroupNorm affine
    assert torch.equal(own["layer1.0.bn1.weight"], state["layer1.0.bn1.weight"])
    assert torch.equal(own["bn1.bias"], state["bn1.bias"])
    assert "loaded" in report.summary()


def test_load_reports_missing_and_unexpected_and_strips_prefix():
    state = {f"module.{k}": v for k, v in torchvision_resnet_state("resnet18").items()}
    del state["module.layer4.1.conv2.weight"]
    state["module.extra.weight"] = torch.zeros(1)
    report = load_torchvision_weights(ResNetEncoder("resnet18"), state)
    assert report.missing == ["layer4.1.conv2.weight"]
    assert report.unexpected == ["module.extra.weight"]
    assert "missing 1" in report.summary() and "unexpected 1" in report.summary()


def test_load_weights_of_another_depth_is_an_input_error():
    with pytest.raises(InputError, match="another ResNet depth"):
        load_torchvision_weights(ResNetEncoder("resnet18"), torchvision_resnet_state("resnet50"),
                                 source="r50.pth")
    with pytest.raises(InputError, match="not a torchvision ResNet"):
        load_torchvision_weights(ResNetEncoder("resnet18"), {"foo": torch.zeros(2)})


def test_model_bench_quick(tmp_path):
    from panoptool.bench.core import BenchConfig, merge_report, run_stage_here
    section = run_stage_here("model", BenchConfig(quick=True, workers=1, workdir=str(tmp_path)))
    assert section.title == "model"
    steps = {row["step"] for row in section.rows}
    assert steps == {"inference (forward)", "training step (fwd+bwd+SGD)"}
    for row in section.rows:
        assert row["ms/image"] > 0 and row["images/s"] > 0 and row["size"] == "64x128"
        assert row["params (M)"] == round(count_parameters(PanopticContourNet()) / 1e6, 2)
    text = merge_report(tmp_path / "bench.md", {"model": section})
    assert "<!-- stage:model -->" in text and "ms/image" in text
