"""Per-video outcomes of one evaluation: what lets two models be compared on the same videos.

Top-1 over a few dozen videos moves by whole videos; keeping each video's
true-class probability and whether top-1 was right lets a caller compute
paired differences and continuous scores on exactly the videos both models
could read. Keys are the videos' paths relative to the data root (the path as
written in the list file for a video outside it), so outcomes of different
trainings on one dataset line up.

This module sits below ``train/``, ``search/`` and ``report/`` and imports none of them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

#: ``mean_log_p`` clamps each probability at this floor: one confidently wrong video would
#: otherwise weigh without bound (log 0), and float32 softmax underflows near 1e-38 anyway.
P_FLOOR = 1e-6


@dataclass(frozen=True)
class VideoOutcome:
    """One video: its label, the true class's softmax probability averaged over the video's
    views, and whether the averaged scores ranked the true class first."""

    label: int
    p_true: float
    correct: bool

    def to_list(self) -> list[Any]:
        return [self.label, self.p_true, self.correct]

    @classmethod
    def from_value(cls, value: Any) -> "VideoOutcome":
        """From ``[label, p_true, correct]`` or ``{"label", "p_true", "correct"}``."""
        if isinstance(value, Mapping):
            return cls(int(value["label"]), float(value["p_true"]), bool(value["correct"]))
        label, p_true, correct = value
        return cls(int(label), float(p_true), bool(correct))


@dataclass
class SplitOutcomes:
    """Every scored video of one split (``videos``) and the videos left out as unreadable (``excluded``)."""

    split: str
    videos: dict[str, VideoOutcome] = field(default_factory=dict)
    excluded: list[str] = field(default_factory=list)

    @property
    def top1(self) -> float | None:
        """Percent of scored videos ranked right; None when none was scored."""
        if not self.videos:
            return None
        return 100.0 * sum(v.correct for v in self.videos.values()) / len(self.videos)

    @property
    def mean_p_true(self) -> float | None:
        if not self.videos:
            return None
        return sum(v.p_true for v in self.videos.values()) / len(self.videos)

    @property
    def mean_log_p(self) -> float | None:
        """Mean natural log of the true-class probability, each clamped at :data:`P_FLOOR`."""
        if not self.videos:
            return None
        return sum(math.log(max(v.p_true, P_FLOOR)) for v in self.videos.values()) / len(self.videos)

    def common(self, other: "SplitOutcomes") -> list[str]:
        """Keys both scored, in this one's order: the videos a paired comparison may use."""
        return [key for key in self.videos if key in other.videos]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe; ``videos`` maps each key to ``[label, p_true, correct]``. The summary numbers
        are written for readers and ignored by :meth:`from_dict`."""
        return {"split": self.split, "top1": self.top1, "mean_p_true": self.mean_p_true,
                "mean_log_p": self.mean_log_p, "scored": len(self.videos), "excluded": list(self.excluded),
                "videos": {key: v.to_list() for key, v in self.videos.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SplitOutcomes":
        try:
            videos = {str(k): VideoOutcome.from_value(v) for k, v in dict(data["videos"]).items()}
            return cls(split=str(data["split"]), videos=videos, excluded=[str(k) for k in data.get("excluded", [])])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a per-video outcomes record ({type(exc).__name__}: {exc})") from None
