"""Training losses of the multi-task network (pure functions on tensors).

Every loss is first averaged over the valid pixels of each image, then over the images of the
batch, so that every image weighs the same whatever its number of valid pixels. This also
makes a batch split over several processes (DDP averages the gradients of equal per-process
batches) give exactly the loss of the whole batch in one process.

Terms (DESIGN.md "Losses"):

- semantic: cross entropy over the trainIds, 255 ignored;
- contour: weighted binary cross entropy (positives weighted by beta, the fraction of non-edge
  pixels of the image, negatives by 1 - beta), Huber (delta 0.3) on the sigmoid probability,
  and the NMS loss of Acuna et al. 2019 ("Devil is in the edges"), each switchable;
- offset: Huber (delta 1) on the (dy, dx) pixel offsets of thing pixels with a target.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from panoptool.labels import IGNORE
from panoptool.training.config import CONTOUR_TERMS, LossConfig  # noqa: F401  (re-exported)

def _per_image_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` (N, ...) over the True pixels of ``mask`` (same shape) per image,
    then over images (an image without valid pixels contributes 0)."""
    mask = mask.to(values.dtype)
    dims = tuple(range(1, values.ndim))
    per_image = (values * mask).sum(dims) / mask.sum(dims).clamp(min=1.0)
    return per_image.mean()


def semantic_loss(logits: torch.Tensor, target: torch.Tensor,
                  top_k: float = 1.0) -> torch.Tensor:
    """Cross entropy with ``255`` ignored, optionally over the hardest pixels only.

    Parameters
    ----------
    logits : float (N, C, H, W).
    target : int64 (N, H, W) trainIds, 255 = ignore.
    top_k : fraction of the valid pixels of each image, those with the largest cross
        entropy, that the mean runs over (hard-pixel mining as in Panoptic-DeepLab; it helps
        small, rare classes in short trainings); 1 = plain cross entropy (the default).

    Returns
    -------
    float scalar: per image the mean over its (hardest) non-ignored pixels, then the mean
    over images.
    """
    ce = F.cross_entropy(logits.float(), target, ignore_index=IGNORE, reduction="none")
    valid = target != IGNORE
    if top_k >= 1.0:
        return _per_image_mean(ce, valid)
    flat = torch.where(valid, ce, torch.full_like(ce, -1.0)).flatten(1)
    k = torch.ceil(valid.flatten(1).sum(1) * top_k).long()  # (N,)
    kmax = int(k.max().item())
    if kmax == 0:
        return ce.sum() * 0.0
    hardest = flat.topk(kmax, dim=1).values  # (N, kmax), descending
    keep = torch.arange(kmax, device=ce.device)[None] < k[:, None]
    return _per_image_mean(hardest, keep)


def weighted_bce_loss(logits: torch.Tensor, target: torch.Tensor,
                      valid: torch.Tensor | None = None) -> torch.Tensor:
    """Class-balanced binary cross entropy (HED / CASENet).

    ``-(beta y log p + (1 - beta)(1 - y) log(1 - p))`` with ``beta`` = fraction of non-edge
    pixels among the valid pixels of the image, ``p = sigmoid(logit)``.

    Parameters
    ----------
    logits : float (N, 1, H, W) or (N, H, W).
    target : float (N, H, W), 1 on contour pixels, 0 elsewhere.
    valid : bool (N, H, W) or None (all valid); e.g. False on padding.
    """
    logits = logits.float().reshape(target.shape)
    target = target.float()
    valid = torch.ones_like(target, dtype=torch.bool) if valid is None else valid
    vf = valid.float()
    n_valid = vf.sum((1, 2)).clamp(min=1.0)
    beta = 1.0 - (target * vf).sum((1, 2)) / n_valid  # fraction of non-edge pixels
    beta = beta[:, None, None]
    weight = beta * target + (1.0 - beta) * (1.0 - target)
    bce = F.binary_cross_entropy_with_logits(logits, target, weight=weight, reduction="none")
    return _per_image_mean(bce, valid)


