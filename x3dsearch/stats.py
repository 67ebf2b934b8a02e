"""Small statistics for noisy proxy scores: paired bootstrap intervals and rank correlations.

A proxy's validation score is a mean over a few dozen videos of one short
training, so two candidates' scores differ by noise of two kinds: which videos
happen to be in the validation split, and which seed trained the network. The
interval here resamples both (a two-level bootstrap): seeds (repeats, paired
across the two candidates, since repeat k trains both on the same clips) and
videos (paired: both candidates scored on the same ones). With one repeat it
covers the videos only, and says nothing about seed variance.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

#: Bootstrap resamples: the 5% and 95% quantiles of 2000 draws move by about 0.1 of the interval.
RESAMPLES = 2000
LEVEL = 0.90


@dataclass(frozen=True)
class Interval:
    """A mean (of a score, or of a paired difference) and its bootstrap interval."""

    value: float
    low: float
    high: float
    level: float = LEVEL

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def to_list(self) -> list[float]:
        return [self.low, self.high]


#: Resampled indices drawn at once for one repeat (bounds the memory of a block to 32 MB).
_BLOCK = 4_000_000


def _resampled_means(values: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """Means of ``values`` (repeats x videos) over resampled repeats and videos."""
    repeats, videos = values.shape
    means = np.empty(resamples)
    if repeats == 1:
        # Blocks of whole resamples: the same draws, in the same order, as one call per resample,
        # so intervals are those of the loop below, bit for bit, about 25x faster.
        rows_per_block = max(1, _BLOCK // videos)
        for start in range(0, resamples, rows_per_block):
            stop = min(resamples, start + rows_per_block)
            means[start:stop] = values[0][rng.integers(0, videos, (stop - start, videos))].mean(axis=1)
        return means
    for i in range(resamples):
        rows = rng.integers(0, repeats, repeats)
        cols = rng.integers(0, videos, videos)
        means[i] = values[np.ix_(rows, cols)].mean()
    return means


def bootstrap(values: np.ndarray, seed: Sequence[int] | int, level: float = LEVEL,
              resamples: int = RESAMPLES) -> Interval:
    """Mean of ``values`` (repeats x videos, or videos) with a percentile bootstrap interval.

    For a paired difference, pass ``a - b`` (same repeats, same videos). Deterministic for ``seed``.
    """
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    if values.size == 0:
        raise ValueError("no values to bootstrap")
    rng = np.random.default_rng(seed)
    return _percentile_interval(float(values.mean()), _resampled_means(values, rng, resamples), level)


def _percentile_interval(value: float, draws: np.ndarray, level: float) -> Interval:
    """``value`` with the central ``level`` share of its bootstrap ``draws`` (nan when there are none)."""
    if not draws.size:
        return Interval(value, float("nan"), float("nan"), level)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(draws, [tail, 1.0 - tail])
    return Interval(value, float(low), float(high), level)


def ranks(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing their average rank."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="mergesort")
    out = np.empty(len(values))
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[order[j + 1]] == values[order[i]]:
            j += 1
        out[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return out


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson's on average ranks); nan when a side is constant."""
    rx, ry = ranks(x), ranks(y)
    if len(rx) < 2 or rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def kendall(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Kendall's tau-b (ties in either ranking reduce the denominator); nan when a side is constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    concordant = discordant = ties_x = ties_y = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif dx == dy:
                concordant += 1
            else:
                discordant += 1
    denominator = np.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    return float((concordant - discordant) / denominator) if denominator else float("nan")


@dataclass(frozen=True)
class RankInterval:
    """A rank correlation's bootstrap interval, and how many resamples left it undefined (a side with
    every model scored the same): those are dropped, and the share says how much that matters."""

    interval: Interval
    undefined: float                  # share of resamples whose correlation was undefined


def rank_interval(proxy: Sequence[np.ndarray], reference: Sequence[np.ndarray], seed: Sequence[int] | int,
                  statistic: Callable[[Sequence[float], Sequence[float]], float] | None = None,
                  level: float = LEVEL, resamples: int = RESAMPLES) -> RankInterval:
    """A rank correlation (``statistic``, default Spearman's) of the models' mean proxy and mean reference
    scores, with a two-level percentile bootstrap interval: how far the figure itself can be trusted.

    ``proxy[m]`` and ``reference[m]`` are model ``m``'s per-video values, seeds x videos, the video
    axis the same videos in the same order for every model (each side has its own videos). The point
    estimate is computed on exactly those videos. Every resample draws the seeds (paired across
    models: seed k trained every model on the same clips) and the videos (paired: every model is
    scored on the same ones), of each side independently, as :func:`bootstrap` does for one
    difference. With few seeds the seed level is coarse (3 seeds give 10 distinct seed draws).
    Deterministic for ``seed``.
    """
    correlation = statistic or spearman
    sides = [[np.atleast_2d(np.asarray(v, dtype=np.float64)) for v in side] for side in (proxy, reference)]
    if len(sides[0]) != len(sides[1]) or len(sides[0]) < 2:
        raise ValueError("need the same two or more models on both sides")
    shapes = [{v.shape for v in side} for side in sides]
    if any(len(s) != 1 for s in shapes):
        raise ValueError("every model needs the same seeds and videos on a side")
    stacked = [np.stack(side) for side in sides]  # models x seeds x videos
    value = correlation(stacked[0].mean(axis=(1, 2)), stacked[1].mean(axis=(1, 2)))
    rng = np.random.default_rng(seed)
    draws = np.empty(resamples)
    for i in range(resamples):
        means = []
        for values in stacked:
            _, seeds, videos = values.shape
            rows = rng.integers(0, seeds, seeds)
            cols = rng.integers(0, videos, videos)
            means.append(values[:, rows][:, :, cols].mean(axis=(1, 2)))
        draws[i] = correlation(*means)
    finite = np.isfinite(draws)
    return RankInterval(_percentile_interval(value, draws[finite], level), float(1.0 - finite.mean()))


def spearman_interval(proxy: Sequence[np.ndarray], reference: Sequence[np.ndarray], seed: Sequence[int] | int,
                      level: float = LEVEL, resamples: int = RESAMPLES) -> Interval:
    """Spearman's correlation with its two-level bootstrap interval (:func:`rank_interval`)."""
    return rank_interval(proxy, reference, seed, spearman, level, resamples).interval


def student_t_cdf(x: float, df: int) -> float:
    """P(T <= x) for Student's t with ``df`` degrees of freedom (Simpson's rule on the density: exact to
    about 1e-9 for the seed counts experiments use; no SciPy dependency)."""
    if df < 1:
        raise ValueError("df must be at least 1")
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    grid = np.linspace(0.0, abs(x), 20001)
    density = np.exp(log_norm - (df + 1) / 2 * np.log1p(grid ** 2 / df))
    h = grid[1] - grid[0]
    half = float(h / 3 * (density[0] + density[-1] + 4 * density[1:-1:2].sum() + 2 * density[2:-1:2].sum()))
    return 0.5 + half if x >= 0 else 0.5 - half


def student_t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t (bisection on :func:`student_t_cdf`)."""
    if not 0 < p < 1:
        raise ValueError("p must be in (0, 1)")
    low, high = -1e3, 1e3
    for _ in range(80):
        mid = (low + high) / 2
        low, high = (mid, high) if student_t_cdf(mid, df) < p else (low, mid)
    return (low + high) / 2


def holm(p_values: Sequence[float], alpha: float = 1.0 - LEVEL) -> list[bool]:
    """Holm's step-down rejections of ``p_values`` with family-wise error ``alpha`` (Holm, 1979)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    for rank, i in enumerate(order):
        if p_values[i] > alpha / (len(p_values) - rank):
            break
        rejected[i] = True
    return rejected
