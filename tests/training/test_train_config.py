"""TrainConfig: composed of the part configs, flat keywords, validation, presets, the keys of
config.json."""

from __future__ import annotations

import dataclasses
import json

import pytest

from panoptool.errors import ConfigError
from panoptool.model import NetworkConfig
from panoptool.training.config import (FIELDS, PARTS, PRESETS, SETTINGS, OptimConfig,
                                       RunConfig, TrainConfig)
from panoptool.training.losses import LossConfig

PATHS = dict(root="r", targets="t", out="o")

#: a valid value other than the default for every field of the network and loss configs
OTHER_VALUES = {
    "backbone": "resnet34", "neck": "shared", "num_classes": 7, "fpn_channels": 64,
    "neck_channels": 32, "gn_groups": 8, "head_conv": 16, "offset_scale": 2.0,
    "contour_prior": 0.1, "contour_loss": ("wbce",), "lambdas": (1.0, 2.0, 3.0),
    "contour_huber_delta": 0.5, "offset_huber_delta": 2.0, "nms_radius": 3, "nms_tau": 0.2,
    "nms_sigma": 2.0, "semantic_top_k": 0.5,
}

#: the flat settings of every run folder's config.json so far (ablate and report --compare
#: read them): a new TrainConfig must write the same keys in the same order
OLD_SETTINGS = ["root", "targets", "out", "split", "backbone", "neck", "offset_scale", "iters",
                "max_minutes", "batch", "lr", "momentum", "weight_decay", "warmup_iters",
                "poly_power", "crop", "scale", "flip", "contour_loss", "lambdas",
                "semantic_top_k", "device", "amp", "workers", "threads", "channels_last",
                "seed", "init_weights", "save_every", "save_minutes"]


@pytest.mark.parametrize("kwargs", [{"backbone": "vgg"}, {"neck": "x"}, {"batch": 0},
                                    {"iters": 0}, {"lr": 0}, {"lr": float("inf")},
                                    {"momentum": -0.1}, {"crop": (16, 64)},
                                    {"scale": (2.0, 1.0)}, {"contour_loss": ("wbce", "edge")},
                                    {"lambdas": (1, 2)}, {"device": "tpu"}, {"head_conv": -1},
                                    {"nms_radius": 0}, {"semantic_top_k": 0.0},
                                    {"save_every": 0}, {"save_minutes": 0}, {"workers": -1},
                                    {"preset": "gpu"}])
def test_train_config_rejects_bad_settings(kwargs):
    with pytest.raises(ConfigError):
        TrainConfig(**PATHS, **kwargs)


def test_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError, match="contour_terms"):
        TrainConfig(**PATHS, contour_terms=("wbce",))  # the flat name is contour_loss


def test_train_config_is_frozen_and_json_able():
    c = TrainConfig(**PATHS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.optim = OptimConfig()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.optim.lr = 1.0  # type: ignore[misc]
    assert json.loads(json.dumps(c.settings()))["crop"] == [512, 1024]


def test_every_field_of_the_network_and_loss_is_settable():
    flat = {name for name, (part, _) in FIELDS.items() if part in ("network", "loss")}
    assert flat == set(OTHER_VALUES)  # a new field needs a value here
    for name, value in OTHER_VALUES.items():
        c = TrainConfig(**PATHS, **{name: value})
        part, field_name = FIELDS[name]
        assert getattr(getattr(c, part), field_name) == value, name
        default = getattr(PARTS[part](), field_name)
        others = [n for n, (p, _) in FIELDS.items() if p == part and n != name]
        assert all(c.get(n) == TrainConfig.default(n) for n in others), name  # only it moved
        saved = c.stage_settings(1)[part][field_name]
        assert saved == (list(value) if isinstance(value, tuple) else value) != default


def test_flat_keywords_cover_every_part_field_once():
    pairs = sorted(FIELDS.values())
    assert pairs == sorted((p, f.name) for p, cls in PARTS.items()
                           for f in dataclasses.fields(cls))
    assert FIELDS["contour_loss"] == ("loss", "contour_terms")


def test_parts_and_flat_keywords_agree():
    parts = TrainConfig(run=RunConfig(**PATHS, seed=3), network=NetworkConfig(head_conv=8),
                        loss=LossConfig(nms_radius=1))
    flat = TrainConfig(**PATHS, seed=3, head_conv=8, nms_radius=1)
    assert parts == flat
    assert dataclasses.replace(flat, lr=0.1).optim.lr == 0.1  # flat keywords replace fields
    assert dataclasses.replace(flat, lr=0.1).network.head_conv == 8


def test_settings_keep_the_keys_of_config_json():
    c = TrainConfig(**PATHS)
    assert list(SETTINGS) == OLD_SETTINGS
    assert list(c.settings()) == OLD_SETTINGS  # no preset chosen: no preset key
    full = c.stage_settings(2)
    assert list(full) == OLD_SETTINGS + ["world_size", "network", "loss"]
    assert full["network"] == NetworkConfig().to_dict()
    assert full["loss"] == json.loads(json.dumps(LossConfig().to_dict()))
    assert list(TrainConfig(**PATHS, preset="paper").settings())[-1] == "preset"


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_values_reach_the_config_and_explicit_keywords_win(name):
    preset = PRESETS[name]
    c = TrainConfig(**PATHS, preset=name)
    assert c.preset == name and c.settings()["preset"] == name
    for key, value in preset.settings.items():
        assert c.get(key) == value, key
    untouched = [k for k in FIELDS if k not in preset.settings and k not in PATHS]
    assert all(c.get(k) == TrainConfig.default(k) for k in untouched)
    explicit = TrainConfig(**PATHS, preset=name, batch=3, lr=0.02)
    assert explicit.optim.batch == 3 and explicit.optim.lr == 0.02
    assert dataclasses.replace(explicit, seed=5) == TrainConfig(**PATHS, preset=name, batch=3,
                                                                lr=0.02, seed=5)


def test_cpu_preset_is_the_training_figure():
    c = TrainConfig(**PATHS, preset="cpu")
    assert (c.optim.batch, c.augment.crop, c.augment.scale, c.optim.lr, c.loss.semantic_top_k,
            c.run.workers) == (2, (256, 256), (0.75, 1.25), 0.01, 0.25, 1)
    assert PRESETS["paper"].settings == {}  # the paper's settings are the defaults
    assert TrainConfig(**PATHS, preset="paper").optim == OptimConfig()


def test_preset_applies_only_to_parts_not_given_whole():
    optim = OptimConfig(batch=8)
    c = TrainConfig(**PATHS, optim=optim, preset="cpu")
    assert c.optim == optim and c.augment.crop == (256, 256)
