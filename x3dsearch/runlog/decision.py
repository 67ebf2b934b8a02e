"""What a step decided and how sure it could be: candidate scores and the paired comparisons.

A proxy score on a few dozen validation videos is a number with a wide
interval. Every step records each candidate's score with its interval, the
chosen model's margin over every other candidate with simultaneous one-sided
bounds (:mod:`x3dsearch.simultaneous`), and its margin over the step's start
model, measured on the held-out split where there is one. A step is
``significant`` when the chosen model beats every other candidate at once;
otherwise the choice was within noise.
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
    """A paired difference of scores (first minus second) and its one-sided bounds.

    ``ci`` is ``(low, high)``: the first beats the second by at least ``low``, and by at most ``high``,
    each a one-sided bound at the decision's level (90%), simultaneous over a step's candidates when
    the comparison comes from a step's decision. ``split`` says where it was measured; a comparison
    on the validation videos that chose the winner is ``selection_biased`` (the winner's curse).
    """

    margin: float
    ci: tuple[float, float]
    split: str | None = None
    selection_biased: bool = False

    @property
    def beats(self) -> bool:
        """The first is better, beyond noise (one-sided)."""
        return self.ci[0] > 0

    @property
    def loses(self) -> bool:
        """The first is worse, beyond noise (one-sided)."""
        return self.ci[1] < 0

    def verdict(self) -> str:
        return "better beyond noise" if self.beats else "worse beyond noise" if self.loses else "within noise"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"margin": self.margin, "ci": list(self.ci)}
        if self.split is not None:
            out.update(split=self.split, selection_biased=self.selection_biased)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "Comparison | None":
        if not data or data.get("margin") is None:
            return None
        return cls(float(data["margin"]), _pair(data["ci"]), data.get("split"), bool(data.get("selection_biased")))


@dataclass(frozen=True)
class Against:
    """The chosen model against one other candidate: margin, simultaneous bounds, and whether that
    candidate was excluded from being the best."""

    axis: str
    margin: float
    ci: tuple[float, float]
    excluded: bool

    def to_dict(self) -> dict[str, Any]:
        return {"margin": self.margin, "ci": list(self.ci), "excluded": self.excluded}

    @classmethod
    def from_dict(cls, axis: str, data: Mapping[str, Any]) -> "Against":
        return cls(axis, float(data["margin"]), _pair(data["ci"]), bool(data["excluded"]))


#: The rule every decision since simultaneous decisions uses (README, "Noise-aware decisions").
METHOD = "mcb-max-t"


@dataclass(frozen=True)
class Decision:
    """Why a step kept its winner, under which criterion and tie rule, and whether it beat noise.

    A step is ``significant`` when its chosen model beats every other candidate at once, one-sided,
    with the error held over all of them (:mod:`x3dsearch.simultaneous`): then it is the best with
    probability at least ``level``. ``tied`` is exactly the candidates not excluded from being the best.
    """

    criterion: str
    rule: str                                # the tie rule: best, cheaper or repeat
    winner: str                              # axis
    runner_up: str | None                    # the best other candidate (None: the only usable one)
    vs_runner_up: Comparison | None
    vs_start: Comparison | None
    videos: int                              # videos every compared model could read
    repeats: int                             # seeds paired in the comparison with the runner-up
    tied: tuple[str, ...] = ()               # axes not excluded from being the best
    against: tuple[Against, ...] = ()        # the chosen model against every other candidate
    method: str | None = None                # None: a run decided before simultaneous decisions
    level: float | None = None               # the level of this look (lower under --on-tie repeat)
    noise: str | None = None                 # the seed noise the intervals hold
    dropped_seeds: tuple[str, ...] = ()      # "axis: seed S" left out of the pairs that need it

    @property
    def significant(self) -> bool | None:
        """True when the chosen model beats every other candidate simultaneously (None without another)."""
        if self.runner_up is None:
            return None
        if self.method is None:   # an older run: its runner-up interval read one-sided, and no tie
            return None if self.vs_runner_up is None else self.vs_runner_up.beats and not self.tied
        return bool(self.against) and all(a.excluded and a.margin > 0 for a in self.against)

    @property
    def margin(self) -> float | None:
        return self.vs_runner_up.margin if self.vs_runner_up is not None else None

    def to_dict(self) -> dict[str, Any]:
        out = {"criterion": self.criterion, "winner": self.winner, "runner_up": self.runner_up,
               "margin": self.margin, "ci": list(self.vs_runner_up.ci) if self.vs_runner_up else None,
               "vs_start": self.vs_start.to_dict() if self.vs_start else None, "significant": self.significant,
               "rule": self.rule, "videos": self.videos, "repeats": self.repeats, "tied": list(self.tied)}
        if self.method is not None:
            out.update(method=self.method, level=self.level, noise=self.noise,
                       against={a.axis: a.to_dict() for a in self.against}, dropped_seeds=list(self.dropped_seeds))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Decision":
        vs_runner_up = None
        if data.get("margin") is not None and data.get("ci") is not None:
            vs_runner_up = Comparison(float(data["margin"]), _pair(data["ci"]))
        return cls(criterion=str(data["criterion"]), rule=str(data.get("rule", "best")), winner=str(data["winner"]),
                   runner_up=data.get("runner_up"), vs_runner_up=vs_runner_up,
                   vs_start=Comparison.from_dict(data.get("vs_start")), videos=int(data.get("videos") or 0),
                   repeats=int(data.get("repeats") or 1), tied=tuple(data.get("tied") or ()),
                   against=tuple(Against.from_dict(axis, a) for axis, a in (data.get("against") or {}).items()),
                   method=data.get("method"), level=data.get("level"), noise=data.get("noise"),
                   dropped_seeds=tuple(data.get("dropped_seeds") or ()))

    def summary(self, unit: str = "") -> str:
        """``beats all 5 others: margin +4.2 over x-depth (simultaneous 90% lower bound 1.0)`` when
        significant, else ``within noise (tied: ...)``."""
        if self.runner_up is None:
            return "the only usable candidate"
        if self.vs_runner_up is None:
            return "no interval (the run kept no per-video outcomes)"
        if not self.significant:
            return f"within noise (tied: {', '.join(self.tied)})" if self.tied else "within noise"
        low = self.vs_runner_up.ci[0]
        spec = score_spec(self.criterion)
        level = f"{100 * (self.level or 0.9):.0f}%"
        if self.method is None:
            return f"margin {self.margin:+{spec}}{unit} (one-sided {level} lower bound {low:{spec}})"
        return (f"beats all {len(self.against)} others: margin {self.margin:+{spec}}{unit} over {self.runner_up} "
                f"(simultaneous {level} lower bound {low:{spec}})")

    def start_text(self, unit: str = "") -> str | None:
        """The chosen model against the step's start and where that was measured; a margin on the
        videos that chose the winner says it is biased upward."""
        vs = self.vs_start
        if vs is None:
            return None
        spec = score_spec(self.criterion)
        where = {"test": "held-out", "val": "validation, selection-biased"}.get(vs.split or "", "validation")
        return f"{vs.margin:+{spec}}{unit} over the start ({where}; {vs.verdict()})"
