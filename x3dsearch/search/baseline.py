"""Published models as baselines on the user's data: ``x3dsearch baseline RUN --presets x3d-xs,x3d-s``.

A baseline is trained exactly like the run's candidates: the run's data, budget, seeds and
repeats, through the same Ray runner, into the run's own ``candidates/baseline-<name>/``.
It is scored on the validation videos it and the final model both read, with the same
interval as a candidate, evaluated on the held-out split when there is one, and compared
with the final model (final minus baseline, paired by video and seed): whether the search
beat the published architecture on this data, at the same cost, or could not tell.

It starts as the run's candidates did (``--proxy-init``, by default the run's own): from scratch,
or from the trained weights of the run's seed model grown to it, as a candidate of the search's
first step starts, so that the comparison with the final model is between trainings that started
alike. Everything that can refuse (a model the seed cannot grow into, the seed's weights gone, a
baseline already trained with the other init) does so before the run is changed or Ray starts.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from ..budget import Budget
from ..criteria import Criterion
from ..data import has_split
from ..errors import X3DSearchError
from ..factors import Factors
from ..runlog import Run, RunDir, RunStatus, Trial
from ..models.grow import check_growth
from ..runlog.run import RANDOM_PREFIX, Baseline
from ..runlog.trial import INHERIT, check_proxy_init
from ..train.folder import TrainingFolder
from ..utils.fmt import score_spec
from ..utils.logging import get_logger
from .cluster import ray_session
from .controller import repeat_seed
from .estimate import count_params_m, estimate_gflops
from .inherit import started_from
from ..noise import noise_from_config
from ..simultaneous import NoiseModel
from .judge import Judge, runs
from .plan import lands_on_target, random_path
from .session import locked, stored_info
from .settings import SearchSettings, resolve_data_info, stored_resources, stored_settings
from .trainable import TrialContext, evaluate_heldout
from .trials import TrialRunner

log = get_logger("search")


def random_architectures(settings: SearchSettings, num_classes: int, count: int,
                         final: Factors) -> list[tuple[str, Factors]]:
    """``count`` distinct random architectures of the run's space at its target (the final model itself
    left out), drawn from a generator seeded by the run's seed: ``random-1`` is the same model on every
    call, so asking for more later trains only the new ones."""
    if settings.complexity != "gflops":
        raise X3DSearchError("--random needs a GFLOPs target: a latency run would time every random path's models")
    rng = random.Random(settings.seed + 7919)
    drawn: list[tuple[str, Factors]] = []
    for _ in range(100 * count):
        if len(drawn) == count:
            break
        plan = random_path(settings.space, settings.target, num_classes, rng, settings.measure())
        if not lands_on_target(plan) or plan.final is None:
            continue  # short of the target, under it by more than the tolerance, or several contractions
        factors = plan.final.factors
        if factors == final or any(factors == f for _, f in drawn):
            continue
        name = f"{RANDOM_PREFIX}{len(drawn) + 1}"
        log.info("%s: path %s -> %s, %.4f GFLOPs", name, ",".join(plan.path), factors.short(), plan.final.gflops)
        drawn.append((name, factors))
    if len(drawn) < count:
        raise X3DSearchError(f"--random {count}: the space holds only {len(drawn)} other architectures at this target")
    return drawn


def add_baselines(run_dir: Path, models: list[tuple[str, Factors]], overrides: dict[str, Any] | None = None,
                  console: bool = True, random_count: int = 0, proxy_init: str | None = None) -> Run:
    """Train ``models`` (name, factors), and ``random_count`` random architectures of the run's space at its
    target, as baselines of the finished run in ``run_dir``; a model already there is not trained again
    (an interrupted call continues). Each baseline starts as ``proxy_init`` says (None: as the run's
    candidates did): from scratch, or, with inherit, from the run's seed model's weights, grown."""
    folder = RunDir(run_dir)
    folder.read_config()  # a folder that is no run is refused before its lock is taken
    if not models and random_count <= 0:
        raise X3DSearchError("give at least one model (--presets, --models or --random)")
    if proxy_init is not None:
        check_proxy_init(proxy_init)
    with locked(folder, console):  # before the state is read: a search may still be writing it
        config = folder.read_config()
        settings = stored_settings(config, str(folder.config))
        budget = Budget.from_dict(config["budget"])
        run = folder.load(stored_info(config, settings, budget))
        if run.status != RunStatus.FINISHED or run.final is None:
            raise X3DSearchError(f"{folder.path}: the search has not finished; baselines compare with its final "
                                 f"model")
        init = proxy_init or settings.init_rule
        names = [name for name, _ in models] + [f"{RANDOM_PREFIX}{k}" for k in range(1, random_count + 1)]
        _check_same_init(run, names, init)
        if _inherits_now(run, names, init):
            _check_seed_weights(run, folder)
        if init == INHERIT:
            _check_growth(run.seed_trial, models)
        resources = stored_resources(config, overrides)
        data = resolve_data_info(settings.data)
        if random_count > 0:
            drawn = random_architectures(settings, data.num_classes, random_count, run.final.model.factors)
            if init == INHERIT:  # a random path expands the seed, so it grows; checked all the same
                _check_growth(run.seed_trial, drawn)
            models = models + drawn
        new: dict[str, Baseline] = {}  # saved after training: a refusal, or Ray not starting, changes nothing
        for name, factors in models:
            if name not in new and not any(b.name == name for b in run.baselines):
                new[name] = _baseline(name, factors, settings.seed, settings.trainings, data.num_classes,
                                      run.seed_trial, init)
        run.baselines.extend(new.values())
        trials = [r for b in run.baselines for r in b.trial.runs]
        heldout = has_split(data.root, "test")
        if any(t.needs_training or _unscored(t, heldout) for t in trials):
            with ray_session(resources) as (cluster, placement):
                ctx = TrialContext(data=str(data.root), budget=budget.to_dict(), threads=max(1, int(placement[0])),
                                   device="cuda" if placement[1] > 0 else "cpu")
                runner = TrialRunner(folder, cluster, placement, explicit_cpus=resources.cpus_per_trial is not None,
                                     max_failures=resources.max_failures, ctx=ctx, clock=run.clock,
                                     save=lambda: folder.save(run), history=run.trials(), keep=resources.keep)
                runner.run("baselines", f"baselines of {folder.path.name}: {', '.join(b.name for b in run.baselines)} "
                           f"under budget {budget.name}, {settings.trainings} seed(s) each, proxy init {init}",
                           trials, run.final)
                for trial in trials:
                    if _unscored(trial, heldout):
                        trial.heldout_top1 = evaluate_heldout(folder.trial_dir(trial.name).resolve(), str(data.root),
                                                              placement)
        _judge(run, folder, settings.selection, settings.seed, noise_from_config(config.get("noise")))
        folder.save(run)  # the search's cost stays the search's: baselines are not part of it
    return run


def _baseline(name: str, factors: Factors, seed: int, trainings: int, num_classes: int, seed_model: Trial,
              init: str) -> Baseline:
    """A baseline and its repeats, each started as ``init`` says from ``seed_model`` (as a first-step
    candidate and its repeats start from the seed model's first training)."""
    trial = started_from(Trial(name=f"baseline-{name}", axis=name, factors=factors,
                               gflops=estimate_gflops(factors, num_classes),
                               params_m=count_params_m(factors, num_classes), seed=seed), seed_model, init)
    for k in range(1, trainings):
        trial.repeats.append(Trial(name=f"{trial.name}-r{k}", axis=name, factors=factors, gflops=trial.gflops,
                                   params_m=trial.params_m, seed=repeat_seed(seed, k), repeat=k, init=trial.init,
                                   parent=trial.parent))
    return Baseline(name, trial)


def _unscored(trial: Trial, heldout: bool) -> bool:
    """A trained baseline not yet scored on the test split (``heldout``: the data has one). With
    ``needs_training`` this is the work that needs a cluster: a call with none starts no Ray."""
    return heldout and trial.evaluated and trial.heldout_top1 is None


def _inherits_now(run: Run, names: list[str], init: str) -> bool:
    """Whether this call trains a baseline from the seed model's weights: a new one under inherit, or
    one left unfinished by an earlier call that inherits."""
    known = {b.name for b in run.baselines}
    unfinished = [b for b in run.baselines if any(r.needs_training for r in b.trial.runs)]
    return (init == INHERIT and any(n not in known for n in names)) or any(b.trial.init == INHERIT
                                                                            for b in unfinished)


def _check_seed_weights(run: Run, folder: RunDir) -> None:
    """With inherit every baseline starts from the seed model's ``model.pt``: it must still be there."""
    path = TrainingFolder(folder.trial_dir(run.seed_trial.name)).model.resolve()
    if not path.is_file():
        raise X3DSearchError(f"--proxy-init inherit starts every baseline from the seed model's weights, but {path} "
                             f"does not exist (the run kept no weights, --keep none, or the file was deleted): "
                             f"restore it, or give --proxy-init scratch")


def _check_growth(seed_model: Trial, models: list[tuple[str, Factors]]) -> None:
    for name, factors in models:
        try:
            check_growth(seed_model.model.factors, factors)
        except X3DSearchError as exc:
            raise X3DSearchError(f"--proxy-init inherit: baseline {name}: {exc}") from None


def _check_same_init(run: Run, names: list[str], init: str) -> None:
    """A baseline asked for again is continued, never retrained: not under another init than it started with."""
    for baseline in run.baselines:
        if baseline.name in names and baseline.trial.init != init:
            raise X3DSearchError(f"baseline {baseline.name} was trained with --proxy-init {baseline.trial.init}, "
                                 f"and this call asks for {init}: give --proxy-init {baseline.trial.init} to keep "
                                 f"it, or remove it from the list")


def _judge(run: Run, folder: RunDir, criterion: str, seed: int, noise: NoiseModel | None) -> None:
    """Each baseline's score on the videos it and the final model read, and final minus baseline (single
    trainings widened by the search's own seed-noise model)."""
    if Criterion(criterion) is Criterion.GAIN_PER_GFLOP:
        criterion, noise = str(Criterion.TOP1), None  # a baseline has no start model to gain over
    final = run.final
    if final is None:
        raise ValueError("baselines are judged against the final model, and the run has none")
    judge = Judge(criterion, "best", seed, lambda t: TrainingFolder(folder.trial_dir(t.name)).read_outcomes("val"),
                  noise=noise)
    for index, baseline in enumerate(run.baselines):
        if not runs(baseline.trial):
            log.warning("baseline %s did not train: %s", baseline.name, baseline.trial.error)
            continue
        _, scores = judge.decide(1000 + index, [baseline.trial], final)
        baseline.score = scores.get(baseline.trial.name)
        baseline.vs_final = judge.compare(1000 + index, final, baseline.trial)
        spec = score_spec(baseline.score.criterion if baseline.score else None)
        verdict = ("no interval" if baseline.vs_final is None else
                   f"final minus baseline {baseline.vs_final.margin:+{spec}} (one-sided 90% bounds "
                   f"{baseline.vs_final.ci[0]:{spec}}..{baseline.vs_final.ci[1]:{spec}}: the final model is "
                   f"{baseline.vs_final.verdict()})")
        log.info("baseline %s (%.4f GFLOPs): %s", baseline.name, baseline.trial.gflops, verdict)
