"""``x3dsearch expand`` (run the X3D search) and ``x3dsearch resume RUN_DIR`` (continue one)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..criteria import CRITERIA, TIE_RULES
from ..runlog.rundir import KEEP
from ..runlog.trial import PROXY_INITS
from .aliases import num_classes_option

CONTRACT_AXES = ("own", "all")
_WHERE = ("address", "cpus_per_trial", "gpus_per_trial", "max_failures", "keep")
_KEEP_OPTION = click.option("--keep", type=click.Choice(KEEP), default="models", show_default=True,
                            help="What stays of a finished trial: everything (checkpoints too), every "
                                 "model.pt, or only the model.pt of the models the search kept.")


def resource_options(fn: Any) -> Any:
    fn = click.option("--max-failures", type=click.IntRange(min=0), default=1, show_default=True,
                      help="Retries of a crashed trial (Ray Tune FailureConfig).")(fn)
    fn = click.option("--gpus-per-trial", type=click.FloatRange(min=0), metavar="N",
                      help="GPUs per trial, fractional allowed (e.g. 0.5) [default: 1 if the cluster has "
                           "GPUs, else 0].")(fn)
    fn = click.option("--cpus-per-trial", type=click.FloatRange(min=0, min_open=True), metavar="N",
                      help="CPUs per trial, fractional allowed [default: 1 on CPU, so trials run in "
                           "parallel; CPUs/GPUs with GPUs].")(fn)
    fn = click.option("--address", metavar="HOST:PORT|auto",
                      help="Join a running Ray cluster instead of starting Ray locally.")(fn)
    return fn


def _given(ctx: click.Context, names: tuple[str, ...]) -> frozenset[str]:
    sources = (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)
    return frozenset(n for n in names if ctx.get_parameter_source(n) in sources)


def _overrides(ctx: click.Context, **values: Any) -> dict[str, Any]:
    """What a resume changes about where trials run and what they keep: the options given explicitly."""
    given = _given(ctx, _WHERE)
    return {k: v for k, v in values.items() if k in given}


def _print(outcome: Any) -> None:
    """The path as ``show`` prints it, how close the final model came to the target, and the files.

    The command layer, not the search, draws ``frontier.png`` (again when it went missing, e.g.
    the process died while drawing it).
    """
    from ..errors import X3DSearchError
    from ..report.html import write_report
    from ..report.plot import plot_runs
    from ..report.table import format_summary, summarize

    run, folder = outcome.run, outcome.run_dir
    if outcome.already_finished:
        click.echo(f"the search in {folder.path} had already finished:")
    if run.steps and (not outcome.already_finished or not folder.frontier.is_file()):
        try:
            plot_runs([run], folder.frontier)
        except X3DSearchError as exc:  # a figure is never worth failing a search for
            click.echo(f"{folder.frontier.name} not written: {exc}", err=True)
    if outcome.already_finished and not folder.report.is_file():  # a run from before the search wrote one
        try:
            write_report(folder.path)
        except X3DSearchError as exc:
            click.echo(f"{folder.report.name} not written: {exc}", err=True)
    click.echo("")
    click.echo(format_summary(summarize(run)))
    click.echo("")
    if run.final is not None:
        final, target, unit = run.final, outcome.target, outcome.unit
        value = final.latency_ms if unit == "ms" else final.gflops
        click.echo(f"the final model is {value:.4f} {unit} = {100 * value / target:.1f}% of the "
                   f"{target:g} {unit} target ({target - value:.4f} under)")
    click.echo("")
    click.echo("files:")
    for path in outcome.files:
        click.echo(f"  {path}{'/' if path.is_dir() else ''}")


@click.command(short_help="Search an X3D model for a GFLOPs (or latency) target by expansion from X2D.")
@click.option("--target-gflops", type=float, metavar="G",
              help="GFLOPs the final model must not exceed (with --complexity latency, --target-ms replaces it).")
@click.option("--complexity", type=click.Choice(("gflops", "latency")), default="gflops", show_default=True,
              help="What the target bounds: the paper's GFLOPs, or the measured latency of one clip "
                   "(--target-ms).")
@click.option("--target-ms", type=float, metavar="MS",
              help="With --complexity latency: milliseconds per clip (batch 1) the final model must not exceed; "
                   "replaces --target-gflops.")
@click.option("--latency-threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="CPU threads latency is measured with: those the final model will run on.")
@click.option("--data", default="synthetic", show_default=True, metavar="synthetic|ROOT",
              help="Dataset root (train.csv/val.csv or train/ and val/ class folders).")
@click.option("--budget", metavar="NAME|FILE",
              help="Training budget of every candidate: auto, smoke, quick, standard, paper or a YAML file "
                   "[default: the space's, auto].")
@click.option("--space", "space_file", metavar="FILE", help="Search space YAML [default: the shipped x3d space].")
@click.option("--run-dir", type=click.Path(path_type=Path), metavar="DIR",
              help="Where the run lives [default: runs/<date-time>].")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of every training.")
@resource_options
@click.option("--criterion", type=click.Choice(CRITERIA),
              help="What a step compares candidates by, on the validation videos all of them read: top-1, the "
                   "true-class probability (prob) or its log (log-prob), or top-1 gained per added GFLOP "
                   "[default: the space's].")
@click.option("--on-tie", type=click.Choice(TIE_RULES),
              help="For the candidates not excluded from being the best (simultaneous one-sided 90% bounds): "
                   "keep the best anyway, the cheaper one, or train them again with further seeds "
                   "[default: the space's].")
@click.option("--noise", "noise", metavar="auto|none|FILE",
              help="Seed noise that single-seed intervals add: a calibration.yaml (or its folder) from "
                   "x3dsearch calibrate, none, or auto: the shipped model of the default proxy on the "
                   "synthetic data, and none elsewhere [default: auto].")
@click.option("--repeats", type=click.IntRange(min=1), metavar="R",
              help="Train every candidate with R seeds (repeat k shares its clips across candidates) "
                   "[default: the space's].")
@click.option("--max-repeats", type=click.IntRange(min=1), metavar="N",
              help="The most seeds --on-tie repeat trains a tied candidate with [default: the space's].")
@_KEEP_OPTION
@click.option("--proxy-init", type=click.Choice(PROXY_INITS),
              help="How every candidate's proxy training starts: from scratch, or from the trained weights of "
                   "the model its step expands, grown to the candidate so it starts as that model's function "
                   "(the seed model then trains before step 1's candidates) [default: the space's, scratch].")
@click.option("--contract-axes", type=click.Choice(CONTRACT_AXES),
              help="Contract the overshooting step along its own axis, or also try all others "
                   "[default: the space's, own].")
@click.option("--resume", "resume_dir", type=click.Path(path_type=Path), metavar="RUN_DIR",
              help="Continue the search in RUN_DIR instead of starting one.")
@click.option("--dry-run", is_flag=True,
              help="Print the first step's candidates (or --path's models) and the contraction with their "
                   "GFLOPs; train nothing, start no Ray, write no run directory.")
@click.option("--path", "path_text", metavar="AXIS,AXIS,...",
              help="Replay a fixed chain of axes (the x- may be left out), e.g. "
                   "bottleneck,fast,spatial,depth,temporal: each step trains only the path's model; the "
                   "stopping rule and the contraction are the search's.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: print the plan as JSON.")
@num_classes_option(dest="classes", type=int,
                    help="With --dry-run: count GFLOPs with N classes [default: the --data's class count; the "
                   "published models are counted with 400].")
@click.pass_context
def expand(ctx: click.Context, target_gflops: float | None, complexity: str, target_ms: float | None,
           latency_threads: int, data: str, budget: str | None, space_file: str | None,
           run_dir: Path | None, seed: int, address: str | None, cpus_per_trial: float | None,
           gpus_per_trial: float | None, max_failures: int, criterion: str | None, on_tie: str | None,
           repeats: int | None, max_repeats: int | None, keep: str, contract_axes: str | None,
           resume_dir: Path | None, dry_run: bool, path_text: str | None, as_json: bool,
           classes: int | None, noise: str | None, proxy_init: str | None) -> None:
    """Search an X3D model of at most --target-gflops by progressive expansion from X2D.

    Each step trains one candidate per axis (about 2x the current GFLOPs each) as one Ray Tune
    experiment and keeps the best; the overshooting last step is contracted to the target.
    With --dry-run it only prints what it would train.
    """
    from ..errors import X3DSearchError
    from ..search import Resources, SearchSettings, expand as run_expand, load_space, resume as run_resume
    from ..search.plan import parse_path
    from .options import budget_spec, data_spec, user_path

    data, budget = data_spec(data), budget and budget_spec(budget)
    run_dir, resume_dir = run_dir and user_path(run_dir), resume_dir and user_path(resume_dir)
    for name, value in (("--target-gflops", target_gflops), ("--target-ms", target_ms)):
        if value is not None and not value > 0:
            raise X3DSearchError(f"{name} must be positive, got {value:g}")
    given = _given(ctx, ("target_gflops", "target_ms", "data", "budget", "space_file", "seed", "criterion",
                         "contract_axes", "on_tie", "repeats", "path_text", "noise", "proxy_init"))
    if noise is not None and noise not in ("auto", "none"):
        noise = str(user_path(Path(noise)))
    given = frozenset("path" if g == "path_text" else g for g in given)
    given = frozenset("space" if g == "space_file" else g for g in given)
    space = load_space(space_file)
    if dry_run:
        if resume_dir is not None:
            raise X3DSearchError("--dry-run plans a new search; it cannot be combined with --resume")
        from .dry_run import dry_run as plan_only

        plan_only(space, target_gflops, path_text, data, classes, contract_axes, as_json)
        return
    for name, value in (("--json", as_json or None), ("--num-classes", classes)):
        if value is not None:
            raise X3DSearchError(f"{name} only applies with --dry-run")
    path = parse_path(path_text, space) if path_text is not None else None
    if resume_dir is not None:
        if run_dir is not None and run_dir != resume_dir:
            raise X3DSearchError("give either --run-dir or --resume, not two different folders")
        settings = SearchSettings(target_gflops=target_gflops or 0.0, space=space, data=data, budget=budget,
                                  seed=seed, criterion=criterion, contract_axes=contract_axes, on_tie=on_tie,
                                  repeats=repeats, max_repeats=max_repeats, target_ms=target_ms or 0.0, path=path,
                                  noise=noise or "auto", proxy_init=proxy_init)
        overrides = _overrides(ctx, address=address, cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
                               max_failures=max_failures, keep=keep)
        _print(run_resume(resume_dir, settings, overrides, given=given))
        return
    if target_gflops is None and target_ms is None:
        raise X3DSearchError("--target-gflops is required (or --target-ms with --complexity latency, or "
                             "--resume RUN_DIR)")
    settings = SearchSettings(target_gflops=target_gflops, space=space, data=data, budget=budget, seed=seed,
                              criterion=criterion, contract_axes=contract_axes, on_tie=on_tie, repeats=repeats,
                              max_repeats=max_repeats, complexity=complexity, target_ms=target_ms,
                              latency_threads=latency_threads, path=path, noise=noise or "auto",
                              proxy_init=proxy_init)
    resources = Resources(address=address, cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
                          max_failures=max_failures, keep=keep)
    _print(run_expand(settings, resources, run_dir))


@click.command(short_help="Continue a stopped search where it stopped (also after kill -9).")
@click.argument("run_dir", type=click.Path(path_type=Path))
@resource_options
@_KEEP_OPTION
@click.pass_context
def resume(ctx: click.Context, run_dir: Path, address: str | None, cpus_per_trial: float | None,
           gpus_per_trial: float | None, max_failures: int, keep: str) -> None:
    """Continue the search in RUN_DIR where it stopped (also after kill -9).

    Finished trials are not trained again; started ones continue from their checkpoint. A
    finished search prints its result.
    """
    from ..search import resume as run_resume
    from .options import user_path

    overrides = _overrides(ctx, address=address, cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
                           max_failures=max_failures, keep=keep)
    _print(run_resume(user_path(run_dir), overrides=overrides))


@click.command(short_help="Train published models under a search's own settings and compare them.")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--presets", metavar="NAME,NAME,...", help="Published models, e.g. x3d-xs,x3d-s.")
@click.option("--models", "model_files", multiple=True, metavar="FILE",
              help="A final_model.yaml (of another search, say); repeat for several.")
@click.option("--random", "random_count", type=click.IntRange(min=1), metavar="N",
              help="Also N random architectures of the run's space at its target (random-1, ...), the same "
                   "ones on every call: show ranks the final model among them.")
@click.option("--proxy-init", type=click.Choice(PROXY_INITS),
              help="How each baseline training (and each repeat) starts: from scratch, or from the trained weights "
                   "of the run's seed model, grown to the baseline, as a candidate of the search's first step "
                   "starts; a baseline the seed cannot grow into is refused [default: the run's own].")
@resource_options
@_KEEP_OPTION
@click.pass_context
def baseline(ctx: click.Context, run_dir: Path, presets: str | None, model_files: tuple[str, ...],
             random_count: int | None, proxy_init: str | None, address: str | None, cpus_per_trial: float | None,
             gpus_per_trial: float | None, max_failures: int, keep: str) -> None:
    """Train published models under RUN_DIR's own data, budget, seeds and repeats, and compare each with
    the search's final model on the same videos (show and plot put them beside the searched models)."""
    from ..factors import preset
    from ..model_file import load_model_file
    from ..report.html import write_report
    from ..report.plot import plot_runs
    from ..report.table import format_summary, summarize
    from ..runlog import RunDir
    from ..search.baseline import add_baselines
    from .options import user_path

    models = [(name.strip().lower(), preset(name.strip())) for name in (presets or "").split(",") if name.strip()]
    for text in model_files:
        path = user_path(text)
        models.append((path.parent.name if path.name == "final_model.yaml" else path.stem,
                       load_model_file(path).factors))
    run = add_baselines(user_path(run_dir), models,
                        _overrides(ctx, address=address, cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
                                   max_failures=max_failures, keep=keep),
                        random_count=random_count or 0, proxy_init=proxy_init)
    folder = RunDir(user_path(run_dir))
    plot_runs([run], folder.frontier)
    write_report(folder.path)
    click.echo(format_summary(summarize(run)))
