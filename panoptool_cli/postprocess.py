"""``panoptool postprocess``: instances and panoptic results from prediction maps."""

from __future__ import annotations

import click

from panoptool_cli.options import overwrite_option, root_option, workers_option


@click.command("postprocess")
@click.option("--maps", "maps", type=click.Path(file_okay=False, path_type=str),
              help="Folder of <stem>_maps.npz prediction maps (searched recursively).")
@click.option("--out", required=True, type=click.Path(path_type=str),
              help="Results folder (semantic/, instance/, panoptic/, panoptic.json).")
@click.option("--oracle", is_flag=True,
              help="Use ground-truth maps (semantic from --root, contours and offsets from "
                   "--targets) instead of --maps: the upper bound of the contour method for "
                   "the targets' dilation. Runs with --min-area 0 unless --min-area is given.")
@root_option
@click.option("--dataset-split", "dataset_split", default="val", show_default=True,
              help="Dataset split for --oracle (folder below gtFine/). Named so because "
                   "--split/--no-split switches the split refinement.")
@click.option("--targets", type=click.Path(file_okay=False, path_type=str),
              help="make-targets output folder (with --oracle).")
@click.option("--min-area", type=click.IntRange(min=0), default=None,
              help="Remove instances smaller than this (pixels); their pixels go to the "
                   "same-class instance whose centre their offsets point to (within "
                   "--eps), else become void; 0 = off. Default: 300 (the paper's best), 0 "
                   "with --oracle: it filters a network's noise fragments, and ground-truth "
                   "maps have none, so there it would only delete genuine small objects.")
@click.option("--split/--no-split", "split_", default=True, show_default=True,
              help="Split instances whose predicted centres form several clusters.")
@click.option("--merge/--no-merge", default=True, show_default=True,
              help="Join same-class instances whose mean predicted centres are closer "
                   "than --eps.")
@click.option("--eps", type=float, default=20.0, show_default=True,
              help="Clustering radius in pixels (split and merge).")
@click.option("--min-samples", type=click.IntRange(min=1), default=100, show_default=True,
              help="DBSCAN min_samples (pixels) for the split.")
@click.option("--cell", type=float, default=4.0, show_default=True,
              help="Grid cell (pixels) on which predicted centres are clustered.")
@click.option("--contour-threshold", type=float, default=0.5, show_default=True,
              help="Pixels with contour probability above this separate instances.")
@click.option("--connectivity", type=click.Choice(["4", "8"]), default="4",
              show_default=True, help="Neighbourhood of the connected components.")
@click.option("--fill-contours/--no-fill-contours", default=True, show_default=True,
              help="Give contour pixels back to the nearest instance of their class.")
@click.option("--instance-format", "instance_format", default="both", show_default=True,
              type=click.Choice(["cityscapes", "coco", "both"]),
              help="How instances are written: cityscapes = official instance/<stem>_pred.txt "
                   "+ one PNG mask per instance; coco = instances.json, COCO results with "
                   "pycocotools RLE masks (category_id = labelId, image_id = stem), what "
                   "detectron2 / mmdetection write; both = the two.")
@click.option("--derivation", type=click.Choice(["paper", "seeded"]), default="paper",
              show_default=True,
              help="How instances are derived. paper: connected components of the thing "
                   "mask minus the contours, then split / merge / min-area, then contour "
                   "pixels filled back (an object lying wholly inside the contour band is "
                   "lost). seeded: the components are first grown over the contour band "
                   "(each band pixel joins the same-class instance whose mean centre is "
                   "nearest its predicted centre, within --eps) and band pixels that no "
                   "instance takes become instances of their own, so no thing region is "
                   "lost; split / merge / min-area / fill-back then run as in paper.")
@click.option("--band-eps", "band_eps", type=click.FloatRange(min=0), default=None,
              help="With --derivation seeded: a contour-band pixel joins an instance only if "
                   "its predicted centre is within this many pixels of the instance's mean "
                   "centre; band pixels pointing farther, to a centre of their own (at least "
                   "--min-samples of them), become an instance; 0 = no limit: only band "
                   "regions that no instance reaches become instances. Default: 0 for "
                   "--maps (a network's offsets in the band are too rough for the limit: "
                   "it made more false instances than it recovered, see README), --eps "
                   "with --oracle.")
@workers_option
@overwrite_option
def command(maps, out, oracle, root, dataset_split, targets, min_area, split_, merge, eps,
            min_samples, cell, contour_threshold, connectivity, fill_contours, instance_format,
            derivation, band_eps, workers, overwrite) -> None:
    """Derive instances and panoptic segments from prediction maps and write the official
    Cityscapes result files plus config.json.

    \b
    Examples:
      panoptool postprocess --maps maps/net/val --out results/net
      panoptool postprocess --oracle --root data --targets targets --out results/oracle
    """
    from panoptool.errors import ConfigError
    from panoptool.postprocess import PostprocessConfig, postprocess_maps, postprocess_oracle
    from panoptool.runner import console

    if min_area is None:
        min_area = 0 if oracle else PostprocessConfig.min_area
    if band_eps is None and not oracle and derivation == "seeded":
        band_eps = 0.0
    config = PostprocessConfig(contour_threshold=contour_threshold,
                               connectivity=int(connectivity), split=split_, merge=merge,
                               min_area=min_area, eps=eps, min_samples=min_samples, cell=cell,
                               fill_contours=fill_contours, derivation=derivation,
                               band_eps=band_eps)
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
