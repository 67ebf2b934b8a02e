"""The one trial record, read by every consumer (search, state file, run log, ``show``, ``plot``).

Like Optuna's ``FrozenTrial``: a trial is proposed with its factors and
GFLOPs, trained, and then carries the trainer's :class:`TrainResult` exactly
as the trainer returned it. The search keeps it in ``state.json`` (every
field) and the run log writes a reader's view of it (``to_log``); readers of
the log get the same record back, with the fields the log keeps.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..factors import Factors
from ..status import TrialStatus
from ..train.result import TrainResult

#: How a proxy training starts (``--proxy-init``): from the architecture's own random initialisation,
#: or from the trained weights of the model its step expands, grown to the candidate (``--init``).
SCRATCH, INHERIT = "scratch", "inherit"
PROXY_INITS = (SCRATCH, INHERIT)


def check_proxy_init(value: str) -> None:
    """``--proxy-init`` given through the Python API (the CLI's choice list checks its own)."""
    if value not in PROXY_INITS:
        raise ConfigError(f"--proxy-init must be one of {', '.join(PROXY_INITS)}, got '{value}'")


@dataclass(frozen=True)
class ModelRecord:
    """One architecture with what was measured about it (``top1`` is None until evaluated)."""

    factors: Factors
    gflops: float
    top1: float | None = None
    params_m: float | None = None
    latency_ms: float | None = None

    @property
    def evaluated(self) -> bool:
        return self.top1 is not None


@dataclass
class Trial:
    """One training: the seed, a step's candidate, a contraction candidate; or an axis that proposed
    nothing (status ``skipped``, no factors, the reason as ``error``)."""

    name: str                       # also its folder: candidates/<name>
    axis: str | None                # None for the seed
    factors: Factors | None
    gflops: float | None
    params_m: float | None = None
    status: TrialStatus | str = TrialStatus.PENDING
    error: str | None = None
    result: TrainResult | None = None
    sessions: list[list[float]] = field(default_factory=list)  # wall-clock [start, end] of each training call
    seed: int | None = None         # of the training (repeat k of every candidate shares one)
    repeat: int = 0                 # k: 0 for the first training of a model
    repeats: list["Trial"] = field(default_factory=list)  # the same model trained again with other seeds
    heldout_top1: float | None = None  # top-1 on the held-out split, for a chosen model
    latency_ms: float | None = None  # measured per clip, when the search targets latency
    init: str = SCRATCH             # how the training starts: scratch, or inherit (from ``parent``)
    parent: str | None = None       # the trial whose model.pt it starts from (inherit); None: scratch
    node: str | None = None         # the Ray node its result came from (``IP/node-id``; a retry: the last)

    # --- what the result says ---------------------------------------------------------------
    @property
    def top1(self) -> float | None:
        return self.result.top1 if self.result is not None else None

    @property
    def top5(self) -> float | None:
        return self.result.top5 if self.result is not None else None

    @property
    def wall_time_s(self) -> float | None:
        return self.result.wall_time_s if self.result is not None else None

    @property
    def train_macs(self) -> float | None:
        return self.result.train_macs if self.result is not None else None

    @property
    def heldout(self) -> float | None:
        """Held-out top-1, averaged over the runs that were evaluated on the held-out split."""
        values = [r.heldout_top1 for r in self.runs if r.heldout_top1 is not None]
        return sum(values) / len(values) if values else None

    @property
    def runs(self) -> list["Trial"]:
        """Every training of this model: the trial and its repeats."""
        return [self, *self.repeats]

    @property
    def finished(self) -> bool:
        return isinstance(self.status, TrialStatus) and self.status.finished

    @property
    def needs_training(self) -> bool:
        """No final result yet: pending, running, or failed (a failed training is tried again); ``ok`` and
        ``diverged`` are final."""
        return self.status not in (TrialStatus.OK, TrialStatus.DIVERGED)

    @property
    def evaluated(self) -> bool:
        """Trained to the end and validated: the only trials a step may choose."""
        return self.status == TrialStatus.OK and self.top1 is not None

    @property
    def model(self) -> ModelRecord:
        if self.factors is None or self.gflops is None:
            raise ValueError(f"trial '{self.name}' ({self.status}) has no factors or gflops")
        return ModelRecord(self.factors, self.gflops, self.top1 if self.evaluated else None, self.params_m,
                           self.latency_ms)

    # --- state.json: every field ------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {"name": self.name, "axis": self.axis,
                "factors": self.factors.to_dict() if self.factors is not None else None,
                "gflops": self.gflops, "params_m": self.params_m, "status": str(self.status), "error": self.error,
                "result": self.result.to_dict() if self.result is not None else None,
                "sessions": [list(s) for s in self.sessions], "seed": self.seed, "repeat": self.repeat,
                "repeats": [r.to_state() for r in self.repeats], "heldout_top1": self.heldout_top1,
                "latency_ms": self.latency_ms, "init": self.init, "parent": self.parent, "node": self.node}

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> "Trial":
        if "result" not in data:
            return cls._from_state_v1(data)
        return cls(name=data["name"], axis=data["axis"],
                   factors=Factors.from_dict(data["factors"]) if data.get("factors") is not None else None,
                   gflops=data["gflops"], params_m=data.get("params_m"), status=TrialStatus.read(data["status"]),
                   error=data.get("error"),
                   result=TrainResult.from_dict(data["result"]) if data.get("result") is not None else None,
                   sessions=[list(s) for s in data.get("sessions", [])], seed=data.get("seed"),
                   repeat=int(data.get("repeat", 0)),
                   repeats=[cls.from_state(r) for r in data.get("repeats", [])],
                   heldout_top1=data.get("heldout_top1"), latency_ms=data.get("latency_ms"),
                   init=data.get("init") or SCRATCH, parent=data.get("parent"), node=data.get("node"))

    @classmethod
    def _from_state_v1(cls, data: dict[str, Any]) -> "Trial":
        """A trial of a ``state.json`` version 1 (before the result was kept whole)."""
        status = TrialStatus.read(data.get("status", TrialStatus.PENDING))
        result = None
        if isinstance(status, TrialStatus) and status.finished:
            result = TrainResult(status=status, error=data.get("error"), top1=data.get("top1"),
                                 top5=data.get("top5"), wall_time_s=data.get("train_time_s"),
                                 train_clips_per_s=data.get("clips_per_s"), clips_seen=data.get("clips_seen", 0),
                                 train_macs=data.get("train_macs"), gflops=data.get("gflops"),
                                 params_m=data.get("params_m"), epochs_done=data.get("epochs_done", 0))
        return cls(name=data["name"], axis=data["axis"], factors=Factors.from_dict(data["factors"]),
                   gflops=data["gflops"], params_m=data.get("params_m"), status=status, error=data.get("error"),
                   result=result, sessions=[list(s) for s in data.get("sessions", [])])

    # --- expansion_path.yaml: the reader's view -------------------------------------------------
    def to_log(self) -> dict[str, Any]:
        """A step's candidate as the run log writes it (``train_time_s`` is the trainer's wall time;
        ``init`` and ``parent`` how it started, ``node`` where it trained; null for an axis that trained
        nothing)."""
        if self.status == TrialStatus.SKIPPED:
            return {"axis": self.axis, "factors": None, "gflops": None, "params_m": None, "top1": None,
                    "top5": None, "train_time_s": None, "status": str(self.status), "error": self.error,
                    "train_macs": None, "init": None, "parent": None, "node": None}
        entry = {"axis": self.axis, "factors": self.factors.to_dict() if self.factors else None,
                 "gflops": self.gflops, "params_m": self.params_m, "top1": self.top1, "top5": self.top5,
                 "train_time_s": self.wall_time_s, "status": str(self.status),
                 "error": self.error if self.status != TrialStatus.OK else None,
                 "train_macs": (self.train_macs or 0.0) if self.result is not None else 0.0,
                 "init": self.init, "parent": self.parent, "node": self.node}
        if self.latency_ms is not None:
            entry["ms"] = self.latency_ms
        return entry

    def model_log(self) -> dict[str, Any]:
        """The trial as a step's ``from`` (a model, not a candidate)."""
        if self.factors is None:
            raise ValueError(f"trial '{self.name}' ({self.status}) has no factors")
        entry: dict[str, Any] = {"factors": self.factors.to_dict(), "gflops": self.gflops, "top1": self.top1}
        if self.latency_ms is not None:
            entry["ms"] = self.latency_ms
        if self.node is not None:
            entry["node"] = self.node
        return entry


def trial_from_log(name: str, axis: str | None, factors: Factors | None, gflops: float | None, *,
                   params_m: float | None = None, status: str = TrialStatus.OK, error: str | None = None,
                   top1: float | None = None, top5: float | None = None, train_time_s: float | None = None,
                   train_macs: float | None = None, init: str | None = None, parent: str | None = None) -> Trial:
    """A trial rebuilt from what a run log kept of it (a log written before ``init``: scratch)."""
    state = TrialStatus.read(status)
    finished = isinstance(state, TrialStatus) and state.finished
    result = None
    if finished or top1 is not None:
        result = TrainResult(status=state if isinstance(state, TrialStatus) and finished else TrialStatus.OK,
                             error=error,
                             top1=top1, top5=top5, wall_time_s=train_time_s, train_macs=train_macs, gflops=gflops,
                             params_m=params_m)
    return Trial(name=name, axis=axis, factors=factors, gflops=gflops, params_m=params_m, status=state, error=error,
                 result=result, init=init or SCRATCH, parent=parent)
