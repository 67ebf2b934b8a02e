"""How much of one proxy training's score is the model, and how much is the seed.

A step can only rank its candidates if their scores differ more between models than between
trainings of one model. A calibration trains every model at the same seeds, so its models x seeds
table splits the way a two-way analysis of variance does (McGraw & Wong, 1996):

- the *model* spread, the SD of the models' own means (what a ranking should find);
- the *training* spread, one training's deviation from its model's mean once the seed's shift, shared
  by every model trained at that seed, is taken out (what a ranking must see through);
- one seed's *reliability*, ICC(C,1) = model variance / (model variance + training variance): the
  correlation two seeds' scores of the same models are expected to have. A mean over k seeds has
  reliability k ICC / (1 + (k - 1) ICC) (Spearman-Brown), which says how many seeds a step needs.

The interval is the exact one for normal model and training effects (an F distribution); its quantiles
come from a fixed-seed simulation, so the package needs no SciPy. This is a property of the proxy on
these models, so it is compared between recipes at equal cost: signal per CPU-second.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..stats import LEVEL

#: Draws behind each F quantile: its 5% and 95% points move by under 0.1% between seeds of the simulation.
F_DRAWS = 1_000_000


@dataclass(frozen=True)
class Reliability:
    """One criterion's split of a models x seeds table (see the module's docstring)."""

    one_seed: float                  # ICC(C,1): the expected correlation of two seeds' scores
    interval: tuple[float, float]    # its two-sided ``level`` interval
    model_sd: float                  # SD of the models' own means (0 when the seeds hide it)
    training_sd: float               # SD of one training around its model's mean, seed shift removed
    models: int
    seeds: int
    level: float = LEVEL

    def of_mean(self, seeds: int) -> float:
        """The reliability of a mean over ``seeds`` trainings per model (Spearman-Brown)."""
        return seeds * self.one_seed / (1 + (seeds - 1) * self.one_seed)

    def seeds_for(self, target: float) -> int | None:
        """The fewest seeds whose mean reaches reliability ``target``; None when one seed carries no signal."""
        if self.one_seed <= 0:
            return None
        if self.one_seed >= target:
            return 1
        return math.ceil(target * (1 - self.one_seed) / (self.one_seed * (1 - target)) - 1e-9)

    def to_dict(self) -> dict[str, object]:
        return {"one_seed": self.one_seed, "interval": list(self.interval), "level": self.level,
                "model_sd": self.model_sd, "training_sd": self.training_sd, "models": self.models,
                "seeds": self.seeds, "seeds_for_0.7": self.seeds_for(0.7)}


@lru_cache(maxsize=64)
def f_quantile(p: float, df1: int, df2: int, draws: int = F_DRAWS) -> float:
    """The ``p`` quantile of Fisher's F with (``df1``, ``df2``) degrees of freedom, by simulation.

    An upper quantile is read as 1 / the lower one of F(``df2``, ``df1``): the simulation is much denser
    there, so the same draws give it about ten times more precisely (0.1% against 1% at the 95% point)."""
    if p > 0.5:
        return 1.0 / f_quantile(1.0 - p, df2, df1, draws)
    rng = np.random.default_rng(20240917 + 1000 * df1 + df2)
    ratio = (rng.chisquare(df1, draws) / df1) / (rng.chisquare(df2, draws) / df2)
    return float(np.quantile(ratio, p))


def seed_reliability(table: np.ndarray, level: float = LEVEL) -> Reliability:
    """The split of ``table`` (models x seeds, one score per training; every model at every seed).

    Raises ValueError for fewer than 2 models or 2 seeds, or a table whose trainings all agree with
    the additive model exactly (no training spread to compare with)."""
    y = np.asarray(table, dtype=np.float64)
    if y.ndim != 2 or y.shape[0] < 2 or y.shape[1] < 2:
        raise ValueError(f"need at least 2 models x 2 seeds, got {y.shape}")
    models, seeds = y.shape
    model_means, seed_means, grand = y.mean(axis=1), y.mean(axis=0), float(y.mean())
    df_model, df_rest = models - 1, (models - 1) * (seeds - 1)
    ms_model = seeds * float(((model_means - grand) ** 2).sum()) / df_model
    residual = y - model_means[:, None] - seed_means[None, :] + grand
    ms_rest = float((residual ** 2).sum()) / df_rest
    if ms_rest <= 1e-12 * max(1.0, ms_model):
        raise ValueError("every training sits exactly on its model's mean plus its seed's shift")
    icc = (ms_model - ms_rest) / (ms_model + (seeds - 1) * ms_rest)
    tail = (1 + level) / 2
    f_obs = ms_model / ms_rest
    f_low = f_obs / f_quantile(tail, df_model, df_rest)
    f_high = f_obs * f_quantile(tail, df_rest, df_model)
    interval = ((f_low - 1) / (f_low + seeds - 1), (f_high - 1) / (f_high + seeds - 1))
    return Reliability(one_seed=float(icc), interval=(float(interval[0]), float(interval[1])),
                       model_sd=math.sqrt(max(0.0, (ms_model - ms_rest) / seeds)), training_sd=math.sqrt(ms_rest),
                       models=models, seeds=seeds, level=level)
