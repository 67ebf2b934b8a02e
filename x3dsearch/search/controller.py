"""The progressive expansion search: coordinate descent forward, contraction back to the target.

Each step proposes one candidate per axis at about c x the current GFLOPs,
trains them all as one Ray Tune experiment, and keeps the best (validation
top-1, ties to the lower GFLOPs, or the top-1 gained per added GFLOP). Steps
repeat until the current model reaches the target (within the space's
tolerance); a last step that overshoots is contracted along its own axis (or
every axis) to the largest setting at most the target. All progress lives in
``state.json``, so ``resume`` picks up after any interruption.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .. import __version__
from ..budget import Budget, load_budget
from ..errors import ConfigError, X3DSearchError
from ..utils.io import atomic_write_yaml, read_yaml
from ..utils.logging import get_logger, setup_logging
from . import pathlog
from .estimate import count_params_m, estimate_gflops
from .progress import EtaModel, LiveTable, Row, future_trials
from .proposals import Proposal, Skip, contract, propose_step
from .runner import (Cluster, Job, Outcome, TrialContext, place_trials, prepare_ray, route_ray_logs, run_experiment,
                     start_ray, stop_ray)
from .space import CONTRACTIONS, CRITERIA, SearchSpace
from .state import (PENDING, RUNNING, STATE_NAME, ContractionRecord, SearchState, StepRecord, TrialRecord)

log = get_logger("search")

CONFIG_NAME = "config.yaml"
LOCK_NAME = ".lock"
LOG_NAME = "search.log"
TRIALS_DIR = "trials"
FRONTIER_NAME = "frontier.png"
SEED_TRIAL = "seed"


@dataclass(frozen=True)
class SearchSettings:
    """Everything that determines a search's result; a resume must not change any of it."""

    target_gflops: float
    space: SearchSpace
    data: str = "synthetic"
    budget: str | None = None     # None: the space's budget
    seed: int = 0
    criterion: str | None = None  # None: the space's selection rule
    contract_axes: str | None = None  # None: the space's contraction rule

    @property
    def selection(self) -> str:
        return self.criterion or self.space.selection

    @property
    def contraction(self) -> str:
        return self.contract_axes or self.space.contraction


@dataclass(frozen=True)
class Resources:
    """Where trials run; free to change between sessions."""

    address: str | None = None
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None
    max_failures: int = 1


@dataclass(frozen=True)
class DataInfo:
    spec: str
    root: Path
    num_classes: int
    train_videos: int
    val_videos: int

    def log_entry(self) -> dict[str, Any]:
        return {"root": self.spec if self.spec == "synthetic" else str(self.root), "num_classes": self.num_classes,
                "train_videos": self.train_videos, "val_videos": self.val_videos}


@dataclass
class SearchOutcome:
    run_dir: Path
    state: SearchState
    target_gflops: float
    table: list[str]
    files: list[Path] = field(default_factory=list)
    already_finished: bool = False


# --- input checks ------------------------------------------------------------------------------
def check_target(target: float, space: SearchSpace, num_classes: int = 1) -> None:
    """A target at or below zero, or below the seed, is refused before anything starts.

    Called once before the data is read (with the fewest classes, a lower bound) and again
    with the dataset's class count, which sets the classifier's share of the GFLOPs.
    """
    if not (isinstance(target, (int, float)) and math.isfinite(target) and target > 0):
        raise ConfigError(f"--target-gflops must be a positive number, got {target!r}")
    seed_gflops = estimate_gflops(space.seed, num_classes)
    if target < seed_gflops:
        at_least = " at least" if num_classes == 1 else ""
        raise ConfigError(f"--target-gflops {target:g} is below the seed's{at_least} {seed_gflops:.4f} GFLOPs "
                          f"({space.seed.short()}); nothing to search")


def check_choices(criterion: str | None, contract_axes: str | None) -> None:
    if criterion is not None and criterion not in CRITERIA:
        raise ConfigError(f"--criterion must be one of {', '.join(CRITERIA)}, got '{criterion}'")
    if contract_axes is not None and contract_axes not in CONTRACTIONS:
        raise ConfigError(f"--contract-axes must be one of {', '.join(CONTRACTIONS)}, got '{contract_axes}'")


