"""``x3dsearch calibrate``: how far can the search's proxy be trusted?"""
from __future__ import annotations

from pathlib import Path

import click

from ..runlog.trial import PROXY_INITS
from .search_cmd import resource_options


@click.command(short_help="How far the proxy's ranking can be trusted: seeds against a longer training.")
@click.option("--data", default="synthetic", show_default=True, metavar="synthetic|ROOT", help="Dataset root.")
@click.option("--budget", metavar="NAME|FILE", help="The proxy: the search's training budget [default: auto].")
@click.option("--reference-budget", metavar="NAME|FILE",
              help="A longer training to compare with [default: the proxy at 4x its epochs].")
@click.option("--seeds", type=int, default=3, show_default=True, help="Proxy trainings per model.")
@click.option("--reference-seeds", type=int, help="Reference trainings per model [default: --seeds].")
@click.option("--models", metavar="default|spread|M,M,...", default="default", show_default=True,
              help="default: X2D, X3D-XS and the first step's candidates of the default space (same cost); "
                   "spread: X2D, the paper's chain (bottleneck, fast, spatial, depth) and X3D-XS (30x in "
                   "GFLOPs); or presets, factor strings (frames=4,stride=12,...: name=value items run on as "
                   "one model) or final_model.yaml files, comma-separated.")
@click.option("--proxy-init", type=click.Choice(PROXY_INITS), default="scratch", show_default=True,
              help="How the proxy trainings start: from scratch, or as a search step's candidates do with "
                   "inherit: the seed model (x2d, which --models must hold) trains first at each seed, and every "
                   "other model starts from that seed's training, grown to it. The reference trainings always "
                   "start from scratch: they are what the proxy is judged against. A grown training is kept "
                   "apart from the scratch one (runs/<budget>/<model>-s<seed>-inherit), so one --out holds "
                   "both.")
@click.option("--out", type=click.Path(path_type=Path), required=True, metavar="DIR",
              help="Where the trainings, calibration.yaml and calibration.png go (a rerun continues).")
@resource_options
def calibrate(data: str, budget: str | None, reference_budget: str | None, seeds: int, reference_seeds: int | None,
              models: str | None, proxy_init: str, out: Path, address: str | None,
              cpus_per_trial: float | None, gpus_per_trial: float | None, max_failures: int) -> None:
    """Train a fixed set of models with the proxy at several seeds and with a longer reference, and
    report how stable each criterion's ranking is and how well it agrees with the reference's."""
    from ..calibrate import CalibrationSettings, calibrate as run_calibration
    from ..calibrate.report import table
    from ..search import Resources
    from .options import budget_spec, data_spec, split_models, user_path

    settings = CalibrationSettings(out=user_path(out), data=data_spec(data), budget=budget and budget_spec(budget),
                                   reference_budget=reference_budget and budget_spec(reference_budget),
                                   seeds=seeds, reference_seeds=reference_seeds,
                                   models=tuple(split_models(models)) if models else (), proxy_init=proxy_init)
    summary = run_calibration(settings, Resources(address, cpus_per_trial, gpus_per_trial, max_failures))
    click.echo("")
    for line in table(summary):
        click.echo(line)
    click.echo("")
    click.echo(f"wrote {settings.out / 'calibration.yaml'} and {settings.out / 'calibration.png'}")
