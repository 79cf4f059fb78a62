"""``panoptool postprocess``: instances and panoptic results from prediction maps."""

from __future__ import annotations

import click

from panoptool.postprocess.config import PostprocessConfig
from panoptool_cli.options import (derivation_options, min_area_option, overwrite_option,
                                   postprocess_config, root_option, workers_option)


@click.command("postprocess")
@click.option("--maps", "maps", type=click.Path(file_okay=False, path_type=str),
              help="Folder of <stem>_maps.npz prediction maps (searched recursively).")
@click.option("--out", required=True, type=click.Path(path_type=str),
              help="Results folder (semantic/, instance/, panoptic/, panoptic.json).")
@click.option("--oracle", is_flag=True,
              help="Use ground-truth maps (semantic from --root, a Cityscapes root or a "
                   "COCO-panoptic dataset; contours and offsets from --targets, which must "
                   "have the dataset's label space) instead of --maps: the upper bound of the "
                   "contour method for the targets' dilation. Runs with --min-area 0 unless "
                   "--min-area is given.")
@root_option
@click.option("--dataset-split", "dataset_split", default="val", show_default=True,
              help="Dataset split for --oracle (Cityscapes: the folder below gtFine/; "
                   "COCO-panoptic: a split of the dataset, e.g. val2017). Named so because "
                   "--split/--no-split switches the split refinement.")
@click.option("--targets", type=click.Path(file_okay=False, path_type=str),
              help="make-targets output folder (with --oracle).")
@min_area_option(default=None, show_default=False, help_extra=(
    f"Default: {PostprocessConfig.min_area} (the paper's best), 0 with --oracle: it filters a "
    "network's noise fragments, and ground-truth maps have none, so there it would only "
    "delete genuine small objects."))
@derivation_options
@click.option("--instance-format", "instance_format", default="both", show_default=True,
              type=click.Choice(["cityscapes", "coco", "both"]),
              help="How instances are written: cityscapes = official instance/<stem>_pred.txt "
                   "+ one PNG mask per instance; coco = instances.json, COCO results with "
                   "pycocotools RLE masks (category_id = labelId, COCO's category id on a "
                   "COCO-panoptic label space; image_id = stem), what "
                   "detectron2 / mmdetection write; both = the two.")
@workers_option
@overwrite_option
def command(maps, out, oracle, root, dataset_split, targets, min_area, split_, merge, eps,
            min_samples, cell, contour_threshold, connectivity, fill_contours, instance_format,
            derivation, band_eps, workers, overwrite) -> None:
    """Derive instances and panoptic segments from prediction maps and write the official
    Cityscapes result files plus config.json, with the label ids of the maps' label space
    (recorded in their config.json: Cityscapes, or a COCO-panoptic dataset's categories).

    \b
    Examples:
      panoptool postprocess --maps maps/net/val --out results/net
      panoptool postprocess --oracle --root data --targets targets --out results/oracle
    """
    from panoptool.errors import ConfigError
    from panoptool.postprocess import postprocess_maps, postprocess_oracle
    from panoptool.runtime.pool import console

    if min_area is None:
        min_area = 0 if oracle else PostprocessConfig.min_area
    config = postprocess_config(
        split_=split_, merge=merge, min_area=min_area, eps=eps, min_samples=min_samples,
        cell=cell, contour_threshold=contour_threshold, connectivity=connectivity,
        fill_contours=fill_contours, derivation=derivation, band_eps=band_eps)
    if not oracle:
        config = config.on_maps()
    if oracle:
        if maps:
            raise ConfigError("--oracle reads the ground truth and --targets; drop --maps")
        if not targets:
            raise ConfigError("--oracle needs --targets (the make-targets output folder)")
        summary = postprocess_oracle(root, dataset_split, targets, out, config, workers=workers,
                                     overwrite=overwrite, instance_format=instance_format)
    else:
        if not maps:
            raise ConfigError("pass --maps DIR (prediction maps), or --oracle")
        summary = postprocess_maps(maps, out, config, workers=workers, overwrite=overwrite,
                                   instance_format=instance_format)
    console.print(summary.line())
