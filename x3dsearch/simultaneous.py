"""Which candidate is best, with the error held over all of them: multiple comparisons with the best.

A step compares its best-scoring candidate with every other one at once. A
claim "the best beats all the others" made from five separate 90% intervals is
wrong far more often than one time in ten, and the best was picked on the same
videos, so its margins are biased upward. The rule here is Hsu's *multiple
comparisons with the best* (MCB; Hsu, 1984): one-sided lower bounds of
``best - other`` for every other candidate, with one critical value for the
whole family, taken from a max-t bootstrap (Westfall & Young, 1993):

    q = the level-quantile of  max_j (D_j - D*_j) / se_j   over resamples *,
    low_j = D_j - q se_j,

where ``D_j`` is the observed paired difference and ``se_j`` its bootstrap SD.
A candidate is *excluded* (it is not the best) when ``low_j > 0``. The best and
the candidates not excluded form a confidence set that holds the truly best
model with probability at least ``level`` (Hsu's argument: on the event that the
true best's own bounds hold, no other model can exclude it), so a step that
excludes every other candidate is right at least ``level`` of the time.

Resamples draw videos (paired: every model is scored on the same videos) and,
with repeats, seeds (paired by seed: a seed one model lacks leaves the pairs
that need it, and no other row moves). A comparison of single trainings cannot
see seed noise, so a :class:`NoiseModel` measured by ``x3dsearch calibrate``
adds it. Its ``sd`` (the SD over seeds of a paired difference on fixed videos)
already holds the per-video coin flips that the video bootstrap resamples, so
the bootstrap's variance is topped up to ``sd**2`` rather than added to it: each
model gets a seed shift per resample, and the comparisons with one model share
its shift, as a step's comparisons with its best share the best's seed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .stats import LEVEL, RESAMPLES

#: Per model: seed -> that seed's per-video values (the same videos, in one order, for every model).
SeedRows = Mapping[int, np.ndarray]


@dataclass(frozen=True)
class NoiseModel:
    """The SD over training seeds of a paired difference of two models' scores on the same videos, in the
    criterion's unit: the seed noise a single-seed comparison cannot see. Measured by ``calibrate``."""

    criterion: str
    sd: float
    source: str                 # the file it came from, or "shipped: <name>"
    budget: str | None = None   # the proxy budget it was measured with
    data: str | None = None     # the dataset it was measured on

    def describe(self) -> str:
        return f"seed SD {self.sd:.3g} of a paired {self.criterion} difference ({self.source})"


@dataclass(frozen=True)
class Bound:
    """One comparison of a family: ``reference - other`` and its simultaneous one-sided bounds."""

    other: str
    margin: float
    low: float                  # reference beats other by at least this, simultaneously at the level
    high: float                 # ... and by at most this
    se: float
    seeds: tuple[int, ...]      # the seeds paired in this comparison
    widened: bool               # seed noise added from a noise model (single-seed comparison)

    @property
    def excluded(self) -> bool:
        """The reference beats ``other`` (one-sided, within the family's error)."""
        return self.low > 0


@dataclass(frozen=True)
class Family:
    """The reference model against every other one, with one critical value per side."""

    reference: str
    bounds: dict[str, Bound]
    level: float
    critical: float             # q of the lower bounds
    videos: int

    @property
    def all_excluded(self) -> bool:
        return bool(self.bounds) and all(b.excluded for b in self.bounds.values())

    def not_excluded(self) -> list[str]:
        return [name for name, b in self.bounds.items() if not b.excluded]


def _coupled_seed_draws(u: np.ndarray, count: int) -> np.ndarray:
    """Indices into a pair's own ``count`` seeds from shared uniforms: every pair resamples seeds from
    the same random numbers (pairs with the same seeds draw the same ones), each with the right law."""
    return np.minimum((u[:, :count] * count).astype(np.int64), count - 1)


def compare_with(reference: str, values: Mapping[str, SeedRows], seed: Sequence[int] | int,
                 level: float = LEVEL, noise: NoiseModel | None = None,
                 resamples: int = RESAMPLES) -> Family:
    """``reference`` against every other model in ``values``: simultaneous one-sided bounds at ``level``.

    ``values[name][s]`` is model ``name``'s per-video values at training seed ``s``; every row has the same
    videos in the same order. A pair uses the seeds both models have. ``noise`` widens the comparisons
    of single trainings (one common seed) by the seed noise they cannot see. Deterministic for ``seed``.
    """
    others = [name for name in values if name != reference]
    ref = values[reference]
    videos = len(next(iter(ref.values())))
    rng = np.random.default_rng(seed)
    cols = rng.integers(0, videos, (resamples, videos))
    # how often each resample drew each video: a resampled mean is then one matrix product
    counts = np.bincount((cols + videos * np.arange(resamples)[:, None]).ravel(),
                         minlength=resamples * videos).reshape(resamples, videos) / videos
    most_seeds = max(len(v) for v in values.values())
    u = rng.random((resamples, most_seeds))
    shifts = rng.standard_normal((resamples, len(values))) / np.sqrt(2.0)   # one seed shift per model
    index = {name: i for i, name in enumerate(values)}
    margins, draws, pairs = {}, {}, {}
    for name in others:
        common = tuple(sorted(set(ref) & set(values[name])))
        if not common:
            raise ValueError(f"{reference} and {name} share no training seed")
        diffs = np.stack([np.asarray(ref[s], dtype=np.float64) - np.asarray(values[name][s], dtype=np.float64)
                          for s in common])                                   # seeds x videos
        per_seed = (counts @ diffs.T).T                                       # seeds x resamples
        if len(common) > 1:
            picks = _coupled_seed_draws(u, len(common))                       # resamples x seeds
            drawn = per_seed[picks, np.arange(resamples)[:, None]].mean(axis=1)
        else:
            drawn = per_seed[0]
        widened = noise is not None and len(common) == 1
        if noise is not None and widened:
            # the measured seed variance already holds the per-video coin flips the video bootstrap
            # resamples: top the bootstrap's variance up to it rather than adding both
            extra = max(0.0, noise.sd ** 2 - float(drawn.var()))
            drawn = drawn + np.sqrt(extra) * (shifts[:, index[reference]] - shifts[:, index[name]])
        margins[name], draws[name], pairs[name] = float(diffs.mean()), drawn, (common, widened)
    lows, highs = _critical(margins, draws, level)
    bounds = {}
    for name in others:
        se = float(draws[name].std())
        bounds[name] = Bound(name, margins[name], margins[name] - lows * se, margins[name] + highs * se, se,
                             pairs[name][0], pairs[name][1])
    return Family(reference, bounds, level, lows, videos)


def _critical(margins: dict[str, float], draws: dict[str, np.ndarray], level: float) -> tuple[float, float]:
    """The max-t critical values of the lower and the upper bounds (0 for a family without spread)."""
    spread = [name for name in margins if draws[name].std() > 0]
    if not spread:
        return 0.0, 0.0
    t = np.stack([(draws[n] - margins[n]) / draws[n].std() for n in spread])  # pairs x resamples
    return float(np.quantile((-t).max(axis=0), level)), float(np.quantile(t.max(axis=0), level))


def pair_bounds(a: SeedRows, b: SeedRows, seed: Sequence[int] | int, level: float = LEVEL,
                noise: NoiseModel | None = None, resamples: int = RESAMPLES) -> Bound:
    """``a - b`` alone: one-sided bounds at ``level`` each (a family of one)."""
    return compare_with("a", {"a": a, "b": b}, seed, level, noise, resamples).bounds["b"]
