"""Running one batch of trials (a step's candidates, a contraction) and keeping their records.

:class:`TrialRunner` hands the unfinished trials to Ray Tune as one experiment,
hears each trial start, progress and finish, stores the trainer's result in
the trial record as it is, saves the run after every change, and keeps the
live table and the search's ETA up to date.
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Callable, Protocol

from ..runlog import Clock, Trial, TrialStatus
from ..train.folder import TrainingFolder
from ..train.result import TrainResult
from ..utils.io import DISK_FULL_TEXT, DiskFull
from ..utils.logging import get_logger
from .cluster import Cluster
from .inherit import parent_weights
from .progress import EtaModel, LiveTable, Row
from .trainable import Job, TrialContext, run_experiment

log = get_logger("search")


def is_disk_full(error: str) -> bool:
    """Whether a trial's error is a full disk (its own message, or the OS's from a library's write)."""
    text = error.lower()
    return DISK_FULL_TEXT in text or "disk quota exceeded" in text


class TrialFolders(Protocol):
    """Where trials keep their training folders and Tune its storage (a run or a calibration)."""

    @property
    def path(self) -> Path: ...

    @property
    def trials(self) -> Path: ...

    def trial_dir(self, name: str) -> Path: ...


class TrialRunner:
    """Trains trials on the session's cluster; one instance per search session."""

    def __init__(self, run_dir: TrialFolders, cluster: Cluster, placement: tuple[float, float], explicit_cpus: bool,
                 max_failures: int, ctx: TrialContext, clock: Clock, save: Callable[[], None],
                 history: list[Trial], keep: str = "models"):
        self.run_dir = run_dir
        self.cluster = cluster
        self.cpus_per_trial, self.gpus_per_trial = placement
        self.explicit_cpus = explicit_cpus
        self.max_failures = max_failures
        self.ctx = ctx
        self.clock = clock
        self.save = save
        self.keep = keep
        self.eta = EtaModel(cluster.slots(*placement))
        for trial in history:
            if trial.finished and trial.wall_time_s and trial.gflops is not None:
                self.eta.add(trial.gflops, trial.wall_time_s)
        self.future: Callable[[], list[float]] = lambda: []
        self._batch: dict[str, Trial] = {}
        self._running_since: dict[str, float] = {}
        self._table: LiveTable | None = None
        #: A finished trial's score for the table (the search's judge sets it; None: no score column).
        self.scorer: Callable[[Trial], str | None] = lambda trial: None
        self.score_title = "score [90% CI]"
        #: Told after each finished training is saved (the session rewrites report.html).
        self.trial_saved: Callable[[], None] = lambda: None

    @property
    def live_table(self) -> LiveTable | None:
        """The table of the batch in training, None once every trial of it has finished."""
        if self._table is None or all(t.finished for t in self._batch.values()):
            return None
        return self._table

    def run(self, experiment: str, title: str, trials: list[Trial], start: Trial | None,
            ctx: TrialContext | None = None) -> None:
        """Train every trial that has no final result yet (failed ones are retried), each with its own
        seed; ``start`` is the model the table's ratios are to, ``ctx`` replaces the runner's budget."""
        todo = [t for t in trials if t.needs_training]
        inits = {t.name: parent_weights(t, self.run_dir.trial_dir) for t in todo}
        for t in todo:
            t.status = TrialStatus.PENDING
        self._batch = {t.name: t for t in trials}
        rows = [Row(t.name, (t.axis or t.name) + (f" #{t.repeat + 1}" if t.repeat else ""), t.model.factors.short(),
                    t.model.gflops, t.model.gflops / start.model.gflops if t.axis and start is not None else None,
                    str(t.status), t.top1)
                for t in trials]
        self._table = LiveTable(title, rows, self._eta, score_title=self.score_title)
        for t in todo:  # a damaged record stops the search here, naming the file; no trial trains on it
            folder = TrainingFolder(self.run_dir.trial_dir(t.name))
            folder.read_result()
            folder.check_checkpoint()
        if todo:
            home = str(self.run_dir.path.resolve())
            jobs = [Job(t.name, t.model.factors.to_dict(), str(self.run_dir.trial_dir(t.name).resolve()),
                        _seed(t), home, str(inits[t.name]) if inits[t.name] else None) for t in todo]
            cpus = self._trial_cpus(len(trials))
            ctx = dataclasses.replace(ctx or self.ctx, threads=max(1, int(cpus)))
            started = time.monotonic()
            try:
                run_experiment(self._experiment_name(experiment), jobs, ctx, self.run_dir.trials.resolve(), cpus,
                               self.gpus_per_trial, self.max_failures, self)
            finally:
                self.clock.experiments_s += time.monotonic() - started
            for t in todo:
                if not t.finished:  # Tune reported nothing at all for it
                    t.status, t.error = TrialStatus.FAILED, t.error or "the trial never reported"
            self._stop_on_full_disk(todo)
        self._table.close()
        self.save()

    def _stop_on_full_disk(self, trials: list[Trial]) -> None:
        """A training the disk had no room for did not fail: it is left to train again, and the search
        stops (a failure recorded now would change the step's decision)."""
        full = [t for t in trials if t.status == TrialStatus.FAILED and t.error and is_disk_full(t.error)]
        if not full:
            return
        for t in full:
            t.status, t.error, t.result = TrialStatus.PENDING, None, None
        self.table.close()
        self.save()
        raise DiskFull(f"{DISK_FULL_TEXT} for {self.run_dir.path} ({len(full)} trainings could not write, first "
                       f"{full[0].name}): free some space, then run the command again (`x3dsearch resume "
                       f"{self.run_dir.path}` for a search); they train again")

    @property
    def table(self) -> LiveTable:
        """The live table of the batch ``run`` is training (Tune's callbacks come only then)."""
        if self._table is None:
            raise RuntimeError("no batch of trials is running")
        return self._table

    def _trial_cpus(self, trials: int) -> float:
        """CPUs per trial for an experiment of ``trials`` trials: on CPU-only runs without an
        explicit --cpus-per-trial, an experiment too small to fill the cluster (a contraction)
        spreads it over its trials. It depends on the experiment's size, not on how many trials
        are left, so a resumed trial keeps its thread count."""
        cpus = self.cpus_per_trial
        if not self.explicit_cpus and self.gpus_per_trial == 0 and trials < self.eta.slots:
            cpus = max(cpus, math.floor(self.cluster.cpus / trials))
        return cpus

    def _experiment_name(self, base: str) -> str:
        storage = self.run_dir.trials
        if not (storage / base).exists():
            return base
        attempt = 2
        while (storage / f"{base}-attempt{attempt}").exists():
            attempt += 1
        return f"{base}-attempt{attempt}"

    # --- what Tune tells (TrialListener) --------------------------------------------------------
    def started(self, name: str) -> None:
        trial = self._batch.get(name)
        if trial is None:
            return
        trial.status = TrialStatus.RUNNING
        self._running_since[name] = time.monotonic()
        self.save()
        self.table.update(name, str(TrialStatus.RUNNING))

    def progressed(self, name: str, fraction: float | None) -> None:
        if name in self._batch:
            self.table.update(name, str(TrialStatus.RUNNING),
                               detail=f"{100 * fraction:.0f}%" if fraction is not None else "")

    def finished(self, name: str, result: TrainResult | None, error: str | None,
                 session: list[float] | None, node: str | None) -> None:
        trial = self._batch.get(name)
        if trial is None:
            return
        trial.result = result
        trial.node = node
        trial.status = TrialStatus(result.status) if result is not None else TrialStatus.FAILED
        trial.error = error if trial.status != TrialStatus.OK else None
        closed_form = trial.model.gflops
        if result is not None and result.gflops and abs(result.gflops - closed_form) > 1e-6 * closed_form:
            log.warning("%s: fvcore counts %.6f GFLOPs, the closed-form count %.6f; recording fvcore's",
                        name, result.gflops, closed_form)
            trial.gflops = float(result.gflops)
        if result is not None and result.params_m:
            trial.params_m = float(result.params_m)
        if session:
            trial.sessions.append(session)
        if trial.evaluated:
            self.eta.add(trial.model.gflops, trial.wall_time_s)
        self._running_since.pop(name, None)
        self.save()
        if self.keep != "all":  # the result is recorded: resume needs the checkpoint no more
            TrainingFolder(self.run_dir.trial_dir(name)).drop_checkpoint()
        self.table.update(name, str(trial.status), trial.top1, error=trial.error, score=self.scorer(trial))
        self.trial_saved()

    def _eta(self) -> float | None:
        now = time.monotonic()
        pending = [t.model.gflops for t in self._batch.values() if t.status == TrialStatus.PENDING]
        running = [(t.model.gflops, now - self._running_since.get(t.name, now)) for t in self._batch.values()
                   if t.status == TrialStatus.RUNNING]
        return self.eta.eta(pending + self.future(), running)


def _seed(trial: Trial) -> int:
    """The trial's training seed (the search gives every trial one before it trains: ``Search._seeded``)."""
    if trial.seed is None:
        raise ValueError(f"trial '{trial.name}' has no training seed")
    return trial.seed
