"""``panoptool train``: train the multi-task network (CPU/GPU; DDP under torchrun)."""

from __future__ import annotations

import os

import click

from panoptool.errors import ConfigError
from panoptool_cli.options import (amp_option, device_option, on_bad_image_option,
                                   overwrite_option, root_option)


def _pair(text: str, sep: str, kind, name: str) -> tuple:
    try:
        values = tuple(kind(v) for v in text.lower().split(sep))
    except ValueError:
        raise ConfigError(f"--{name} must look like A{sep}B, got {text!r}") from None
    if len(values) != 2:
        raise ConfigError(f"--{name} must have two values separated by {sep!r}, got {text!r}")
    return values


# OpenMP threads that sleep instead of spinning while they wait: on a CPU shared with other
# processes (data-loader workers, other jobs) spinning threads made a training step 6-12x
# slower (measured on 2 cores); on an idle CPU it costs nothing measurable. Must be set
# before torch is imported (it is imported inside the command).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@click.command()
@root_option
@click.option("--targets", type=click.Path(file_okay=False, path_type=str), required=True,
              help="make-targets output folder (holds <split>/ and config.json).")
@click.option("--out", type=click.Path(file_okay=False, path_type=str), required=True,
              help="Run folder: config.json, metrics.csv, checkpoints/last.pt.")
@click.option("--split", default="train", show_default=True, help="Training split.")
@click.option("--backbone", type=click.Choice(["resnet18", "resnet34", "resnet50",
                                               "resnet101"]),
              default="resnet18", show_default=True, help="ResNet encoder depth.")
@click.option("--neck", type=click.Choice(["shared", "separate"]), default="separate",
              show_default=True, help="One neck for all heads, or one per head.")
@click.option("--iters", type=click.IntRange(min=1), default=48000, show_default=True,
              help="Training iterations (with --max-minutes: the most).")
@click.option("--max-minutes", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Training-time budget in minutes (0 = none): the schedule is fitted to it "
                   "from the measured speed and the run stops cleanly when it is spent.")
@click.option("--batch", type=click.IntRange(min=1), default=4, show_default=True,
              help="Global batch (split over torchrun processes).")
@click.option("--lr", type=float, default=0.005, show_default=True,
              help="Base learning rate (SGD, momentum 0.9, weight decay 1e-4; linear warm-up, "
                   "then poly decay).")
@click.option("--warmup-iters", type=click.IntRange(min=0), default=200, show_default=True,
              help="Warm-up iterations (at most a tenth of the schedule).")
@click.option("--crop", default="512x1024", show_default=True,
              help="Training crop HxW (clipped to the image size).")
@click.option("--scale", "scale_range", default="0.5,2.0", show_default=True,
              help="Random rescaling range MIN,MAX.")
@click.option("--flip/--no-flip", default=True, show_default=True,
              help="Random horizontal flips.")
@click.option("--contour-loss", default="wbce,huber,nms", show_default=True,
              help="Contour loss terms, comma-separated among wbce, huber, nms.")
@click.option("--lambdas", default="1,50,0.1", show_default=True,
              help="Weights of the semantic, contour and offset losses.")
@click.option("--semantic-top-k", type=click.FloatRange(min=0, max=1, min_open=True),
              default=1.0, show_default=True,
              help="Cross entropy over this fraction of each image's hardest pixels "
                   "(hard-pixel mining; 1 = plain cross entropy).")
@click.option("--offset-scale", type=float, default=4.0, show_default=True,
              help="Offset head output x this = offset in pixels (architecture setting).")
@device_option
@amp_option
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="Data-loader worker processes; 0 = auto (half the cores, 1..8).")
@click.option("--threads", type=click.IntRange(min=0), default=0, show_default=True,
              help="Torch CPU threads; 0 = the cores divided by the processes.")
@click.option("--channels-last/--no-channels-last", default=None,
              help="NHWC memory format (default off: slower training steps on CPU).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the initial weights and of the data order/augmentation.")
@click.option("--init-weights", type=click.Path(dir_okay=False, path_type=str), default="",
              help="Local torchvision ResNet state dict (.pth) for the encoder (ImageNet).")
@click.option("--allow-partial", is_flag=True,
              help="Train from --init-weights even if they match under half of the "
                   "encoder's tensors (refused by default: usually the wrong file).")
@click.option("--save-every", type=click.IntRange(min=1), default=500, show_default=True,
              help="Write checkpoints/last.pt every N iterations (and every 10 minutes).")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out from checkpoints/last.pt (same settings).")
@on_bad_image_option
@overwrite_option
def command(root, targets, out, split, backbone, neck, iters, max_minutes, batch, lr,
            warmup_iters, crop, scale_range, flip, contour_loss, lambdas, semantic_top_k,
            offset_scale, device,
            amp, workers, threads, channels_last, seed, init_weights, allow_partial, save_every,
            resume, on_bad_image, overwrite):
    """Train the network on a split's images and make-targets targets.

    \b
    Example (15 minutes on CPU):
      panoptool train --root data --targets targets --out runs/r18 --max-minutes 15
    Several GPUs/machines: the same command under torchrun, e.g.
      torchrun --nproc-per-node 4 -m panoptool_cli.main train ...

    Ctrl-C writes checkpoints/last.pt and stops; --resume continues exactly there. An
    error (an unreadable image, a full disk) also writes last.pt before the run ends.
    """
    from panoptool.io.cityscapes import resolve_root
    from panoptool.runtime.pool import console
    from panoptool.training.loop import TrainConfig, train

    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    terms = tuple(t.strip() for t in contour_loss.split(",") if t.strip())
    try:
        lam = tuple(float(v) for v in lambdas.split(","))
    except ValueError:
        raise ConfigError(f"--lambdas must be three numbers like 1,50,0.1, got {lambdas!r}") \
            from None
    config = TrainConfig(
        root=str(resolve_root(root)), targets=targets, out=out, split=split,
        backbone=backbone, neck=neck, offset_scale=offset_scale, iters=iters,
        max_minutes=max_minutes, batch=batch, lr=lr, warmup_iters=warmup_iters,
        crop=_pair(crop, "x", int, "crop"), scale=_pair(scale_range, ",", float, "scale"),
        flip=flip, contour_loss=terms, lambdas=lam, semantic_top_k=semantic_top_k,
        device=device, amp=amp, workers=workers,
        threads=threads, channels_last=channels_last, seed=seed, init_weights=init_weights,
        save_every=save_every)
    summary = train(config, resume=resume, overwrite=overwrite, on_bad_image=on_bad_image,
                    allow_partial=allow_partial)
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun only the first process reports
    terms_text = ", ".join(f"{k} {v:.4g}" for k, v in summary.last_terms.items())
    console.print(f"train: {summary.iterations}/{summary.total_iters} iterations in "
                  f"{summary.seconds / 60:.1f} min ({summary.stopped}); {terms_text}; "
                  f"checkpoint {summary.checkpoint}")
