"""What a step decided and how sure it could be: candidate scores and the paired comparisons.

A proxy score on a few dozen validation videos is a number with a wide
interval. Every step records each candidate's score with its interval, and the
winner's margin over the runner-up and over the step's start model, each with a
paired bootstrap interval (:mod:`x3dsearch.stats`). A step is ``significant``
when the interval against the runner-up excludes 0; otherwise the choice was
within noise.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping
from ..utils.fmt import score_spec


def _pair(values: Any) -> tuple[float, float] | None:
    return (float(values[0]), float(values[1])) if values is not None else None


@dataclass(frozen=True)
class Score:
    """A candidate's score under the step's criterion, over the videos every candidate could read."""

    criterion: str
    value: float
    ci: tuple[float, float] | None = None   # bootstrap interval (videos, and seeds with repeats)
    sd: float | None = None                  # across repeats (seeds), when there are several
    repeats: int = 1
    videos: int | None = None
    top1: float | None = None                # mean top-1 over the same videos and repeats, and its interval
    top1_ci: tuple[float, float] | None = None

    def to_state(self) -> dict[str, Any]:
        return {"criterion": self.criterion, "value": self.value, "ci": list(self.ci) if self.ci else None,
                "sd": self.sd, "repeats": self.repeats, "videos": self.videos, "top1": self.top1,
                "top1_ci": list(self.top1_ci) if self.top1_ci else None}

    @classmethod
    def from_state(cls, data: Mapping[str, Any]) -> "Score":
        return cls(data["criterion"], float(data["value"]), _pair(data.get("ci")), data.get("sd"),
                   int(data.get("repeats") or 1), data.get("videos"), data.get("top1"), _pair(data.get("top1_ci")))

    def to_log(self) -> dict[str, Any]:
        """A candidate's score keys in the run log: ``score_sd``, ``repeats`` and ``top1_mean`` with repeats."""
        out: dict[str, Any] = {"score": self.value, "score_ci": list(self.ci) if self.ci else None,
                               "score_videos": self.videos, "top1_ci": list(self.top1_ci) if self.top1_ci else None}
        if self.repeats > 1:
            out.update(score_sd=self.sd, repeats=self.repeats, top1_mean=self.top1)
        return out

    @classmethod
    def from_log(cls, data: Mapping[str, Any], criterion: str) -> "Score | None":
        if data.get("score") is None:
            return None
        repeats = int(data.get("repeats") or 1)
        return cls(criterion, float(data["score"]), _pair(data.get("score_ci")), data.get("score_sd"), repeats,
                   data.get("score_videos"), data.get("top1_mean") if repeats > 1 else data.get("top1"),
                   _pair(data.get("top1_ci")))


@dataclass(frozen=True)
class Comparison:
    """A paired difference of scores (first minus second) and its interval."""

    margin: float
    ci: tuple[float, float]

    @property
    def significant(self) -> bool:
        return self.ci[0] > 0 or self.ci[1] < 0

    def to_dict(self) -> dict[str, Any]:
        return {"margin": self.margin, "ci": list(self.ci)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "Comparison | None":
        if not data or data.get("margin") is None:
            return None
        return cls(float(data["margin"]), _pair(data["ci"]))


@dataclass(frozen=True)
class Decision:
    """Why a step kept its winner, under which criterion and tie rule, and whether it beat noise."""

    criterion: str
    rule: str                                # the tie rule: best, cheaper or repeat
    winner: str                              # axis
    runner_up: str | None                    # the best other candidate (None: the only usable one)
    vs_runner_up: Comparison | None
    vs_start: Comparison | None
    videos: int                              # videos every compared model could read
    repeats: int                             # seeds paired in the comparison
    tied: tuple[str, ...] = ()               # axes within noise of the best

    @property
    def significant(self) -> bool | None:
        """True when the winner's interval against the runner-up excludes 0 (None without a runner-up)."""
        return self.vs_runner_up.significant if self.vs_runner_up is not None else None

    @property
    def margin(self) -> float | None:
        return self.vs_runner_up.margin if self.vs_runner_up is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {"criterion": self.criterion, "winner": self.winner, "runner_up": self.runner_up,
                "margin": self.margin, "ci": list(self.vs_runner_up.ci) if self.vs_runner_up else None,
                "vs_start": self.vs_start.to_dict() if self.vs_start else None, "significant": self.significant,
                "rule": self.rule, "videos": self.videos, "repeats": self.repeats, "tied": list(self.tied)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Decision":
        vs_runner_up = None
        if data.get("margin") is not None and data.get("ci") is not None:
            vs_runner_up = Comparison(float(data["margin"]), _pair(data["ci"]))
        return cls(criterion=str(data["criterion"]), rule=str(data.get("rule", "best")), winner=str(data["winner"]),
                   runner_up=data.get("runner_up"), vs_runner_up=vs_runner_up,
                   vs_start=Comparison.from_dict(data.get("vs_start")), videos=int(data.get("videos") or 0),
                   repeats=int(data.get("repeats") or 1), tied=tuple(data.get("tied") or ()))

    def summary(self, unit: str = "") -> str:
        """``margin +4.2 (90% CI 1.0..7.5)`` when significant, else ``within noise``."""
        if self.runner_up is None:
            return "the only usable candidate"
        if self.vs_runner_up is None:
            return "no interval (the run kept no per-video outcomes)"
        if not self.significant:
            return "within noise"
        low, high = self.vs_runner_up.ci
        spec = score_spec(self.criterion)
        return f"margin {self.margin:+{spec}}{unit} (90% CI {low:{spec}}..{high:{spec}})"
