"""``x3dsearch convert``: SlowFast / pytorchvideo X3D checkpoint -> x3dsearch weights."""
from __future__ import annotations

from pathlib import Path

import click

from ..factors import PRESETS
from .aliases import num_classes_option

#: Kept here so ``--help`` needs no torch import; a test checks it equals x3dsearch.convert.SOURCES.
SOURCE_CHOICES = ("slowfast", "pytorchvideo")


@click.command(short_help="Convert SlowFast or pytorchvideo X3D weights for train --init.")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--from", "source", type=click.Choice(SOURCE_CHOICES), required=True,
              help="Layout of CHECKPOINT: SlowFast (dict with 'model_state') or pytorchvideo (state dict, "
                   "raw or under 'model_state' / 'state_dict').")
@click.option("--preset", "preset_name", metavar="NAME", help=f"Architecture: one of {', '.join(PRESETS)}.")
@click.option("--factors", "factors_text", metavar="K=V,...", help="Architecture as explicit factors.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Converted file [default: CHECKPOINT's name + .x3dsearch.pt].")
@num_classes_option(type=click.IntRange(min=1),
                    help="Classes of the converted model [default: the checkpoint's].")
@click.option("--reinit-head", is_flag=True,
              help="Start a fresh final classifier (needed when --num-classes differs), for fine-tuning.")
def convert(checkpoint: Path, source: str, preset_name: str | None, factors_text: str | None,
            output: Path | None, num_classes: int | None, reinit_head: bool) -> None:
    """Map every tensor of CHECKPOINT onto an x3dsearch X3D and save it for `train --init`.

    The preset must match the checkpoint's depth and widths (XS, S and M share
    one architecture, so any of them loads the others' weights; the preset
    also records the clip the model expects).
    """
    from ..convert import convert_checkpoint
    from ..convert.state import describe
    from .options import resolve_factors

    factors = resolve_factors(preset_name, factors_text)
    output = output or checkpoint.with_name(checkpoint.stem + ".x3dsearch.pt")
    result = convert_checkpoint(checkpoint, source, factors, output, num_classes=num_classes,
                                reinit_head=reinit_head)
    head = (f"new {result.num_classes}-class classifier" if result.reinit_head
            else f"{result.num_classes} classes")
    click.echo(f"{result.tensors} tensors from {source} checkpoint {checkpoint} -> {describe(factors)} "
               f"({head}, shortcut_bn={result.model.shortcut_bn}): {output}")
