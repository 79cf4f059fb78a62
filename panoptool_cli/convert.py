"""``panoptool convert``: Cityscapes ground truth and results to and from COCO formats."""

from __future__ import annotations

from pathlib import Path

import click

from panoptool_cli.options import overwrite_option, root_option, split_option, workers_option


@click.group("convert")
def command() -> None:
    """Convert Cityscapes ground truth and results to COCO formats (and back), once, for any
    COCO tool; a COCO-panoptic dataset to a Cityscapes root.

    \b
    Examples:
      panoptool convert instances-gt --root R --split val --out gt_instances_val.json
      panoptool convert instance-results --results results/net --out instances.json
      panoptool convert instance-results --instances coco.json --out results/net
      panoptool convert panoptic-gt --root R --split val [--out R/gtFine]
      panoptool convert panoptic-gt --to cityscapes --root coco/ --split val2017 --out cs/
      panoptool convert panoptic-results --to official --input results/net --out submit/
      panoptool convert panoptic-results --to panoptool --input other.json --out results/other
    """


@command.command("instances-gt")
@root_option
@split_option
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="COCO instances ground-truth JSON to write (images, annotations with RLE "
                   "masks, categories with id = the dataset's label id / category id).")
@workers_option
@click.option("--no-cache", is_flag=True,
              help="Do not read or write the ground-truth cache (per-image annotations; a "
                   "rerun resumes from it).")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of the ground-truth cache (default .panoptool_cache/ in the "
                   "dataset's folder).")
def instances_gt(root, split, out, workers, no_cache, cache_dir) -> None:
    """Ground truth -> COCO instances JSON. A Cityscapes root: gtFine instanceIds by
    detectron2's rule (each thing instance, id >= 1000, is one annotation, each thing
    class's crowd pixels one iscrowd annotation per image). A COCO-panoptic dataset: by
    panopticapi's rule (one annotation per thing segment, crowd segments as iscrowd).
    Image id = file stem."""
    from panoptool.evaluation.coco import convert_instances_gt
    from panoptool.runtime.pool import console

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
    from panoptool.evaluation.coco import convert_instance_results
    from panoptool.runtime.pool import console

    n = convert_instance_results(results_dir=results_dir, instances=instances, out=out,
                                 coco_gt=coco_gt)
    where = out if results_dir else f"{out}/instance"
    console.print(f"convert: {n} instance(s) -> {where}")


@command.command("panoptic-gt")
@click.option("--to", "to", type=click.Choice(["coco", "cityscapes"]), default="coco",
              show_default=True,
              help="coco: a Cityscapes root's ground truth -> COCO panoptic JSON + PNGs "
                   "(createPanopticImgs). cityscapes: a COCO-panoptic dataset (--root in any "
                   "of its forms) -> a Cityscapes root at --out (leftImg8bit/, gtFine/ "
                   "labelIds + instanceIds).")
@root_option
@split_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="--to coco: output folder for cityscapes_panoptic_<split>.json and its PNG "
                   "folder (default: <root>/gtFine, where createPanopticImgs writes). --to "
                   "cityscapes: the Cityscapes root to write (required).")
@click.option("--category-ids", type=click.Choice(["label", "train"]), default="label",
              show_default=True,
              help="--to coco: category ids on the COCO side: Cityscapes label ids (as the "
                   "official evaluator expects) or train ids (createPanopticImgs "
                   "--use-train-id; the names get _trainId).")
@workers_option
@overwrite_option
@click.pass_context
def panoptic_gt(ctx, to, root, split, out, category_ids, workers, overwrite) -> None:
    """Panoptic ground truth between a Cityscapes root and COCO panoptic, on all cores.

    --to coco (default): Cityscapes ground truth (*_instanceIds.png) -> COCO panoptic PNGs +
    JSON, equal to cityscapesscripts' createPanopticImgs (same JSON text, pixel-equal PNGs).

    --to cityscapes: a COCO-panoptic dataset's split -> leftImg8bit/<split>/<city>/ and
    gtFine/<split>/<city>/ (labelIds uint8 = category ids, instanceIds uint16 = category *
    1000 + k for thing instances, category for stuff and crowd). Cityscapes stems keep their
    city, other stems go to a folder named after the split; ids that do not fit (category
    ids above 255, instances of categories above 65) are refused.

    Resumes: images converted before (same source bytes) are skipped.
    """
    from click.core import ParameterSource

    from panoptool.errors import ConfigError
    from panoptool.runtime.pool import console

    if to == "cityscapes":
        from panoptool.convert.cityscapes_gt import coco_to_cityscapes

        if ctx.get_parameter_source("category_ids") != ParameterSource.DEFAULT:
            raise ConfigError("--category-ids is for --to coco")
        if out is None:
            raise ConfigError("--to cityscapes needs --out (the Cityscapes root to write)")
        summary = coco_to_cityscapes(root, split, out, workers=workers, overwrite=overwrite)
    else:
        from panoptool.convert.panoptic import convert_panoptic_gt

        summary = convert_panoptic_gt(root, split, out, category_ids=category_ids,
                                      workers=workers, overwrite=overwrite)
    console.print(summary.line())


@command.command("panoptic-results")
@click.option("--to", "to", type=click.Choice(["official", "panoptool"]), required=True,
              help="official: a panoptool results folder -> cityscapes_panoptic_<split>.json "
                   "+ PNG folder (the official evaluator's default names). panoptool: any COCO "
                   "panoptic JSON + PNGs of Cityscapes images -> a panoptool results folder "
                   "(panoptic.json + panoptic/) that `panoptool report` evaluates.")
@click.option("--input", "input_", required=True, type=click.Path(exists=True, path_type=Path),
              help="--to official: the results folder (holds panoptic.json). --to panoptool: "
                   "the COCO panoptic JSON file.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder.")
@split_option
@click.option("--category-ids", type=click.Choice(["auto", "label", "train"]), default="auto",
              show_default=True,
              help="Category ids on the COCO side: label ids or train ids. --to official: "
                   "what to write (auto = label). --to panoptool: what the input holds (auto = "
                   "read from its categories).")
@click.option("--png-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="--to panoptool: folder of the input PNGs (default: the JSON path without "
                   ".json).")
def panoptic_results(to, input_, out, split, category_ids, png_dir) -> None:
    """Panoptic results between panoptool's layout and the official / COCO one.

    panoptool's panoptic.json + panoptic/*.png already are the official Cityscapes panoptic
    format (COCO panoptic, image_id = stem, category_id = label id); this renames them as the
    official evaluator expects, optionally with train ids, and reads other tools' files back.
    PNGs are hard-linked where possible, else copied.
    """
    from panoptool.convert.panoptic import results_from_coco, results_to_official
    from panoptool.errors import ConfigError
    from panoptool.runtime.pool import console

    if to == "official":
        if png_dir is not None:
            raise ConfigError("--png-dir is for --to panoptool")
        summary = results_to_official(input_, out, split,
                                      category_ids="label" if category_ids == "auto"
                                      else category_ids)
    else:
        summary = results_from_coco(input_, out, png_dir, category_ids=category_ids)
    console.print(summary.line())
