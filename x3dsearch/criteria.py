"""How a model's validation outcomes become one score, per video and on average, and how ties are broken.

``top1`` counts a video as 100 when its top-1 class is right, else 0: the
published metric, but a video's contribution is all or nothing, so a score on
a few dozen videos moves in steps of 100 / videos points. ``prob`` (the
true-class probability, in percent) and ``log-prob`` (its logarithm, in nats)
are continuous, so two candidates that are both right on a video still differ
by how sure they are. ``gain-per-gflop`` is top-1 gained over the step's start
model per added GFLOP (the paper's "computation/accuracy trade-off").
"""
from __future__ import annotations

import math
from enum import Enum
from typing import Mapping, Sequence

import numpy as np

from .outcomes import P_FLOOR, SplitOutcomes


class Criterion(str, Enum):
    TOP1 = "top1"
    PROB = "prob"
    LOG_PROB = "log-prob"
    GAIN_PER_GFLOP = "gain-per-gflop"

    def __str__(self) -> str:
        return self.value

    @property
    def unit(self) -> str:
        return {"top1": "points", "prob": "points", "log-prob": "nats", "gain-per-gflop": "points/GFLOP"}[self.value]

    @property
    def per_video(self) -> "Criterion":
        """What is averaged over videos (gain per GFLOP is a top-1 difference, scaled)."""
        return Criterion.TOP1 if self is Criterion.GAIN_PER_GFLOP else self


CRITERIA = tuple(c.value for c in Criterion)


class TieRule(str, Enum):
    """What a step keeps when candidates are within noise of the best (see :mod:`x3dsearch.search.judge`)."""

    BEST = "best"          # the best score anyway
    CHEAPER = "cheaper"    # the cheapest of those not significantly worse than the best
    REPEAT = "repeat"      # train the tied ones again with further seeds, then the best

    def __str__(self) -> str:
        return self.value


TIE_RULES = tuple(r.value for r in TieRule)


def video_values(outcomes: SplitOutcomes, criterion: Criterion | str) -> dict[str, float]:
    """Each scored video's value under ``criterion`` (for gain per GFLOP: its top-1 value)."""
    kind = Criterion(criterion).per_video
    if kind is Criterion.TOP1:
        return {v: 100.0 if o.correct else 0.0 for v, o in outcomes.videos.items()}
    if kind is Criterion.PROB:
        return {v: 100.0 * o.p_true for v, o in outcomes.videos.items()}
    return {v: math.log(max(o.p_true, P_FLOOR)) for v, o in outcomes.videos.items()}


def value_matrices(runs: Mapping[str, Sequence[SplitOutcomes]], criterion: Criterion | str,
                   ) -> dict[str, np.ndarray] | None:
    """Each model's runs x videos of per-video values under ``criterion``, on the videos every run of
    every model read, in sorted order (the order the paired intervals resample); None when no video
    is common to all (an unreadable video leaves every comparison)."""
    per_run = {name: [video_values(o, criterion) for o in outcomes] for name, outcomes in runs.items()}
    all_runs = [values for values_ in per_run.values() for values in values_]
    common = sorted(set.intersection(*(set(values) for values in all_runs))) if all_runs else []
    if not common:
        return None
    return {name: np.array([[values[v] for v in common] for values in values_]) for name, values_ in per_run.items()}
