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
    _, inverse, counts = np.unique(np.asarray(values, dtype=np.float64), return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts  # each distinct value's first 0-based position in sorted order
    return (first + (counts - 1) / 2.0 + 1.0)[inverse.reshape(-1)]


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson's on average ranks); nan when a side is constant."""
    rx, ry = ranks(x), ranks(y)
    if len(rx) < 2 or rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def kendall(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Kendall's tau-b (ties in either ranking reduce the denominator); nan when a side is constant.

    Every pair at once: a bootstrap interval calls it thousands of times."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    i, j = np.triu_indices(len(x), 1)
    dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    ties_x = int(np.count_nonzero((dx == 0) & (dy != 0)))
    ties_y = int(np.count_nonzero((dy == 0) & (dx != 0)))
    untied = (dx != 0) & (dy != 0)
    concordant = int(np.count_nonzero(untied & (dx == dy)))
    discordant = int(np.count_nonzero(untied & (dx != dy)))
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
    means = [np.empty((resamples, len(stacked[0]))) for _ in stacked]  # resample x model, per side
    for i in range(resamples):
        for side, values in enumerate(stacked):
            _, seeds, videos = values.shape
            rows = rng.integers(0, seeds, seeds)
            cols = rng.integers(0, videos, videos)
            means[side][i] = values[:, rows][:, :, cols].mean(axis=(1, 2))
    draws = _correlate_rows(correlation, means[0], means[1])
    finite = np.isfinite(draws)
    return RankInterval(_percentile_interval(value, draws[finite], level), float(1.0 - finite.mean()))


def _row_ranks(values: np.ndarray) -> np.ndarray:
    """:func:`ranks` of every row at once (the rows are short: a calibration's models)."""
    below = (values[:, None, :] < values[:, :, None]).sum(axis=2)
    equal = (values[:, None, :] == values[:, :, None]).sum(axis=2)
    return below + (equal - 1) / 2.0 + 1.0


def _correlate_rows(correlation: Callable[[Sequence[float], Sequence[float]], float], x: np.ndarray,
                    y: np.ndarray) -> np.ndarray:
    """``correlation(x[i], y[i])`` for every row ``i``; Spearman's and Kendall's all rows at once (a
    bootstrap asks for thousands), any other statistic row by row."""
    if correlation is spearman:
        rx, ry = _row_ranks(x), _row_ranks(y)
        rx, ry = rx - rx.mean(axis=1, keepdims=True), ry - ry.mean(axis=1, keepdims=True)
        sxx, syy = (rx * rx).sum(axis=1), (ry * ry).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = (rx * ry).sum(axis=1) / np.sqrt(sxx * syy)
        return np.where((sxx > 0) & (syy > 0), out, np.nan)
    if correlation is kendall:
        i, j = np.triu_indices(x.shape[1], 1)
        dx, dy = np.sign(x[:, i] - x[:, j]), np.sign(y[:, i] - y[:, j])
        untied = (dx != 0) & (dy != 0)
        concordant = (untied & (dx == dy)).sum(axis=1)
        discordant = (untied & (dx != dy)).sum(axis=1)
        ties_x = ((dx == 0) & (dy != 0)).sum(axis=1)
        ties_y = ((dy == 0) & (dx != 0)).sum(axis=1)
        denominator = np.sqrt(((concordant + discordant + ties_x) * (concordant + discordant + ties_y)).astype(float))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denominator > 0, (concordant - discordant) / denominator, np.nan)
    return np.array([correlation(a, b) for a, b in zip(x, y)])


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
