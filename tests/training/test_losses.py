"""Each loss on a case whose value is computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from panoptool.errors import ConfigError
from panoptool.training.losses import (LossConfig, contour_huber_loss, contour_normals, nms_loss,
                              offset_loss, semantic_loss, total_loss, weighted_bce_loss)


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_semantic_loss_by_hand_ignores_255_and_weighs_images_equally():
    # image 0: 2 pixels, 2 classes; pixel (0,0) class 0 with logits (ln 3, 0) -> p = 3/4,
    # pixel (0,1) ignored. image 1: one pixel class 1 with logits (0, 0) -> p = 1/2.
    logits = torch.zeros(2, 2, 1, 2)
    logits[0, 0, 0, 0] = math.log(3.0)
    target = torch.tensor([[[0, 255]], [[1, 255]]])
    expected = (-math.log(0.75) + -math.log(0.5)) / 2
    assert semantic_loss(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_semantic_loss_all_ignored_is_zero_not_nan():
    assert semantic_loss(torch.randn(1, 3, 2, 2), torch.full((1, 2, 2), 255)).item() == 0.0


def test_weighted_bce_by_hand():
    # 4 pixels, 1 edge: beta = 3/4. Edge pixel p = 0.8, non-edge pixels p = 0.1, 0.2, 0.5.
    probs = torch.tensor([[[0.8, 0.1], [0.2, 0.5]]])
    target = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    beta = 0.75
    expected = (beta * -math.log(0.8) + (1 - beta) * (-math.log(0.9) - math.log(0.8)
                                                      - math.log(0.5))) / 4
    got = weighted_bce_loss(torch.logit(probs)[:, None], target)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_weighted_bce_ignores_invalid_pixels_in_beta_and_mean():
    probs = torch.tensor([[[0.8, 0.1], [0.2, 0.5]]])
    target = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    valid = torch.tensor([[[True, True], [False, False]]])
    expected = (0.5 * -math.log(0.8) + 0.5 * -math.log(0.9)) / 2  # beta = 1/2 over 2 pixels
    got = weighted_bce_loss(torch.logit(probs), target, valid)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_contour_huber_by_hand():
    # errors 0.2 (quadratic: 0.5 * 0.04) and 0.5 (linear: 0.3 * (0.5 - 0.15))
    probs = torch.tensor([[[0.8, 0.5]]])
    target = torch.tensor([[[1.0, 0.0]]])
    expected = (0.5 * 0.2 ** 2 + 0.3 * (0.5 - 0.15)) / 2
    got = contour_huber_loss(torch.logit(probs), target, delta=0.3)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_offset_loss_by_hand_only_valid_pixels():
    pred = torch.zeros(1, 2, 1, 3)
    target = torch.tensor([[[[0.5, 3.0, 100.0]], [[-2.0, 0.0, 100.0]]]])
    valid = torch.tensor([[[True, True, False]]])
    # elements: 0.5 -> 0.125, 3 -> 2.5, -2 -> 1.5, 0 -> 0; mean over 4
    expected = (0.125 + 2.5 + 1.5 + 0.0) / 4
    assert offset_loss(pred, target, valid).item() == pytest.approx(expected, rel=1e-6)


def _horizontal_line(h=9, w=8, row=4):
    target = torch.zeros(1, h, w)
    target[0, row] = 1.0
    return target


def test_contour_normals_of_a_horizontal_and_a_diagonal_line():
    normal, _ = contour_normals(_horizontal_line())
    assert normal[0, :, 4, 3].abs().tolist() == pytest.approx([1.0, 0.0], abs=1e-5)
    diag = torch.eye(16)[None]
    normal, _ = contour_normals(diag)
    ny, nx = normal[0, :, 8, 8].tolist()
    assert abs(ny) == pytest.approx(math.sqrt(0.5), abs=1e-3)
    assert ny * nx < 0  # the normal of y = x points along (1, -1)


def test_nms_loss_by_hand_on_a_horizontal_line():
    # probabilities per row: rows 2..6 = 0.1, 0.5, 0.8, 0.5, 0.1 (centre row 4), elsewhere 0.
    # The 5 samples along the vertical normal of each line pixel are exactly these rows.
    h, w, tau = 9, 8, 0.1
    target = _horizontal_line(h, w)
    rows = torch.zeros(h)
    rows[2:7] = torch.tensor([0.1, 0.5, 0.8, 0.5, 0.1])
    probs = rows[:, None].expand(h, w)[None].clamp(1e-6, 1 - 1e-6)
    share = math.exp(0.8 / tau) / (math.exp(0.8 / tau) + 2 * math.exp(0.5 / tau)
                                   + 2 * math.exp(0.1 / tau))
    expected = -math.log(share) * w / (h * w)  # w line pixels, averaged over the image
    got = nms_loss(torch.logit(probs), target, radius=2, tau=tau)
    assert got.item() == pytest.approx(expected, rel=1e-4)


def test_nms_loss_uses_the_centre_line_of_a_thick_contour():
    # a 3-px band (rows 3..5): only row 4 is the centre line; a prediction peaked there gives
    # a smaller loss than one peaked on the band's edge
    target = torch.zeros(1, 9, 8)
    target[0, 3:6] = 1.0
    peak_centre = torch.full((1, 9, 8), 0.01)
    peak_centre[0, 4] = 0.99
    peak_edge = torch.full((1, 9, 8), 0.01)
    peak_edge[0, 3] = 0.99
    lc = nms_loss(torch.logit(peak_centre), target)
    le = nms_loss(torch.logit(peak_edge), target)
    assert lc.item() < 1e-3 < le.item()


def test_nms_loss_no_contour_is_zero_and_has_gradient():
    logits = torch.randn(2, 1, 6, 6, requires_grad=True)
    target = torch.zeros(2, 6, 6)
    target[1, 3] = 1
    loss = nms_loss(logits, target)
    loss.backward()
    assert logits.grad[0].abs().sum() == 0 and logits.grad[1].abs().sum() > 0


def test_total_loss_weights_and_switches():
    torch.manual_seed(0)
    n, h, w = 2, 16, 16
    out = {"semantic_logits": torch.randn(n, 19, h, w), "contour_logits": torch.randn(n, 1, h, w),
           "offset_yx": torch.randn(n, 2, h, w)}
    contour = torch.zeros(n, h, w)
    contour[:, 5] = 1
    batch = {"semantic": torch.randint(0, 19, (n, h, w)), "contour": contour,
             "offset_yx": torch.randn(n, 2, h, w), "offset_valid": torch.rand(n, h, w) < 0.5}
    total, terms = total_loss(out, batch, LossConfig(lambdas=(1, 50, 0.1)))
    expected = (terms["loss_semantic"] + 50 * (terms["loss_wbce"] + terms["loss_huber"]
                                               + terms["loss_nms"]) + 0.1 * terms["loss_offset"])
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    total2, terms2 = total_loss(out, batch, LossConfig(contour_terms=("wbce",),
                                                       lambdas=(2, 1, 0)))
    assert set(terms2) == {"loss", "loss_semantic", "loss_contour", "loss_offset", "loss_wbce"}
    assert total2.item() == pytest.approx(2 * terms["loss_semantic"].item()
                                          + terms["loss_wbce"].item(), rel=1e-6)


@pytest.mark.parametrize("kwargs", [{"contour_terms": ("wbce", "dice")},
                                    {"contour_terms": ("wbce", "wbce")},
                                    {"lambdas": (1, 2)}, {"lambdas": (1, -1, 0)},
                                    {"nms_tau": 0}, {"nms_radius": 0}])
def test_loss_config_rejects_bad_values(kwargs):
    with pytest.raises(ConfigError):
        LossConfig(**kwargs)


def test_semantic_top_k_averages_the_hardest_pixels_by_hand():
    # one image, 4 valid pixels + 1 ignored, 2 classes; p(true) = 0.9, 0.5, 0.2, 0.75
    probs = torch.tensor([0.9, 0.5, 0.2, 0.75, 0.5])
    logits = torch.zeros(1, 2, 1, 5)
    logits[0, 0, 0] = torch.log(probs / (1 - probs))  # class 0 logit vs 0 for class 1
    target = torch.tensor([[[0, 0, 0, 0, 255]]])
    ce = -torch.log(probs[:4])
    assert semantic_loss(logits, target, top_k=1.0).item() == pytest.approx(ce.mean().item(),
                                                                           rel=1e-5)
    # top 50% of 4 valid pixels = the 2 hardest: p = 0.2 and 0.5
    expected = (-math.log(0.2) - math.log(0.5)) / 2
    assert semantic_loss(logits, target, top_k=0.5).item() == pytest.approx(expected, rel=1e-5)
    # ceil(0.3 * 4) = 2 pixels as well; 0.2 -> 1 pixel
    assert semantic_loss(logits, target, top_k=0.3).item() == pytest.approx(expected, rel=1e-5)
    assert semantic_loss(logits, target, top_k=0.2).item() == pytest.approx(-math.log(0.2),
                                                                           rel=1e-5)
    with pytest.raises(ConfigError):
        LossConfig(semantic_top_k=0.0)
