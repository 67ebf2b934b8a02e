"""A search as typed records: the run, its steps, the contraction and the cost.

The search keeps one :class:`Run` in memory and saves it after every trial
result, whole in ``state.json`` (what ``resume`` reads) and as the reader's
view in ``expansion_path.yaml`` (:mod:`.logfile`). ``show`` and ``plot`` read
the same records back from the log, or get the search's own in memory.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .decision import Comparison, Decision, Score
from .status import RunStatus, StopReason, TrialStatus
from .trial import SCRATCH, ModelRecord, Trial

#: The paper's six expansion operators, in the order reports list them.
AXES = ("x-fast", "x-temporal", "x-spatial", "x-depth", "x-width", "x-bottleneck")
SEED_TRIAL = "seed"


def step_trial_name(step: int, axis: str) -> str:
    return f"s{step:02d}-{axis}"


def contraction_trial_name(axis: str) -> str:
    return f"contract-{axis}"


def union_seconds(intervals: list[list[float]]) -> float:
    """Length of the union of [start, end] intervals: wall time in which some trial was training."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted((a, b) for a, b in intervals if b > a):
        if start > end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


@dataclass
class Step:
    """One expansion step: the model it starts from and one candidate per axis."""

    step: int
    start: Trial                        # the model this step expands
    candidates: list[Trial]             # trained candidates first, then axes that proposed nothing
    chosen: str | None = None           # axis
    done: bool = False
    recorded_time_s: float | None = None  # from a log; a live step measures its trials' sessions
    decision: Decision | None = None    # why ``chosen`` won, and whether it beat noise
    scores: dict[str, Score] = field(default_factory=dict)  # by trial name, on the videos all could read

    @property
    def trained(self) -> list[Trial]:
        return [c for c in self.candidates if c.status != TrialStatus.SKIPPED]

    @property
    def chosen_candidate(self) -> Trial | None:
        return next((c for c in self.candidates if c.axis == self.chosen), None) if self.chosen else None

    @property
    def time_s(self) -> float | None:
        sessions = [s for c in self.candidates for s in c.sessions]
        return union_seconds(sessions) if sessions else self.recorded_time_s


@dataclass
class Contraction:
    """The overshooting last step shrunk back under the target."""

    overshoot: Trial                    # the model that went past the target
    start: Trial | None                 # the model the overshooting step expanded (None when read from a log)
    axis: str                           # the overshooting step's own axis
    candidates: list[Trial]
    chosen: str | None = None           # trial name of the kept contraction, None if none is usable
    done: bool = False
    decision: Decision | None = None
    scores: dict[str, Score] = field(default_factory=dict)
    vs_overshoot: Comparison | None = None  # the kept model against the one that overshot

    @property
    def kept(self) -> Trial | None:
        return next((c for c in self.candidates if c.name == self.chosen), None) if self.chosen else None

    @property
    def trained(self) -> list[Trial]:
        return [c for c in self.candidates if c.status != TrialStatus.SKIPPED]


#: Baselines drawn at random from the run's space (``baseline --random``) are named random-1, random-2, ...
RANDOM_PREFIX = "random-"


@dataclass
class Baseline:
    """A published (or any given) model trained under the run's own data, budget, seeds and repeats, so
    the search's final model can be compared with it at the same cost (``x3dsearch baseline``)."""

    name: str                           # e.g. x3d-xs
    trial: Trial                        # its trainings (the trial and its repeats)
    score: Score | None = None          # on the videos it and the final model read
    vs_final: Comparison | None = None  # the final model minus this one, paired by video and seed


@dataclass
class Clock:
    """Seconds by kind, summed over sessions (kept in ``state.json``, summarised as :class:`Cost`)."""

    wall_s: float = 0.0             # finished sessions only; the live session is added when saving
    flop_count_s: float = 0.0
    ray_start_s: float = 0.0
    experiments_s: float = 0.0      # time inside Tuner.fit (training plus Ray scheduling)


@dataclass(frozen=True)
class Cost:
    """What the search cost: training multiply-adds and where the wall time went."""

    train_macs: float | None = None
    wall_time_s: float | None = None
    flop_count_s: float | None = None
    ray_s: float | None = None
    train_s: float | None = None    # wall time during which at least one trial was training

    KEYS = ("train_macs", "wall_time_s", "flop_count_s", "ray_s", "train_s")

    def to_dict(self) -> dict[str, float | None]:
        return {k: getattr(self, k) for k in self.KEYS}


@dataclass(frozen=True)
class RunInfo:
    """What a run is about besides its state (from ``config.yaml``)."""

    target_gflops: float | None
    seed: int | None
    space: str | None
    budget: str | None
    data: Mapping[str, Any] | None  # root, num_classes, train_videos, val_videos, test_videos
    complexity: str = "gflops"      # what the target bounds: gflops or latency (ms)
    target_ms: float | None = None
    path: tuple[str, ...] | None = None  # a replay's axes
    proxy_init: str = SCRATCH       # how candidates start: scratch, or inherit (the step start's weights)