def contour_huber_loss(logits: torch.Tensor, target: torch.Tensor,
                       valid: torch.Tensor | None = None, delta: float = 0.3) -> torch.Tensor:
    """Huber loss (``delta``) between ``sigmoid(logits)`` and the 0/1 contour target.

    Shapes as in :func:`weighted_bce_loss`.
    """
    prob = torch.sigmoid(logits.float().reshape(target.shape))
    h = F.huber_loss(prob, target.float(), reduction="none", delta=delta)
    return _per_image_mean(h, torch.ones_like(h, dtype=torch.bool) if valid is None else valid)


def _gaussian_kernel(sigma: float, device, dtype) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _smooth(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, 1, H, W) with replicated borders."""
    k = _gaussian_kernel(sigma, x.device, x.dtype)
    r = (len(k) - 1) // 2
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))


def contour_normals(target: torch.Tensor, sigma: float = 1.0) -> tuple[torch.Tensor,
                                                                          torch.Tensor]:
    """Normals of the ground-truth contour and its centre line.

    The 0/1 contour target is smoothed with a Gaussian (``sigma``); at a contour the smoothed
    map is a ridge, whose normal is the eigenvector of the Hessian with the most negative
    eigenvalue: angle ``0.5 * atan2(2 Ixy, Ixx - Iyy) + pi/2`` from the x axis (the
    gradient, zero on the ridge's crest, cannot give it).

    Parameters
    ----------
    target : float (N, H, W) 0/1 contour target.
    sigma : smoothing in pixels.

    Returns
    -------
    normal_yx : float (N, 2, H, W), unit (ny, nx) per pixel (meaningful on contours).
    smoothed : float (N, 1, H, W), the smoothed target.
    """
    s = _smooth(target.float()[:, None], sigma)
    p = F.pad(s, (1, 1, 1, 1), mode="replicate")
    c = p[..., 1:-1, 1:-1]
    ixx = p[..., 1:-1, 2:] - 2 * c + p[..., 1:-1, :-2]
    iyy = p[..., 2:, 1:-1] - 2 * c + p[..., :-2, 1:-1]
    ixy = (p[..., 2:, 2:] - p[..., 2:, :-2] - p[..., :-2, 2:] + p[..., :-2, :-2]) / 4
    theta = 0.5 * torch.atan2(2 * ixy, ixx - iyy) + math.pi / 2
    normal = torch.cat([torch.sin(theta), torch.cos(theta)], dim=1)  # (ny, nx)
    return normal, s


def _sample_along(maps: torch.Tensor, normal_yx: torch.Tensor,
                  steps: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of ``maps`` (N, 1, H, W) at ``pixel + t * normal`` for each t in
    ``steps`` (T,): returns (N, T, H, W); outside the image, the border value."""
    n, _, h, w = maps.shape
    ys = torch.arange(h, device=maps.device, dtype=maps.dtype).view(1, h, 1)
    xs = torch.arange(w, device=maps.device, dtype=maps.dtype).view(1, 1, w)
    out = []
    for t in steps.tolist():
        y = ys + t * normal_yx[:, 0]
        x = xs + t * normal_yx[:, 1]
        grid = torch.stack([2 * x / max(w - 1, 1) - 1, 2 * y / max(h - 1, 1) - 1], dim=-1)
        out.append(F.grid_sample(maps, grid, mode="bilinear", padding_mode="border",
                                 align_corners=True))
    return torch.cat(out, dim=1)


def nms_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None,
             *, radius: int = 2, tau: float = 0.1, sigma: float = 1.0) -> torch.Tensor:
    """NMS loss of Acuna et al. 2019: the predicted contour should peak on the true contour's
    centre line, across it.

    At each pixel of the ground-truth contour's centre line (contour pixels where the
    smoothed target is not lower than at +-1 px along the normal; all pixels of a 1-px
    contour), the probabilities ``p`` at ``t = -radius..radius`` px along the normal
    (bilinear) are compared by a softmax ``exp(p_t / tau) / sum_s exp(p_s / tau)``; the loss is
    ``-log`` of the centre's share. Like the other contour terms it is averaged over all
    valid pixels of the image (0 off the centre line), then over images: averaging over the
    centre-line pixels alone would weigh each of them ~30x more than a pixel of the weighted
    BCE and, with the 1/tau gradient, let this term swamp the others.

    Parameters
    ----------
    logits : float (N, 1, H, W) or (N, H, W) contour logits.
    target : float (N, H, W) 0/1 contour target.
    valid : bool (N, H, W) or None.
    radius, tau, sigma : see :class:`LossConfig`.
    """
    target = target.float()
    prob = torch.sigmoid(logits.float().reshape(target.shape))[:, None]
    with torch.no_grad():
        normal, smoothed = contour_normals(target, sigma)
        around = _sample_along(smoothed, normal, torch.tensor([-1.0, 1.0]))
        centre_line = (target > 0.5) & (smoothed[:, 0] >= around.max(1).values - 1e-6)
        valid = torch.ones_like(centre_line) if valid is None else valid
        centre_line &= valid
    steps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    samples = _sample_along(prob, normal, steps) / tau  # (N, T, H, W)
    nll = (torch.logsumexp(samples, dim=1) - samples[:, radius]) * centre_line
    return _per_image_mean(nll, valid)


