"""``state.json``: everything a search needs to continue after ``kill -9``.

Written atomically after every trial result and every step. It holds only
paths relative to the run directory, so a moved run resumes. Trial records
are the unit of work: a record whose status is final is never trained again.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import X3DSearchError
from ..factors import Factors
from ..utils.io import atomic_write_json

STATE_NAME = "state.json"
STATE_VERSION = 1
CANDIDATES_DIR = "candidates"
#: Trial statuses; the last three are final. "diverged" and "failed" trials never win a step.
PENDING, RUNNING = "pending", "running"
FINAL_STATUSES = ("ok", "diverged", "failed")


@dataclass
class TrialRecord:
    """One training: the seed, a step's candidate or a contraction candidate."""

    name: str                      # also its folder: candidates/<name>
    axis: str | None               # None for the seed
    factors: Factors
    gflops: float
    params_m: float
    status: str = PENDING
    top1: float | None = None
    top5: float | None = None
    train_time_s: float | None = None
    error: str | None = None
    train_macs: float = 0.0
    clips_seen: int = 0
    clips_per_s: float | None = None
    epochs_done: int = 0
    # Wall-clock [start, end] of each session that trained it (for the cost split).
    sessions: list[list[float]] = field(default_factory=list)

    @property
    def out_dir(self) -> str:
        return f"{CANDIDATES_DIR}/{self.name}"

    @property
    def finished(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def usable(self) -> bool:
        return self.status == "ok" and self.top1 is not None

    def summary(self) -> dict[str, Any]:
        """The model as a step's ``from`` or the search's ``final`` sees it."""
        return {"factors": self.factors.to_dict(), "gflops": self.gflops, "params_m": self.params_m,
                "top1": self.top1}

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["factors"] = self.factors.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrialRecord":
        values = dict(data)
        values["factors"] = Factors.from_dict(values["factors"])
        return cls(**values)


@dataclass
class StepRecord:
    step: int
    start: str                     # name of the trial record this step expands
    candidates: list[TrialRecord]
    skipped: list[dict[str, str]] = field(default_factory=list)  # [{axis, reason}]
    chosen: str | None = None      # axis
    done: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "start": self.start, "candidates": [c.to_dict() for c in self.candidates],
                "skipped": self.skipped, "chosen": self.chosen, "done": self.done}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StepRecord":
        return cls(step=data["step"], start=data["start"],
                   candidates=[TrialRecord.from_dict(c) for c in data["candidates"]],
                   skipped=list(data.get("skipped", [])), chosen=data.get("chosen"), done=bool(data["done"]))


@dataclass
class ContractionRecord:
    overshoot: str                 # trial record that went past the target
    start: str                     # trial record the overshooting step expanded
    axis: str                      # the overshooting step's own axis
    candidates: list[TrialRecord]
    skipped: list[dict[str, str]] = field(default_factory=list)
    chosen: str | None = None      # trial name of the kept contraction, None if none is usable
    done: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"overshoot": self.overshoot, "start": self.start, "axis": self.axis,
                "candidates": [c.to_dict() for c in self.candidates], "skipped": self.skipped,
                "chosen": self.chosen, "done": self.done}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ContractionRecord":
        return cls(overshoot=data["overshoot"], start=data["start"], axis=data["axis"],
                   candidates=[TrialRecord.from_dict(c) for c in data["candidates"]],
                   skipped=list(data.get("skipped", [])), chosen=data.get("chosen"), done=bool(data["done"]))


@dataclass
class Cost:
    """Seconds by kind, summed over sessions; training is the union of trial training intervals."""

    wall_s: float = 0.0            # finished sessions only; the live session is added when saving
    flop_count_s: float = 0.0
    ray_start_s: float = 0.0
    experiments_s: float = 0.0     # time inside Tuner.fit (training plus Ray scheduling)


@dataclass
class SearchState:
    seed: TrialRecord
    steps: list[StepRecord] = field(default_factory=list)
    contraction: ContractionRecord | None = None
    final: str | None = None       # trial name of the final model
    status: str = "running"        # running | finished
    stop_reason: str | None = None
    sessions: int = 0
    cost: Cost = field(default_factory=Cost)

    # --- lookups ------------------------------------------------------------------------
    def trials(self) -> list[TrialRecord]:
        out = [self.seed]
        for step in self.steps:
            out.extend(step.candidates)
        if self.contraction is not None:
            out.extend(self.contraction.candidates)
        return out

    def trial(self, name: str) -> TrialRecord:
        for record in self.trials():
            if record.name == name:
                return record
        raise X3DSearchError(f"state.json names an unknown trial '{name}'")

    def current(self) -> TrialRecord:
        """The model the next step expands: the last chosen candidate, or the seed."""
        for step in reversed(self.steps):
            if step.done and step.chosen is not None:
                return next(c for c in step.candidates if c.axis == step.chosen)
        return self.seed

    def open_step(self) -> StepRecord | None:
        return self.steps[-1] if self.steps and not self.steps[-1].done else None

    # --- (de)serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "status": self.status, "stop_reason": self.stop_reason,
                "sessions": self.sessions, "seed": self.seed.to_dict(),
                "steps": [s.to_dict() for s in self.steps],
                "contraction": self.contraction.to_dict() if self.contraction else None,
                "final": self.final, "cost": asdict(self.cost)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SearchState":
        if data.get("version") != STATE_VERSION:
            raise X3DSearchError(f"state.json has version {data.get('version')!r}; this x3dsearch reads "
                                 f"version {STATE_VERSION}")
        return cls(seed=TrialRecord.from_dict(data["seed"]),
                   steps=[StepRecord.from_dict(s) for s in data["steps"]],
                   contraction=ContractionRecord.from_dict(data["contraction"]) if data.get("contraction")
                   else None,
                   final=data.get("final"), status=data["status"], stop_reason=data.get("stop_reason"),
                   sessions=int(data.get("sessions", 0)), cost=Cost(**data.get("cost", {})))

    def save(self, run_dir: Path, live_wall_s: float = 0.0) -> None:
        data = self.to_dict()
        data["cost"]["wall_s"] = self.cost.wall_s + live_wall_s
        atomic_write_json(Path(run_dir) / STATE_NAME, data)

    @classmethod
    def load(cls, run_dir: Path) -> "SearchState":
        path = Path(run_dir) / STATE_NAME
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise X3DSearchError(f"{run_dir} is not a search run (no {STATE_NAME})") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise X3DSearchError(f"{path} is unreadable ({exc})") from None
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise X3DSearchError(f"{path} is malformed ({type(exc).__name__}: {exc})") from None
