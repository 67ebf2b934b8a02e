"""Running a calibration: checks first, then the proxy and reference trainings, then the report."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..budget import Budget, load_budget
from ..data import has_split
from ..errors import ConfigError
from ..runlog import Clock, RunLock, Trial
from ..runlog.trial import INHERIT, SCRATCH, check_proxy_init
from ..search.cluster import Resources, ray_session, send_logs_to
from ..search.inherit import train_parents_first
from ..search.settings import DataInfo, resolve_data_info
from ..search.space import SearchSpace, load_space
from ..search.session import log_takeover
from ..search.trainable import TrialContext, evaluate_heldout
from ..search.trials import TrialRunner
from ..train.folder import TrainingFolder
from ..utils.logging import get_logger
from .plan import CalibrationDir, Model, check_plan, choose_models, inherit_parent, reference_budget, trials
from .report import model_scores, summarize, write

log = get_logger("calibrate")


@dataclass(frozen=True)
class CalibrationSettings:
    out: Path
    data: str = "synthetic"
    budget: str | None = None            # the proxy; None: the default space's (auto)
    reference_budget: str | None = None  # None: the proxy at 4x its epochs
    seeds: int = 3
    reference_seeds: int | None = None   # None: as many as the proxy
    models: tuple[str, ...] = ()         # empty or ("default",): the default set; ("spread",); or a list
    space: SearchSpace | None = None     # whose seed and first step give the default set
    proxy_init: str = SCRATCH            # inherit: the proxy trainings grow from the seed model's (references never)


def calibrate(settings: CalibrationSettings, resources: Resources, console: bool = True) -> dict[str, Any]:
    """Train, compare, and write ``calibration.yaml`` and ``calibration.png``; returns the summary."""
    space = settings.space or load_space()
    proxy_spec = settings.budget or space.budget
    load_budget(proxy_spec, cuda=False)  # a bad name fails before anything starts
    if settings.reference_budget is not None:
        load_budget(settings.reference_budget)
    ref_seeds = settings.reference_seeds or settings.seeds
    if ref_seeds < 1:
        raise ConfigError(f"--reference-seeds must be positive, got {ref_seeds}")
    check_proxy_init(settings.proxy_init)
    data = resolve_data_info(settings.data)
    models = choose_models(settings.models, space, data.num_classes)
    parent = inherit_parent(models, space.seed) if settings.proxy_init == INHERIT else None
    folder = CalibrationDir(settings.out)
    check_plan(models, load_budget(proxy_spec, cuda=False),
               reference_budget(load_budget(proxy_spec, cuda=False), settings.reference_budget),
               data.train_videos, settings.seeds)
    folder.path.mkdir(parents=True, exist_ok=True)
    lock = RunLock(folder.path)
    try:
        send_logs_to(folder.log, console)
        log_takeover(lock)
        with ray_session(resources) as (cluster, placement):
            proxy = load_budget(proxy_spec, cuda=placement[1] > 0)
            reference = reference_budget(proxy, settings.reference_budget)
            folder.write_config({"data": {"spec": data.spec, "root": str(data.root)}, "proxy": proxy.to_dict(),
                                 "reference": reference.to_dict(), "seeds": settings.seeds,
                                 "reference_seeds": ref_seeds, "proxy_init": settings.proxy_init,
                                 "models": [{"name": m.name, "factors": m.factors.to_dict()} for m in models]})
            device = "cuda" if placement[1] > 0 else "cpu"
            runner = TrialRunner(folder, cluster, placement, explicit_cpus=resources.cpus_per_trial is not None,
                                 max_failures=resources.max_failures,
                                 ctx=TrialContext(str(data.root), proxy.to_dict(), 1, device), clock=Clock(),
                                 save=lambda: None, history=[])
            proxy_trials = trials(models, proxy, settings.seeds, data.num_classes, parent)
            reference_trials = trials(models, reference, ref_seeds, data.num_classes)  # always from scratch
            title = (f"calibration: {len(models)} models x {settings.seeds} seeds, proxy budget {proxy.name}, "
                     f"proxy init {settings.proxy_init}")
            train_parents_first(runner, "proxy", title, proxy_trials, None,
                                f"x3dsearch calibrate ... --proxy-init inherit --out {folder.path}")
            runner.run("proxy", title, proxy_trials, None, ctx=runner.ctx)
            runner.run("reference", f"calibration: {len(models)} models x {ref_seeds} seeds, reference budget "
                       f"{reference.name}", reference_trials, None,
                       ctx=TrialContext(str(data.root), reference.to_dict(), 1, device))
            heldout_split = "test" if has_split(data.root, "test") else "val"
            if heldout_split == "test":
                for trial in reference_trials:
                    if trial.evaluated:
                        evaluate_heldout(folder.trial_dir(trial.name).resolve(), str(data.root), placement)
        summary = _summary(models, proxy_trials, reference_trials, folder, data, proxy, reference, settings,
                           ref_seeds, heldout_split, parent)
        write(summary["yaml"], summary["scores"], folder.report, folder.figure)
        return summary["yaml"]
    finally:
        lock.release()


def _summary(models: list[Model], proxy_trials: list[Trial], reference_trials: list[Trial], folder: CalibrationDir,
             data: DataInfo, proxy: Budget, reference: Budget, calibration: CalibrationSettings, ref_seeds: int,
             heldout_split: str, parent: Model | None) -> dict[str, Any]:
    failed = [t.name for t in proxy_trials + reference_trials if not t.evaluated]
    if failed:
        raise ConfigError(f"{len(failed)} calibration trainings did not finish (first: {failed[0]}: see "
                          f"{folder.log}); run the same command again to retry them")
    proxy_runs = {m.name: [TrainingFolder(folder.trial_dir(t.name)).read_outcomes("val")
                           for t in proxy_trials if t.axis == m.name] for m in models}
    ref_runs = {m.name: [TrainingFolder(folder.trial_dir(t.name)).read_outcomes(heldout_split)
                         for t in reference_trials if t.axis == m.name] for m in models}
    scores = model_scores(models, {t.axis: t.gflops for t in proxy_trials}, proxy_runs, ref_runs)
    settings = {"data": data.log_entry(), "proxy_budget": proxy.name, "reference_budget": reference.name,
                "proxy_init": calibration.proxy_init, "proxy_parent": parent.name if parent is not None else None,
                "seeds": calibration.seeds, "reference_seeds": ref_seeds,
                "reference_metric": f"top-1 on the {heldout_split} split of the reference training"}
    return {"yaml": summarize(scores, settings), "scores": scores}
