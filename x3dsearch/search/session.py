"""Opening and closing a search session, for a new search (``expand``) and a resumed one (``resume``).

A session checks its input before it creates anything, takes the run
directory's lock, sends logs to ``search.log``, starts or joins Ray, records
the config (new searches) or checks the stored one (resumed searches), runs
the :class:`~x3dsearch.search.controller.Search` loop, and always lets go of
Ray and the lock.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..budget import Budget, load_budget
from ..noise import load_noise, noise_from_config, videos_only_warning
from ..simultaneous import NoiseModel
from ..data import has_split
from ..runlog import SEED_TRIAL, Run, RunDir, RunInfo, RunLock, RunStatus, Trial
from ..utils.logging import get_logger
from .cluster import Cluster, Resources, prepare_ray, ray_session, send_logs_to
from .controller import Search
from .inherit import check_parents_kept
from .live_report import LiveReport
from .estimate import count_params_m, estimate_gflops
from .plan import replay
from .settings import (DataInfo, SearchSettings, check_choices, check_same, check_target, environment_changes,
                       default_run_dir, resolve_data_info, run_config, run_info, stored_resources, stored_settings)
from .trainable import TrialContext, evaluate_heldout
from .trials import TrialRunner

log = get_logger("search")


@dataclass
class SearchOutcome:
    run_dir: RunDir
    run: Run
    target: float
    unit: str = "GFLOPs"
    already_finished: bool = False

    @property
    def files(self) -> list[Path]:
        return self.run_dir.files()


def expand(settings: SearchSettings, resources: Resources, run_dir: Path | None = None,
           console: bool = True) -> SearchOutcome:
    """Start a new search in ``run_dir`` (default ``runs/<date-time>``).

    Every check that can fail (target, options, run dir, budget, address, data, resources)
    runs before the run directory is created.
    """
    check_target(settings)
    if settings.path is not None:  # a replay that would leave the space is refused before anything starts
        replay(settings.space, settings.path, settings.target, 1, settings.measure(), settings.contract_axes)
    check_choices(settings)
    if settings.noise not in ("auto", "none"):  # a bad noise file fails before anything starts
        load_noise(settings.noise, settings.selection, settings.data, "", settings.init_rule)
    folder = RunDir(run_dir if run_dir is not None else default_run_dir())
    folder.check_new()
    budget_spec = settings.budget or settings.space.budget
    load_budget(budget_spec, cuda=False)  # a bad name fails now; "auto" is resolved once trials are placed
    prepare_ray(resources.address)
    data = resolve_data_info(settings.data)
    # The search's clock starts once the data is ready: generating the synthetic dataset on
    # first use is a one-off cache fill, not search overhead.
    session_start = time.monotonic()
    check_target(settings, data.num_classes)
    if settings.path is not None:
        replay(settings.space, settings.path, settings.target, data.num_classes, settings.measure(),
               settings.contract_axes)
    with ray_session(resources) as (cluster, placement):
        budget = load_budget(budget_spec, cuda=placement[1] > 0)
        noise = load_noise(settings.noise, settings.selection, settings.data, budget.name, settings.init_rule)
        folder.path.mkdir(parents=True, exist_ok=True)
        with locked(folder, console):
            seed = settings.space.seed
            seed_trial = Trial(name=SEED_TRIAL, axis=None, factors=seed, gflops=estimate_gflops(seed, data.num_classes),
                               params_m=count_params_m(seed, data.num_classes), seed=settings.seed)
            folder.write_config(run_config(settings, resources, budget, data, placement, noise))
            log.info("search in %s: target %g %s from %s (%.4f GFLOPs), space %s, budget %s, seed %d",
                     folder.path, settings.target, settings.unit, seed.short(), seed_trial.gflops, settings.space.name,
                     budget.name, settings.seed)
            run = Run(info=run_info(settings, budget, data), seed_trial=seed_trial, run_dir=folder.path)
            _search(run, folder, settings, resources, budget, data, cluster, placement, session_start, noise)
    return SearchOutcome(folder, run, settings.target, settings.unit)


def resume(run_dir: Path, settings: SearchSettings | None = None, overrides: dict[str, Any] | None = None,
           console: bool = True, given: frozenset[str] = frozenset()) -> SearchOutcome:
    """Continue the search in ``run_dir``.

    ``settings``/``given``: what ``expand --resume`` was called with and which options the
    user set explicitly; those must agree with the stored run. ``overrides`` may change
    where trials run (address, cpus_per_trial, gpus_per_trial, max_failures).
    """
    folder = RunDir(run_dir)
    folder.read_config()  # a folder that is no run is refused before its lock is taken
    with locked(folder, console):  # before the state is read: another process may be writing it
        config = folder.read_config()
        stored = stored_settings(config, str(folder.config))
        budget = Budget.from_dict(config["budget"])
        if settings is not None:
            check_same(folder.path, stored, settings, config, given)
        run = folder.load(stored_info(config, stored, budget))
        if run.status == RunStatus.FINISHED:
            folder.repair_log(run)
            return SearchOutcome(folder, run, stored.target, stored.unit, already_finished=True)
        check_parents_kept(run, folder.trial_dir)  # a refusal leaves the state as it was
        resources = stored_resources(config, overrides)
        prepare_ray(resources.address)
        data = resolve_data_info(stored.data)
        session_start = time.monotonic()  # as in expand: after the data is ready
        with ray_session(resources) as (cluster, placement):
            log.info("resuming the search in %s (session %d): %d steps so far", folder.path, run.sessions + 1,
                     len(run.steps))
            changes = environment_changes(config, placement)
            if changes:
                log.warning("this session trains in another environment than the run started in (%s): threads "
                            "and CPU kernels change the rounding, so trials trained now need not match, bit for "
                            "bit, those an uninterrupted run would have trained", "; ".join(changes))
            _search(run, folder, stored, resources, budget, data, cluster, placement, session_start,
                    noise_from_config(config.get("noise")))
    return SearchOutcome(folder, run, stored.target, stored.unit)


def stored_info(config: dict[str, Any], settings: SearchSettings, budget: Budget) -> RunInfo:
    """What the run log says about a stored run, from its ``config.yaml``."""
    entry = config["data"]
    return run_info(settings, budget, DataInfo(spec=entry["spec"], root=Path(entry["root"]),
                                               num_classes=entry["num_classes"], train_videos=entry["train_videos"],
                                               val_videos=entry["val_videos"], test_videos=entry.get("test_videos")))


@contextmanager
def locked(folder: RunDir, console: bool) -> Iterator[None]:
    """The run directory's lock (one process per run), and the logs sent to its ``search.log``."""
    lock = folder.lock()
    try:
        send_logs_to(folder.search_log, console)
        log_takeover(lock)
        yield
    finally:
        lock.release()


