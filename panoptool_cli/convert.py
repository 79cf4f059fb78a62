"""``panoptool convert``: Cityscapes ground truth and results to and from COCO formats."""

from __future__ import annotations

from pathlib import Path

import click

from panoptool_cli.options import root_option, split_option, workers_option


@click.group("convert")
def command() -> None:
    """Convert Cityscapes ground truth and results to COCO formats (and back), once, for any
    COCO tool.

    \b
    Examples:
      panoptool convert instances-gt --root R --split val --out gt_instances_val.json
      panoptool convert instance-results --results results/net --out instances.json
      panoptool convert instance-results --instances coco.json --out results/net
    """


@command.command("instances-gt")
@root_option
@split_option
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="COCO instances ground-truth JSON to write (images, annotations with RLE "
                   "masks, categories with id = labelId).")
@workers_option
@click.option("--no-cache", is_flag=True,
              help="Do not read or write the ground-truth cache (per-image annotations; a "
                   "rerun resumes from it).")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of the ground-truth cache (default <root>/.panoptool_cache).")
def instances_gt(root, split, out, workers, no_cache, cache_dir) -> None:
    """Cityscapes gtFine instanceIds -> COCO instances JSON, by detectron2's rule: each thing
    instance (id >= 1000) is one annotation, each thing class's crowd pixels one iscrowd
    annotation per image; image id = file stem."""
    from panoptool.coco_instances import convert_instances_gt
    from panoptool.runner import console

    cache = False if no_cache else (cache_dir if cache_dir else True)
    data = convert_instances_gt(root, split, out, workers=workers, cache=cache)
    console.print(f"convert: {len(data['images'])} image(s), {len(data['annotations'])} "
                  f"annotation(s) -> {out}")


@command.command("instance-results")
@click.option("--results", "results_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Results folder with official instance/<stem>_pred.txt + PNG masks, "
                   "converted to one COCO results JSON (--out FILE).")
@click.option("--instances", "instances", type=click.Path(dir_okay=False, path_type=Path),
              help="COCO results JSON (RLE masks), converted to official "
                   "instance/<stem>_pred.txt + masks/ in the results folder --out DIR.")
@click.option("--coco-gt", "coco_gt", type=click.Path(dir_okay=False, path_type=Path),
              help="With --instances: COCO file whose images[].file_name maps integer image "
                   "ids to stems and whose categories[].name maps category ids to labelIds.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="The COCO results JSON (from --results) or the results folder (from "
                   "--instances).")
def instance_results(results_dir, instances, coco_gt, out) -> None:
    """Official instance results (txt + PNG) <-> COCO results JSON; lossless both ways
    (identical masks, labels and scores)."""
    from panoptool.coco_instances import convert_instance_results
    from panoptool.runner import console

    n = convert_instance_results(results_dir=results_dir, instances=instances, out=out,
                                 coco_gt=coco_gt)
    where = out if results_dir else f"{out}/instance"
    console.print(f"convert: {n} instance(s) -> {where}")
