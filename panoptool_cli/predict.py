"""``panoptool predict``: panoptic results for any images, folders and videos."""

from __future__ import annotations

import os

import click

from panoptool_cli.options import (amp_option, derivation_options, device_option,
                                   field_option, min_area_option, overwrite_option,
                                   postprocess_config, workers_option)

# see panoptool_cli/infer.py: sleeping OpenMP threads on a shared CPU; before torch's import
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from panoptool.predict.config import BACKENDS, FORMATS, PredictConfig  # noqa: E402


def _formats(ctx, param, value: str) -> tuple[str, ...]:
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
@field_option(PredictConfig, "formats", "--format", "formats", callback=_formats)
@field_option(PredictConfig, "save_maps", "--save-maps", is_flag=True, show_default=False)
@field_option(PredictConfig, "scale_areas")
@min_area_option()
@derivation_options
@device_option
@amp_option
@field_option(PredictConfig, "backend", type=click.Choice(list(BACKENDS)))
@field_option(PredictConfig, "batch", type=click.IntRange(min=1))
@field_option(PredictConfig, "threads", type=click.IntRange(min=0))
@workers_option
@field_option(PredictConfig, "loaders", type=click.IntRange(min=0))
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
    from panoptool.predict.stream import predict
    from panoptool.runtime.pool import console

    post = postprocess_config(
        split_=split_, merge=merge, min_area=min_area, eps=eps, min_samples=min_samples,
        cell=cell, contour_threshold=contour_threshold, connectivity=connectivity,
        fill_contours=fill_contours, derivation=derivation, band_eps=band_eps)
    config = PredictConfig(inputs=tuple(inputs), out=out, checkpoint=checkpoint, model=model,
                           postprocess=post, scale_areas=scale_areas, formats=formats,
                           save_maps=save_maps, device=device, amp=amp, backend=backend,
                           batch=batch, threads=threads, workers=workers, loaders=loaders)
    summary = predict(config, overwrite=overwrite)
    console.print(summary.line())
