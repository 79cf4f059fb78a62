"""``panoptool export``: the network with its maps step as ONNX or TorchScript."""

from __future__ import annotations

import click


@click.command()
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=str), required=True,
              help="A train checkpoint, e.g. runs/NAME/checkpoints/last.pt.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=str), required=True,
              help="Model file to write, e.g. model.onnx (written atomically).")
@click.option("--format", "fmt", type=click.Choice(["onnx", "torchscript"]), default="onnx",
              show_default=True, help="onnx (runs with onnxruntime, no torch needed) or "
                                      "torchscript (torch.jit).")
@click.option("--height", type=click.IntRange(min=1), default=None,
              help="Fixed input height (a multiple of 32); give --width with it.")
@click.option("--width", type=click.IntRange(min=1), default=None,
              help="Fixed input width (a multiple of 32); give --height with it.")
@click.option("--dynamic", is_flag=True,
              help="Any input height and width (multiples of 32); the default when no "
                   "--height/--width is given.")
@click.option("--opset", type=click.IntRange(min=13), default=17, show_default=True,
              help="ONNX opset (onnx format only).")
def command(checkpoint, out, fmt, height, width, dynamic, opset):
    """Write the network as a deployable model that outputs the prediction maps.

    \b
    Input `image`: float32 (N, 3, H, W), ImageNet-normalised RGB (mean/std in the metadata).
    Outputs: train_ids (uint8 argmax), confidence (softmax probability of the argmax),
    contour_prob (sigmoid), offset_yx (N, 2, H, W): exactly what `panoptool infer` writes.
    `panoptool infer --model OUT` runs it. The metadata (panoptool version, network, class
    count, stride, normalisation, label table, checkpoint hash) lets panoptool refuse files
    that are not its own.
    """
    from panoptool.inference.onnx import export_model
    from panoptool.runtime.pool import console

    summary = export_model(checkpoint, out, fmt=fmt, height=height, width=width,
                           dynamic=dynamic, opset=opset)
    console.print(f"export: {summary.format} model ({summary.n_classes} classes, input "
                  f"{summary.input_size}, {summary.megabytes:.1f} MB) written to {summary.out}")