def check_new_run_dir(run_dir: Path) -> None:
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise X3DSearchError(f"run dir {run_dir} already exists and is not empty; continue it with "
                             f"`x3dsearch resume {run_dir}` or pick another --run-dir")


def default_run_dir() -> Path:
    return Path("runs") / _dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")


def resolve_data_info(spec: str) -> DataInfo:
    from ..data import class_names, load_split, resolve_data

    root = resolve_data(spec)
    return DataInfo(spec=spec, root=root, num_classes=len(class_names(root)),
                    train_videos=len(load_split(root, "train")), val_videos=len(load_split(root, "val")))


def _versions() -> dict[str, str]:
    import fvcore  # noqa: F401 - version lookup only
    import ray
    import torch
    from importlib.metadata import PackageNotFoundError, version

    out = {"x3dsearch": __version__, "python": platform.python_version(), "torch": str(torch.__version__),
           "ray": str(ray.__version__)}
    for name in ("fvcore", "decord", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


# --- selection ---------------------------------------------------------------------------------
def select(candidates: list[TrialRecord], start: TrialRecord, criterion: str) -> TrialRecord:
    """Best usable candidate: top-1 (ties to lower GFLOPs), or top-1 gained per added GFLOP."""
    usable = [c for c in candidates if c.usable]
    if not usable:
        raise ValueError("no usable candidate")
    if criterion == "gain-per-gflop" and start.top1 is not None:
        def key(c: TrialRecord) -> tuple:
            return ((c.top1 - start.top1) / max(c.gflops - start.gflops, 1e-12), -c.gflops)
    else:
        if criterion == "gain-per-gflop":
            log.warning("the start model has no top-1; selecting by top-1")

        def key(c: TrialRecord) -> tuple:
            return (c.top1, -c.gflops)
    return max(usable, key=key)  # max keeps the first of equals: the space's axis order


# --- the search --------------------------------------------------------------------------------
class Search:
    """One session of a search in ``run_dir`` (new or resumed)."""

    def __init__(self, run_dir: Path, settings: SearchSettings, resources: Resources, budget: Budget,
                 data: DataInfo, state: SearchState, cluster: Cluster, placement: tuple[float, float],
                 session_start: float | None = None):
        self.run_dir = run_dir
        self.settings = settings
        self.space = settings.space
        self.resources = resources
        self.budget = budget
        self.data = data
        self.state = state
        self.target = settings.target_gflops
        self.session_start = session_start if session_start is not None else time.monotonic()
        self.cluster = cluster
        self.cpus_per_trial, self.gpus_per_trial = placement
        self.eta = EtaModel(cluster.slots(*placement))
        self._running_since: dict[str, float] = {}
        self._experiment: dict[str, TrialRecord] = {}
        self._eta_future: Callable[[], list[float]] = lambda: []
        for record in state.trials():
            if record.finished and record.train_time_s:
                self.eta.add(record.gflops, record.train_time_s)

    # --- bookkeeping --------------------------------------------------------------------------
    @property
    def live_wall_s(self) -> float:
        return time.monotonic() - self.session_start

    @property
    def info(self) -> pathlog.RunInfo:
        return pathlog.RunInfo(target_gflops=self.target, seed=self.settings.seed, space=self.space.name,
                               budget=self.budget.name, data=self.data.log_entry())

    def save(self, interrupted: bool = False) -> None:
        self.state.save(self.run_dir, self.live_wall_s)
        pathlog.write_path_log(self.run_dir, self.state, self.info, self.live_wall_s, interrupted)

    def _timed_flops(self, fn: Callable[[], Any]) -> Any:
        started = time.monotonic()
        try:
            return fn()
        finally:
            self.state.cost.flop_count_s += time.monotonic() - started

    def _record(self, name: str, proposal: Proposal) -> TrialRecord:
        params = self._timed_flops(lambda: count_params_m(proposal.factors, self.data.num_classes))
        return TrialRecord(name=name, axis=proposal.axis, factors=proposal.factors, gflops=proposal.gflops,
                           params_m=params)

    # --- the loop -----------------------------------------------------------------------------
    def run(self) -> SearchState:
        """One session; the caller owns the Ray cluster."""
        self.state.sessions += 1
        self.state.cost.ray_start_s += self.cluster.start_s
        self.ctx = TrialContext(data=str(self.data.root), budget=self.budget.to_dict(), seed=self.settings.seed,
                                threads=max(1, int(self.cpus_per_trial)),
                                device="cuda" if self.gpus_per_trial > 0 else "cpu")
        log.info("Ray %s: %g CPUs, %g GPUs (%.1f s)", f"cluster at {self.cluster.address}" if self.cluster.address
                 else "started locally", self.cluster.cpus, self.cluster.gpus, self.cluster.start_s)
        log.info("trials: %g CPU, %g GPU each, up to %d at once; budget %s; data %s (%d classes, %d train / %d val)",
                 self.cpus_per_trial, self.gpus_per_trial, self.eta.slots, self.budget.name, self.data.root,
                 self.data.num_classes, self.data.train_videos, self.data.val_videos)
        interrupted = True
        try:
            self.save()
            self._expand()
            self._contract()
            self._finish()
            interrupted = False
        finally:
            if interrupted:
                self.save(interrupted=True)
            self.state.cost.wall_s += self.live_wall_s
            self.session_start = time.monotonic()
            self.state.save(self.run_dir)
        return self.state

    def _reached(self, record: TrialRecord) -> bool:
        return record.gflops >= self.target * (1.0 - self.space.tolerance)

    def _expand(self) -> None:
        while True:
            step = self.state.open_step()
            if step is None:
                if self.state.contraction is not None or self.state.stop_reason is not None:
                    return
                current = self.state.current()
                if self._reached(current):
                    return
                step = self._new_step(current)
                if step is None:
                    return
            self._run_step(step)

    def _new_step(self, current: TrialRecord) -> StepRecord | None:
        number = len(self.state.steps) + 1
        proposals, skips = self._timed_flops(lambda: propose_step(current.factors, self.space,
                                                                  self.data.num_classes))
        for skip in skips:
            log.info("step %d: %s skipped: %s", number, skip.axis, skip.reason)
        if not proposals:
            self.state.stop_reason = (f"no axis can expand {current.factors.short()} any further "
                                      f"(bounds of the space reached)")
            log.warning("%s; stopping at %.4f GFLOPs", self.state.stop_reason, current.gflops)
            self.save()
            return None
        step = StepRecord(step=number, start=current.name,
                          candidates=[self._record(f"s{number:02d}-{p.axis}", p) for p in proposals],
                          skipped=[{"axis": s.axis, "reason": s.reason} for s in skips])
        self.state.steps.append(step)
        self.save()
        return step

    def _run_step(self, step: StepRecord) -> None:
        start = self.state.trial(step.start)
        goal = self.space.expansion_rate * start.gflops
        title = (f"step {step.step}: expand {start.factors.short()} ({start.gflops:.4f} GFLOPs, top-1 "
                 f"{_top1(start.top1)}) towards x{self.space.expansion_rate:g} = {goal:.4f} GFLOPs; "
                 f"target {self.target:g}")
        extra = [self.state.seed] if step.step == 1 else []
        records = extra + step.candidates
        mean = sum(c.gflops for c in step.candidates) / len(step.candidates)
        self._eta_future = lambda: future_trials(mean, self.target, self.space.expansion_rate,
                                                 len(self.space.axes), self.space.tolerance)
        self._run_trials(f"step{step.step:02d}", title, records, start)
        if not any(c.usable for c in step.candidates):
            errors = [f"{c.axis}: {c.error or c.status}" for c in step.candidates]
            self.save()
            raise X3DSearchError(f"every candidate of step {step.step} failed ({'; '.join(errors)[:300]}); "
                                 f"the state is kept: fix the cause and run `x3dsearch resume {self.run_dir}`")
        chosen = select(step.candidates, start, self.settings.selection)
        step.chosen, step.done = chosen.axis, True
        self.save()
        log.info("step %d: chose %s -> %s, %.4f GFLOPs (x%.2f), top-1 %s", step.step, chosen.axis,
                 chosen.factors.short(), chosen.gflops, chosen.gflops / start.gflops, _top1(chosen.top1))

    # --- contraction --------------------------------------------------------------------------
    def _contract(self) -> None:
        if self.state.stop_reason is not None and self.state.contraction is None:
            return
        current = self.state.current()
        if self.state.contraction is None:
            if current.gflops <= self.target:
                return
            last = next(s for s in reversed(self.state.steps) if s.done)
            start = self.state.trial(last.start)
            axes = [last.chosen] + ([a.name for a in self.space.axes if a.name != last.chosen]
                                    if self.settings.contraction == "all" else [])
            found: list[Proposal] = []
            skipped: list[dict[str, str]] = []
            for name in axes:
                result = self._timed_flops(lambda n=name: contract(self.space.axis(n), start.factors, self.space,
                                                                    self.data.num_classes, self.target))
                if isinstance(result, Skip):
                    skipped.append({"axis": result.axis, "reason": result.reason})
                    log.info("contraction along %s: nothing fits (%s)", result.axis, result.reason)
                elif all(result.factors != p.factors for p in found):
                    found.append(result)
            self.state.contraction = ContractionRecord(
                overshoot=current.name, start=start.name, axis=last.chosen,
                candidates=[self._record(f"contract-{p.axis}", p) for p in found], skipped=skipped)
            self.save()
        record = self.state.contraction
        if record.done:
            return
        overshoot = self.state.trial(record.overshoot)
        start = self.state.trial(record.start)
        if record.candidates:
            title = (f"contraction: {overshoot.factors.short()} overshot the {self.target:g} GFLOPs target at "
                     f"{overshoot.gflops:.4f}; shrink step {len(self.state.steps)}'s {record.axis} "
                     f"expansion of {start.factors.short()} back under it")
            self._eta_future = lambda: []
            self._run_trials("contraction", title, record.candidates, start)
        usable = [c for c in record.candidates if c.usable]
        if usable:
            kept = select(usable, start, self.settings.selection)
            record.chosen = kept.name
            log.info("contraction: kept %s -> %s, %.4f GFLOPs, top-1 %s", kept.axis, kept.factors.short(),
                     kept.gflops, _top1(kept.top1))
        else:
            log.warning("contraction: no setting at most the target trained successfully; the final model is "
                        "the last one under the target, %s", start.factors.short())
        record.done = True
        self.save()

    # --- the end ------------------------------------------------------------------------------
    def _final_record(self) -> TrialRecord:
        c = self.state.contraction
        if c is not None:
            return self.state.trial(c.chosen) if c.chosen else self.state.trial(c.start)
        return self.state.current()

    def _finish(self) -> None:
        final = self._final_record()
        self.state.final = final.name
        self.state.status = "finished"
        pathlog.write_final_model(self.run_dir, final, self.data.num_classes, self.target)
        self.save()
        self._plot()
        log.info("search finished: %s, %.4f GFLOPs (%.1f%% of the %g target), top-1 %s", final.factors.short(),
                 final.gflops, 100 * final.gflops / self.target, self.target, _top1(final.top1))

    def _plot(self) -> None:
        if self.state.steps:
            write_frontier(self.run_dir)

    # --- running trials -----------------------------------------------------------------------
    def _run_trials(self, experiment: str, title: str, records: list[TrialRecord], start: TrialRecord) -> None:
        """Train every record that has no final result yet (failed ones are retried)."""
        todo = [r for r in records if r.status not in ("ok", "diverged")]
        for r in todo:
            r.status = PENDING
        self._experiment = {r.name: r for r in records}
        rows = [Row(r.name, r.axis or SEED_TRIAL, r.factors.short(), r.gflops,
                    r.gflops / start.gflops if r.axis else None, r.status, r.top1) for r in records]
        table = LiveTable(title, rows, self._eta)
        if todo:
            name = self._experiment_name(experiment)
            jobs = [Job(r.name, r.factors.to_dict(), str((self.run_dir / r.out_dir).resolve())) for r in todo]
            cpus = self._trial_cpus(len(records))
            ctx = dataclasses.replace(self.ctx, threads=max(1, int(cpus)))
            started = time.monotonic()
            try:
                run_experiment(name, jobs, ctx, (self.run_dir / TRIALS_DIR).resolve(), cpus,
                               self.gpus_per_trial, self.resources.max_failures,
                               lambda event, job, payload: self._on_event(table, event, job, payload))
            finally:
                self.state.cost.experiments_s += time.monotonic() - started
            for r in todo:
                if not r.finished:  # Tune reported nothing at all for it
                    r.status, r.error = "failed", r.error or "the trial never reported"
        table.close()
        self.save()

    def _trial_cpus(self, trials: int) -> float:
        """CPUs per trial for an experiment of ``trials`` trials: on CPU-only runs without an
        explicit --cpus-per-trial, an experiment too small to fill the cluster (a contraction)
        spreads it over its trials. It depends on the experiment's size, not on how many trials
        are left, so a resumed trial keeps its thread count."""
        cpus = self.cpus_per_trial
        if self.resources.cpus_per_trial is None and self.gpus_per_trial == 0 and trials < self.eta.slots:
            cpus = max(cpus, math.floor(self.cluster.cpus / trials))
        return cpus

    def _experiment_name(self, base: str) -> str:
        storage = self.run_dir / TRIALS_DIR
        if not (storage / base).exists():
            return base
        attempt = 2
        while (storage / f"{base}-attempt{attempt}").exists():
            attempt += 1
        return f"{base}-attempt{attempt}"

    def _on_event(self, table: LiveTable, event: str, name: str, payload: dict[str, Any]) -> None:
        record = self._experiment.get(name)
        if record is None:
            return
        if event == "start":
            record.status = RUNNING
            self._running_since[name] = time.monotonic()
            self.state.save(self.run_dir, self.live_wall_s)
            table.update(name, RUNNING)
        elif event == "epoch":
            progress = payload.get("progress")
            table.update(name, RUNNING, detail=f"{100 * progress:.0f}%" if isinstance(progress, float) else "")
        elif event == "done":
            self._apply(record, payload["outcome"])
            self._running_since.pop(name, None)
            self.save()
            table.update(name, record.status, record.top1, error=record.error)

    def _apply(self, record: TrialRecord, outcome: Outcome) -> None:
        result = outcome.result
        record.status = outcome.status
        record.error = outcome.error if outcome.status != "ok" else None
        record.top1, record.top5 = result.get("top1"), result.get("top5")
        record.train_time_s = result.get("wall_time_s", record.train_time_s)
        record.train_macs = float(result.get("train_macs") or 0.0)
        record.clips_seen = int(result.get("clips_seen") or 0)
        record.clips_per_s = result.get("train_clips_per_s")
        record.epochs_done = int(result.get("epochs_done") or 0)
        counted = result.get("gflops")
        if counted and abs(counted - record.gflops) > 1e-6 * record.gflops:
            log.warning("%s: fvcore counts %.6f GFLOPs, the closed-form count %.6f; recording fvcore's",
                        record.name, counted, record.gflops)
            record.gflops = float(counted)
        if result.get("params_m"):
            record.params_m = float(result["params_m"])
        if outcome.session:
            record.sessions.append(outcome.session)
        if record.usable:
            self.eta.add(record.gflops, record.train_time_s)

    def _eta(self) -> float | None:
        now = time.monotonic()
        pending = [r.gflops for r in self._experiment.values() if r.status == PENDING]
        running = [(r.gflops, now - self._running_since.get(r.name, now)) for r in self._experiment.values()
                   if r.status == RUNNING]
        return self.eta.eta(pending + self._eta_future(), running)


def _top1(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


# --- entry points ------------------------------------------------------------------------------
def _config(settings: SearchSettings, resources: Resources, budget: Budget, data: DataInfo) -> dict[str, Any]:
    return {"x3dsearch": __version__, "created": _dt.datetime.now().isoformat(timespec="seconds"),
            "target_gflops": settings.target_gflops,
            "data": {"spec": data.spec, **data.log_entry(), "root": str(data.root)},
            "budget": budget.to_dict(), "space": settings.space.to_dict(), "seed": settings.seed,
            "criterion": settings.selection, "contract_axes": settings.contraction,
            "resources": {"address": resources.address, "cpus_per_trial": resources.cpus_per_trial,
                          "gpus_per_trial": resources.gpus_per_trial, "max_failures": resources.max_failures},
            "versions": _versions()}


def _outcome(run_dir: Path, state: SearchState, target: float, already: bool = False) -> SearchOutcome:
    files = [run_dir / name for name in (CONFIG_NAME, STATE_NAME, pathlog.PATH_LOG_NAME, pathlog.FINAL_MODEL_NAME,
                                         FRONTIER_NAME, LOG_NAME, TRIALS_DIR)]
    return SearchOutcome(run_dir=run_dir, state=state, target_gflops=target,
                         table=pathlog.path_table(state, target), files=[f for f in files if f.exists()],
                         already_finished=already)


def expand(settings: SearchSettings, resources: Resources, run_dir: Path | None = None,
           console: bool = True) -> SearchOutcome:
    """Start a new search in ``run_dir`` (default ``runs/<date-time>``).

    Every check that can fail (target, options, run dir, budget, address, data, resources)
    runs before the run directory is created.
    """
    check_target(settings.target_gflops, settings.space)
    check_choices(settings.criterion, settings.contract_axes)
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir()
    check_new_run_dir(run_dir)
    budget_spec = settings.budget or settings.space.budget
    load_budget(budget_spec, cuda=False)  # a bad name fails now; "auto" is resolved once trials are placed
    prepare_ray(resources.address)
    data = resolve_data_info(settings.data)
    # The search's clock starts once the data is ready: generating the synthetic dataset on
    # first use is a one-off cache fill, not search overhead.
    session_start = time.monotonic()
    check_target(settings.target_gflops, settings.space, data.num_classes)
    cluster = start_ray(resources.address)
    lock: RunLock | None = None
    try:
        placement = place_trials(cluster, resources.cpus_per_trial, resources.gpus_per_trial)
        budget = load_budget(budget_spec, cuda=placement[1] > 0)
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = RunLock(run_dir)
        setup_logging(run_dir / LOG_NAME, console=console)
        route_ray_logs(run_dir / LOG_NAME)
        seed = settings.space.seed
        seed_record = TrialRecord(name=SEED_TRIAL, axis=None, factors=seed,
                                  gflops=estimate_gflops(seed, data.num_classes),
                                  params_m=count_params_m(seed, data.num_classes))
        atomic_write_yaml(run_dir / CONFIG_NAME, _config(settings, resources, budget, data))
        log.info("search in %s: target %g GFLOPs from %s (%.4f GFLOPs), space %s, budget %s, seed %d",
                 run_dir, settings.target_gflops, seed.short(), seed_record.gflops, settings.space.name,
                 budget.name, settings.seed)
        search = Search(run_dir, settings, resources, budget, data, SearchState(seed=seed_record), cluster,
                        placement, session_start)
        search.run()
    finally:
        stop_ray(cluster)
        if lock is not None:
            lock.release()
    return _outcome(run_dir, search.state, settings.target_gflops)


class RunLock:
    """One search process per run directory: an exclusive ``flock`` on ``.lock``, taken at once
    and released on exit (the OS releases it when a killed process dies)."""

    def __init__(self, run_dir: Path):
        import fcntl

        self.fd: int | None = os.open(Path(run_dir) / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.release()
            raise X3DSearchError(f"run dir {run_dir} is in use by another x3dsearch process") from None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def load_run_config(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / CONFIG_NAME
    if not Path(run_dir).is_dir():
        raise X3DSearchError(f"run dir {run_dir} does not exist")
    if not path.is_file():
        raise X3DSearchError(f"{run_dir} is not a search run (no {CONFIG_NAME})")
    data = read_yaml(path, error=X3DSearchError)
    if not isinstance(data, dict) or "space" not in data or "target_gflops" not in data:
        raise X3DSearchError(f"{path} is not a search config")
    return data


def resume(run_dir: Path, settings: SearchSettings | None = None, overrides: dict[str, Any] | None = None,
           console: bool = True, given: frozenset[str] = frozenset()) -> SearchOutcome:
    """Continue the search in ``run_dir``.

    ``settings``/``given``: what ``expand --resume`` was called with and which options the
    user set explicitly; those must agree with the stored run. ``overrides`` may change
    where trials run (address, cpus_per_trial, gpus_per_trial, max_failures).
    """
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    state = SearchState.load(run_dir)
    space = SearchSpace.from_dict(config["space"], label=f"{run_dir / CONFIG_NAME} space")
    stored = SearchSettings(target_gflops=float(config["target_gflops"]), space=space,
                            data=config["data"]["spec"], budget=None, seed=int(config["seed"]),
                            criterion=config["criterion"], contract_axes=config["contract_axes"])
    if settings is not None:
        _check_same(run_dir, stored, settings, config, given)
    if state.status == "finished":
        if not (run_dir / FRONTIER_NAME).is_file():  # e.g. the process died while drawing it
            write_frontier(run_dir)
        return _outcome(run_dir, state, stored.target_gflops, already=True)
    res = {**config.get("resources", {}), **(overrides or {})}
    resources = Resources(address=res.get("address"), cpus_per_trial=res.get("cpus_per_trial"),
                          gpus_per_trial=res.get("gpus_per_trial"), max_failures=int(res.get("max_failures", 1)))
    lock = RunLock(run_dir)
    cluster = None
    try:
        prepare_ray(resources.address)
        data = resolve_data_info(stored.data)
        session_start = time.monotonic()  # as in expand: after the data is ready
        budget = Budget.from_dict(config["budget"])
        cluster = start_ray(resources.address)
        placement = place_trials(cluster, resources.cpus_per_trial, resources.gpus_per_trial)
        setup_logging(run_dir / LOG_NAME, console=console)
        route_ray_logs(run_dir / LOG_NAME)
        log.info("resuming the search in %s (session %d): %d steps so far", run_dir, state.sessions + 1,
                 len(state.steps))
        search = Search(run_dir, stored, resources, budget, data, state, cluster, placement, session_start)
        search.run()
    finally:
        stop_ray(cluster)
        lock.release()
    return _outcome(run_dir, search.state, stored.target_gflops)


def write_frontier(run_dir: Path) -> None:
    """Draw ``frontier.png`` from the path log; a figure is never worth failing a search for."""
    from ..report.plot import plot_runs

    try:
        plot_runs([run_dir], run_dir / FRONTIER_NAME, reference=None)
    except X3DSearchError as exc:
        log.warning("%s not written: %s", FRONTIER_NAME, exc)


def _check_same(run_dir: Path, stored: SearchSettings, given_settings: SearchSettings, config: dict[str, Any],
                given: frozenset[str]) -> None:
    def refuse(what: str, old: Any, new: Any) -> X3DSearchError:
        return X3DSearchError(f"refusing to resume {run_dir}: it searches with {what} {old}, not {new} "
                              f"(start a new --run-dir for another search)")

    if "target_gflops" in given and not math.isclose(given_settings.target_gflops, stored.target_gflops):
        raise refuse("target", f"{stored.target_gflops:g} GFLOPs", f"{given_settings.target_gflops:g}")
    if "space" in given and given_settings.space.to_dict() != stored.space.to_dict():
        raise refuse("space", f"'{stored.space.name}'", f"'{given_settings.space.name}' (another space)")
    if "seed" in given and given_settings.seed != stored.seed:
        raise refuse("seed", stored.seed, given_settings.seed)
    if "data" in given and given_settings.data != stored.data:
        raise refuse("data", stored.data, given_settings.data)
    if "criterion" in given and given_settings.selection != stored.selection:
        raise refuse("criterion", stored.selection, given_settings.selection)
    if "contract_axes" in given and given_settings.contraction != stored.contraction:
        raise refuse("--contract-axes", stored.contraction, given_settings.contraction)
    if "budget" in given and given_settings.budget is not None:
        budget = load_budget(given_settings.budget)
        if budget.name != config["budget"].get("name"):
            raise refuse("budget", config["budget"].get("name"), budget.name)