def log_takeover(lock: RunLock) -> None:
    if lock.took_over is not None:
        log.warning("took over the lock of %s from x3dsearch %s, which ended without releasing it (killed?)",
                    lock.path.parent, lock.took_over)


def _search(run: Run, folder: RunDir, settings: SearchSettings, resources: Resources, budget: Budget,
            data: DataInfo, cluster: Cluster, placement: tuple[float, float], session_start: float,
            noise: NoiseModel | None) -> None:
    cpus_per_trial, gpus_per_trial = placement
    run.clock.ray_start_s += cluster.start_s
    ctx = TrialContext(data=str(data.root), budget=budget.to_dict(), threads=max(1, int(cpus_per_trial)),
                       device="cuda" if gpus_per_trial > 0 else "cpu")
    trials = TrialRunner(folder, cluster, placement, explicit_cpus=resources.cpus_per_trial is not None,
                         max_failures=resources.max_failures, ctx=ctx, clock=run.clock,
                         save=lambda: folder.save(run, time.monotonic() - session_start), history=run.trials(),
                         keep=resources.keep)
    heldout = None
    if has_split(data.root, "test"):
        # between steps no trial runs: on a local CPU-only Ray, the held-out pass takes every core
        evaluation = (cluster.cpus, 0.0) if gpus_per_trial == 0 and not cluster.address else placement

        def heldout(trial: Trial) -> float | None:
            return evaluate_heldout(folder.trial_dir(trial.name).resolve(), str(data.root), evaluation)
    log.info("Ray %s: %g CPUs, %g GPUs (%.1f s)", f"cluster at {cluster.address}" if cluster.address
             else "started locally", cluster.cpus, cluster.gpus, cluster.start_s)
    log.info("nodes: %s", "; ".join(cluster.nodes))
    log.info("trials: %g CPU, %g GPU each, up to %d at once; budget %s; data %s (%d classes, %d train / %d val)",
             cpus_per_trial, gpus_per_trial, trials.eta.slots, budget.name, data.root, data.num_classes,
             data.train_videos, data.val_videos)
    if noise is not None:
        log.info("single-seed intervals hold the %s", noise.describe())
    elif settings.trainings == 1:
        log.warning("%s", videos_only_warning(settings.data, budget.name))
    report = LiveReport(folder.path, trials)
    trials.trial_saved = report.write
    try:
        Search(run, folder, settings, data, trials, session_start, heldout=heldout, keep=resources.keep,
               noise=noise, saved=report.write).run()
    finally:
        report.close()  # the page of the run's last state, before the lock is let go
