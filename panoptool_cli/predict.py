"""``panoptool predict``: panoptic results for any images, folders and videos."""

from __future__ import annotations

import os

import click

from panoptool_cli.options import (amp_option, derivation_options, device_option,
                                   overwrite_option, workers_option)

# see panoptool_cli/infer.py: sleeping OpenMP threads on a shared CPU; before torch's import
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _formats(ctx, param, value: str) -> tuple[str, ...]:
    from panoptool.predict.stream import FORMATS
    chosen = tuple(v.strip() for v in value.split(",") if v.strip())
    bad = [v for v in chosen if v not in FORMATS]
    if bad or not chosen:
        raise click.BadParameter(f"choose a comma list of {', '.join(FORMATS)}; got {value!r}")
    return chosen


@click.command("predict")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=str),
              help="A train checkpoint (runs/NAME/checkpoints/last.pt), run with torch.")
@click.option("--model", type=click.Path(dir_okay=False, path_type=str),
              help="An exported model (panoptool export; .onnx), run with onnxruntime. "
                   "Instead of --checkpoint.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Results folder: panoptic/<name>.png + panoptic.json, overlay/, "
                   "config.json (and semantic/, instance/, maps/ when asked for).")
@click.option("--format", "formats", default="panoptic,overlay", show_default=True,
              callback=_formats,
              help="Comma list of what to write: panoptic (COCO panoptic PNGs + "
                   "panoptic.json), cityscapes (official semantic/ and instance/ result "
                   "files), overlay (the image under the panoptic colours with instance "
                   "outlines; an .mp4 per video).")
@click.option("--save-maps", is_flag=True,
              help="Also keep maps/<name>_maps.npz (what `panoptool postprocess --maps` "
                   "reads).")
@click.option("--scale-areas/--no-scale-areas", default=True, show_default=True,
              help="The pixel sizes below (--min-area, --eps, --min-samples, --cell) are "
                   "for a 1024x2048 image and are scaled to each image's size (areas by "
                   "the pixel ratio, lengths by its square root), as demo and ablate do; "
                   "--no-scale-areas uses them as given.")
@click.option("--min-area", type=click.IntRange(min=0), default=300, show_default=True,
              help="Remove instances smaller than this (pixels); their pixels go to the "
                   "same-class instance whose centre their offsets point to (within "
                   "--eps), else become void; 0 = off.")
@derivation_options
@device_option
@amp_option
@click.option("--backend", type=click.Choice(["auto", "torch", "onnxruntime"]), default="auto",
              show_default=True,
              help="What runs a --checkpoint: torch, or onnxruntime on the model exported once "
                   "into ~/.cache/panoptool/onnx ($PANOPTOOL_CACHE; the CPU default: 1.1-1.4x "
                   "faster than torch on 2 cores). auto = onnxruntime on the CPU, torch on a GPU "
                   "or with --amp.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="Frames per forward pass (consecutive frames of one size).")
@click.option("--threads", type=click.IntRange(min=0), default=0, show_default=True,
              help="Torch CPU threads; 0 = all cores.")
@workers_option
@click.option("--loaders", type=click.IntRange(min=0), default=0, show_default=True,
              help="Decoding worker processes; 0 = auto (1 on CPU, 4 on CUDA).")
@overwrite_option
def command(inputs, checkpoint, model, out, formats, save_maps, scale_areas, min_area, split_,
            merge, eps, min_samples, cell, contour_threshold, connectivity, fill_contours,
            derivation, band_eps, device, amp, backend, batch, threads, workers, loaders,
            overwrite) -> None:
    """Panoptic results for INPUT... : image files, folders (searched recursively for
    png/jpg/jpeg/bmp/tif/tiff/webp) and video files (anything OpenCV reads), mixed.

    \b
    Per frame: network -> maps in memory -> the derivation of `panoptool postprocess`
    (same options and defaults) -> result files; decoding, the network and the derivation
    overlap. A folder run resumes: finished inputs are skipped. Under
    `torchrun --nproc-per-node N -m panoptool_cli.main predict ...` the inputs are shared
    out by rank.
    \b
    Examples:
      panoptool predict --checkpoint runs/r18/checkpoints/last.pt frames/ --out results/frames
      panoptool predict --checkpoint last.pt drive.mp4 photo.jpg --out results/mixed
    """
    from panoptool.postprocess import PostprocessConfig
    from panoptool.predict.stream import PredictConfig, predict
    from panoptool.runtime.pool import console

    post = PostprocessConfig(contour_threshold=contour_threshold,
                             connectivity=int(connectivity), split=split_, merge=merge,
                             min_area=min_area, eps=eps, min_samples=min_samples, cell=cell,
                             fill_contours=fill_contours, derivation=derivation,
                             band_eps=band_eps)
    config = PredictConfig(inputs=tuple(inputs), out=out, checkpoint=checkpoint, model=model,
                           postprocess=post, scale_areas=scale_areas, formats=formats,
                           save_maps=save_maps, device=device, amp=amp, backend=backend,
                           batch=batch, threads=threads, workers=workers, loaders=loaders)
    summary = predict(config, overwrite=overwrite)
    console.print(summary.line())
