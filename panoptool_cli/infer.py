"""``panoptool infer``: prediction maps (<stem>_maps.npz) of a trained network."""

from __future__ import annotations

import os

import click

from panoptool_cli.options import (amp_option, device_option, on_bad_image_option,
                                   overwrite_option, root_option)


# OpenMP threads that sleep instead of spinning while they wait: on a CPU shared with other
# processes (data-loader workers, other jobs) spinning threads made a training step 6-12x
# slower (measured on 2 cores); on an idle CPU it costs nothing measurable. Must be set
# before torch is imported (it is imported inside the command).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@click.command()
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=str), default="",
              help="A train checkpoint, e.g. runs/NAME/checkpoints/last.pt (or give --model).")
@click.option("--model", type=click.Path(dir_okay=False, path_type=str), default="",
              help="Instead of --checkpoint: a model written by `panoptool export` (.onnx runs "
                   "with onnxruntime on the CPU, TorchScript with torch).")
@root_option
@click.option("--split", default="val", show_default=True,
              help="Dataset split: a folder below leftImg8bit/ (Cityscapes), or a split of the "
                   "COCO-panoptic dataset (val2017, or a name in the description).")
@click.option("--out", type=click.Path(file_okay=False, path_type=str), required=True,
              help="Maps folder: OUT/<split>/<city>/<stem>_maps.npz (COCO panoptic: "
                   "OUT/<split>/<stem>_maps.npz) and OUT/config.json.")
@device_option
@amp_option
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="Images per forward pass.")
@click.option("--threads", type=click.IntRange(min=0), default=0, show_default=True,
              help="Torch CPU threads; 0 = all cores.")
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="Image-loading worker processes; 0 = auto (1 on CPU, up to 8 on CUDA).")
@on_bad_image_option
@overwrite_option
def command(checkpoint, model, root, split, out, device, amp, batch, threads, workers,
            on_bad_image,
            overwrite):
    """Write full-resolution prediction maps for every image of a split.

    \b
    Each <stem>_maps.npz holds train_ids (uint8 argmax), confidence (softmax probability of
    the argmax), contour_prob (sigmoid) and offset_yx (2, H, W; pixels from the pixel to its
    predicted instance centre): what `panoptool postprocess --maps OUT` reads.

    \b
    Several processes or machines: `torchrun --nproc-per-node N [--nnodes M ...]
    -m panoptool_cli.main infer ...` gives each process every N*M-th image; the maps
    equal those of one process and rank 0 writes OUT/config.json at the end.
    A split without ground truth (Cityscapes' test split) is found through its images; a
    second split can be added to an existing OUT (same checkpoint). The network's label
    space (recorded in the checkpoint) must be the dataset's.
    """
    from panoptool.io.datasets import open_dataset
    from panoptool.inference.maps import InferConfig, infer
    from panoptool.runtime.pool import console
    from panoptool.runtime.sharding import shard_from_env

    config = InferConfig(checkpoint=checkpoint, root=str(open_dataset(root).root), split=split,
                         out=out, device=device, amp=amp, batch=batch, threads=threads,
                         workers=workers, model=model)
    summary = infer(config, overwrite=overwrite, on_bad_image=on_bad_image)
    shard = shard_from_env()
    where = f" (rank {shard.rank} of {shard.world})" if shard.world > 1 else ""
    console.print(f"infer{where}: {summary.images - summary.skipped} images written, "
                  f"{summary.skipped} already there, {summary.ms_per_image:.0f} ms/image, "
                  f"maps in {summary.out}")