def offset_loss(offset_yx: torch.Tensor, target_yx: torch.Tensor, valid: torch.Tensor,
                delta: float = 1.0) -> torch.Tensor:
    """Huber loss (``delta`` px) on the offsets of pixels with a target.

    Parameters
    ----------
    offset_yx, target_yx : float (N, 2, H, W), (dy, dx) in pixels.
    valid : bool (N, H, W), True on thing pixels with an offset target.

    Returns
    -------
    float scalar: per image the mean over valid pixels and both components, then over images.
    """
    h = F.huber_loss(offset_yx.float(), target_yx.float(), reduction="none", delta=delta)
    return _per_image_mean(h, valid[:, None].expand_as(h))


def total_loss(outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor],
               config: LossConfig = LossConfig()) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """All terms and their weighted sum.

    Parameters
    ----------
    outputs : the network's dict (``semantic_logits``, ``contour_logits``, ``offset_yx``).
    batch : ``semantic`` int64 (N, H, W), ``contour`` float (N, H, W), ``offset_yx`` float
        (N, 2, H, W), ``offset_valid`` bool (N, H, W), optional ``pixel_valid`` bool (N, H, W)
        (False on padding).
    config : which contour terms, weights and constants.

    Returns
    -------
    total : float scalar ``l_sem * semantic + l_cont * contour + l_off * offset``.
    terms : detached scalars ``loss`` (the total), ``loss_semantic``, ``loss_contour``,
        ``loss_offset`` and one ``loss_<term>`` per contour term.
    """
    valid = batch.get("pixel_valid")
    contour_logits, contour = outputs["contour_logits"], batch["contour"]
    sem = semantic_loss(outputs["semantic_logits"], batch["semantic"], config.semantic_top_k)
    parts = {}
    if "wbce" in config.contour_terms:
        parts["wbce"] = weighted_bce_loss(contour_logits, contour, valid)
    if "huber" in config.contour_terms:
        parts["huber"] = contour_huber_loss(contour_logits, contour, valid,
                                            config.contour_huber_delta)
    if "nms" in config.contour_terms:
        parts["nms"] = nms_loss(contour_logits, contour, valid, radius=config.nms_radius,
                                tau=config.nms_tau, sigma=config.nms_sigma)
    cont = sum(parts.values()) if parts else sem.new_zeros(())
    off = offset_loss(outputs["offset_yx"], batch["offset_yx"], batch["offset_valid"],
                      config.offset_huber_delta)
    l_sem, l_cont, l_off = config.lambdas
    total = l_sem * sem + l_cont * cont + l_off * off
    terms = {"loss": total, "loss_semantic": sem, "loss_contour": cont, "loss_offset": off}
    terms.update({f"loss_{k}": v for k, v in parts.items()})
    return total, {k: v.detach() for k, v in terms.items()}
