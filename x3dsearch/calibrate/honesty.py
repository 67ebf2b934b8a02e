"""How often the search's single-seed decisions are right: seed noise, coverage, precision and power.

A search step compares candidates trained once each. Calibrate trains every
model at several seeds, so for every pair of models and every seed it can ask
what one seed's comparison would have said, and check it:

- ``noise``: the SD over seeds of a paired difference of two models on the same
  videos (root mean square over pairs): the seed-noise model the search widens
  its single-seed intervals by (``expand --noise``);
- ``coverage``: the share of one seed's two-sided 90% intervals of a pair that
  contain the difference of the pair's multi-seed means (on the same videos;
  that mean includes the seed itself, so with 3 seeds coverage is flattered);
- ``precision``: of the pairs one seed calls (one-sided 90%: one model beats the
  other), the share whose direction the reference's multi-seed mean confirms;
- ``power``: the share of pairs one seed calls.

Intervals come from the same rule the search uses
(:func:`x3dsearch.simultaneous.pair_bounds`, widened by the measured noise), so
the figures say how the search's own intervals behave. Each share's 90%
interval resamples models (a cluster bootstrap: pairs sharing a model are not
independent). An undefined figure is null, with the reason under ``undefined``.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any, Mapping, Sequence

import numpy as np

from ..simultaneous import NoiseModel, pair_bounds
from ..stats import LEVEL

#: Model resamples of a share's interval.
MODEL_RESAMPLES = 1000


@dataclass(frozen=True)
class PairCall:
    """One seed's view of one pair: ``first - second``."""

    first: int
    second: int
    seed: int
    covered: bool               # the two-sided interval holds the multi-seed mean difference
    called: int                 # +1: first beats second, -1: second beats first, 0: within noise
    confirmed: bool             # the reference's mean difference has the called sign


def pair_noise(values: Sequence[np.ndarray]) -> float | None:
    """RMS over model pairs of the SD over seeds of their paired difference (``values[m]``: seeds x
    videos, the same seeds and videos for every model); None with fewer than two seeds."""
    if values[0].shape[0] < 2:
        return None
    variances = [np.var(a.mean(axis=1) - b.mean(axis=1), ddof=1) for a, b in combinations(values, 2)]
    return float(np.sqrt(np.mean(variances)))


def pair_calls(values: Sequence[np.ndarray], reference: Sequence[float], noise: NoiseModel | None,
               seed: int = 0) -> list[PairCall]:
    """Every pair of models at every seed, judged by that seed alone."""
    calls = []
    for i, j in combinations(range(len(values)), 2):
        target = float((values[i] - values[j]).mean())
        truth = np.sign(reference[i] - reference[j])
        for s in range(values[i].shape[0]):
            a, b = {s: values[i][s]}, {s: values[j][s]}
            key = [seed, i, j, s]
            two_sided = pair_bounds(a, b, key, 1 - (1 - LEVEL) / 2, noise)
            one_sided = pair_bounds(a, b, key, LEVEL, noise)
            called = 1 if one_sided.low > 0 else -1 if one_sided.high < 0 else 0
            calls.append(PairCall(i, j, s, two_sided.low <= target <= two_sided.high, called,
                                  called != 0 and called == truth))
    return calls


def _shares(calls: Sequence[PairCall], weights: np.ndarray | None = None) -> dict[str, float | None]:
    """Coverage, precision and power of ``calls``, each call weighted (a model resample counts a pair
    as often as it drew both models)."""
    w = np.ones(len(calls)) if weights is None else weights
    total = w.sum()
    called = np.array([c.called != 0 for c in calls])
    out: dict[str, float | None] = {
        "coverage": float(w @ np.array([c.covered for c in calls]) / total) if total else None,
        "power": float(w @ called / total) if total else None}
    decided = w @ called
    out["precision"] = float(w @ np.array([c.confirmed for c in calls]) / decided) if decided else None
    return out


def honesty(calls: Sequence[PairCall], models: int, seed: int = 0,
            resamples: int = MODEL_RESAMPLES) -> dict[str, Any]:
    """Each share with its 90% model-resampling interval; null figures with their reason."""
    point = _shares(calls)
    rng = np.random.default_rng([seed, 7])
    draws: dict[str, list[float]] = {k: [] for k in point}
    for _ in range(resamples):
        counts = np.bincount(rng.integers(0, models, models), minlength=models)
        weights = np.array([counts[c.first] * counts[c.second] for c in calls], dtype=np.float64)
        for key, value in _shares(calls, weights).items():
            if value is not None:
                draws[key].append(value)
    out: dict[str, Any] = {}
    undefined: dict[str, str] = {}
    for key, value in point.items():
        if value is None:
            out[key] = None
            undefined[key] = "no pair was called by one seed" if key == "precision" else "no pair of models"
            continue
        tail = (1 - LEVEL) / 2
        ci = np.quantile(draws[key], [tail, 1 - tail]).tolist() if draws[key] else None
        out[key] = {"value": value, "ci": ci}
    out["pairs"] = len({(c.first, c.second) for c in calls})
    out["called"] = sum(c.called != 0 for c in calls)
    out["judged"] = len(calls)
    return {"figures": out, "undefined": undefined}


def noise_block(noise: Mapping[str, float | None], settings: Mapping[str, Any], seeds: int, videos: int,
                models: int) -> dict[str, Any]:
    """``calibration.yaml``'s ``noise`` block: what ``expand --noise`` reads."""
    data = settings.get("data") or {}
    return {"sd": dict(noise), "budget": settings.get("proxy_budget"), "proxy_init": settings.get("proxy_init"),
            "data": data.get("root") if isinstance(data, Mapping) else data, "seeds": seeds, "videos": videos,
            "models": models, "pairs": models * (models - 1) // 2,
            "meaning": "SD over training seeds of a paired difference of two models' scores on the same "
                       "validation videos (root mean square over model pairs), per criterion, in its unit"}