@dataclass
class Run:
    info: RunInfo
    seed_trial: Trial
    steps: list[Step] = field(default_factory=list)
    contraction: Contraction | None = None
    final: Trial | None = None
    status: RunStatus | str | None = RunStatus.RUNNING
    stop_reason: StopReason | str | None = None
    stop_detail: str | None = None
    sessions: int = 0
    clock: Clock = field(default_factory=Clock)
    cost: Cost = field(default_factory=Cost)
    baselines: list[Baseline] = field(default_factory=list)
    run_dir: Path | None = None

    # --- what a run log reader asks -----------------------------------------------------------
    @property
    def target_gflops(self) -> float | None:
        return self.info.target_gflops

    @property
    def target(self) -> float | None:
        """The target in its own unit: GFLOPs, or ms for a latency-targeted search."""
        return self.info.target_ms if self.info.complexity == "latency" else self.info.target_gflops

    @property
    def unit(self) -> str:
        return "ms" if self.info.complexity == "latency" else "GFLOPs"

    @property
    def seed(self) -> int | None:
        """The random seed of every training (the seed *model* is :attr:`seed_trial`)."""
        return self.info.seed

    @property
    def space(self) -> str | None:
        return self.info.space

    @property
    def budget(self) -> str | None:
        return self.info.budget

    @property
    def data(self) -> Mapping[str, Any] | None:
        return self.info.data

    @property
    def name(self) -> str:
        return self.run_dir.resolve().name if self.run_dir is not None else "run"

    @property
    def partial(self) -> bool:
        """Still running, interrupted, or finished without a final model: plots say so."""
        return self.status != RunStatus.FINISHED or self.final is None

    @property
    def progress(self) -> str:
        """Where a partial run stands, e.g. ``running, step 4: 2/6 candidates evaluated``."""
        state = str(self.status) if self.status else "partial"
        if not self.steps:
            return f"{state}, no step yet"
        last = self.steps[-1]
        if last.chosen is None:
            done = sum(c.evaluated for c in last.candidates)
            return f"{state}, step {last.step}: {done}/{len(last.candidates)} candidates evaluated"
        if self.final is None:
            return f"{state} after step {last.step}, no final model yet"
        return state

    @property
    def seed_model(self) -> ModelRecord | None:
        return self.steps[0].start.model if self.steps else None

    def candidates(self) -> list[Trial]:
        return [c for s in self.steps for c in s.candidates]

    def evaluated_candidates(self) -> list[Trial]:
        return [c for c in self.candidates() if c.evaluated]

    def path(self) -> list["PathPoint"]:
        """The seed, each finished step's chosen candidate, then the contracted model if any."""
        points: list[PathPoint] = []
        if self.steps:
            points.append(PathPoint("seed", None, None, self.steps[0].start.model))
        for step in self.steps:
            chosen = step.chosen_candidate
            if chosen is not None:
                points.append(PathPoint(str(step.step), step.step, step.chosen, chosen.model, step.time_s,
                                        step.scores.get(chosen.name), step.decision, chosen.heldout))
        c = self.contraction
        if c is not None and c.done and c.kept is not None:
            kept = c.kept
            points.append(PathPoint("contracted", None, kept.axis, kept.model, None, c.scores.get(kept.name),
                                    c.decision, kept.heldout))
        return points

    @property
    def has_heldout(self) -> bool:
        """Whether the data has a held-out split (then kept models carry a held-out top-1)."""
        return bool((self.data or {}).get("test_videos"))

    def evaluated_models(self) -> list[ModelRecord]:
        """Every model with a measured top-1 (seed, candidates, contraction, final), each once."""
        models: list[ModelRecord] = []
        seen: set[tuple[str, float]] = set()
        kept = self.contraction.kept if self.contraction is not None else None
        extra = [kept.model if kept is not None else None, self.final.model if self.final is not None else None]
        for model in [self.seed_model, *(c.model for c in self.evaluated_candidates()), *extra]:
            if model is None or not model.evaluated:
                continue
            key = (model.factors.key(), round(model.gflops, 6))
            if key not in seen:
                seen.add(key)
                models.append(model)
        return models

    # --- what the search asks -----------------------------------------------------------------
    def trials(self) -> list[Trial]:
        """Every trained (or to-be-trained) trial: the seed, the step candidates, the contraction's, and
        their repeats."""
        models = [self.seed_trial]
        for step in self.steps:
            models.extend(step.trained)
        if self.contraction is not None:
            models.extend(self.contraction.trained)
        return [run for model in models for run in model.runs]

    def trial(self, name: str) -> Trial:
        for record in self.trials():
            if record.name == name:
                return record
        raise KeyError(name)

    def current(self) -> Trial:
        """The model the next step expands: the last chosen candidate, or the seed."""
        for step in reversed(self.steps):
            if step.done and step.chosen_candidate is not None:
                return step.chosen_candidate
        return self.seed_trial

    def open_step(self) -> Step | None:
        return self.steps[-1] if self.steps and not self.steps[-1].done else None

    def measure_cost(self, live_wall_s: float = 0.0) -> Cost:
        """The cost so far from the clock and the trials' training sessions."""
        trials = self.trials()
        train_s = union_seconds([s for t in trials for s in t.sessions])
        ray_s = self.clock.ray_start_s + max(0.0, self.clock.experiments_s - train_s)
        return Cost(train_macs=float(sum(t.train_macs or 0.0 for t in trials)),
                    wall_time_s=self.clock.wall_s + live_wall_s, flop_count_s=self.clock.flop_count_s,
                    ray_s=ray_s, train_s=train_s)


@dataclass(frozen=True)
class PathPoint:
    """A model on the chosen path: the seed, each step's choice, then the contracted model."""

    label: str                      # "seed", "1", "2", ..., "contracted"
    step: int | None                # None for the seed and the contraction
    axis: str | None
    model: ModelRecord
    time_s: float | None = None
    score: Score | None = None      # on the videos every candidate of its step read
    decision: Decision | None = None
    heldout_top1: float | None = None
