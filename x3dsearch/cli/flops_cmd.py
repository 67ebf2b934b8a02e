"""``x3dsearch flops``: complexity of a preset or of explicit factors."""
from __future__ import annotations

import json

import click

from ..factors import PRESETS, Factors
from .aliases import num_classes_option


def _row(name: str, factors: Factors, num_classes: int) -> dict:
    from ..complexity import complexity

    c = complexity(factors, num_classes)
    return {"name": name, **factors.to_dict(), "gflops": round(c.gflops, 6), "params_m": round(c.params_m, 6)}


@click.command(short_help="GFLOPs (paper convention) and parameters of a preset or of factors.")
@click.option("--preset", "preset_name", metavar="NAME", help=f"One of {', '.join(PRESETS)}, or 'all'.")
@click.option("--factors", "factors_text", metavar="K=V,...",
              help="e.g. frames=16,stride=5,crop=224,width=1,bottleneck=2.25,depth=2.2")
@click.option("--crop", type=click.IntRange(min=32), help="Override the crop (e.g. a test crop).")
@num_classes_option(type=click.IntRange(min=1), default=400, show_default=True,
                    help="Classes of the final layer; the published GFLOPs count 400 (Kinetics-400).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def flops(preset_name: str | None, factors_text: str | None, crop: int | None, num_classes: int,
          as_json: bool) -> None:
    """GFLOPs (multiply-adds, paper convention) and parameters of a model."""
    from .options import resolve_factors

    if preset_name and preset_name.lower() == "all":
        if factors_text:
            raise click.UsageError("give either --preset or --factors, not both")
        models = [(name, f.replace(crop=crop) if crop else f) for name, f in PRESETS.items()]
    else:
        factors = resolve_factors(preset_name, factors_text, crop=crop)
        models = [(preset_name.lower() if preset_name else "custom", factors)]
    rows = [_row(name, f, num_classes) for name, f in models]
    if as_json:
        payload = rows if len(rows) > 1 or (preset_name or "").lower() == "all" else rows[0]
        click.echo(json.dumps(payload))
        return
    header = f"{'model':<8} {'frames':>6} {'stride':>6} {'crop':>5} {'width':>6} {'bneck':>6} {'depth':>6} " \
             f"{'GFLOPs':>9} {'params':>8}"
    click.echo(header)
    click.echo("-" * len(header))
    for r in rows:
        click.echo(f"{r['name']:<8} {r['frames']:>6} {r['stride']:>6} {r['crop']:>5} {r['width']:>6g} "
                   f"{r['bottleneck']:>6g} {r['depth']:>6g} {r['gflops']:>9.4f} {r['params_m']:>7.2f}M")
