"""Search steps with known answers: how often a decision rule claims a winner that is not there.

A step's candidates are scored top-1 (0 or 100 per video) on the same
validation videos. The generator mirrors the noise ``x3dsearch calibrate``
measured on the default proxy: each video has its own difficulty (most videos
are nearly always right or nearly always wrong), each model its own affinity
per video (two architectures are right on different videos), and each training
seed shifts a model's whole accuracy (the seed noise no video bootstrap can
see). A candidate's true effect is added to its accuracy on every video, so the
expected difference of two candidates is known exactly.

Used by the tests and by ``experiments/decision_power.py`` (the error rate and
the power curve the documentation shows).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .simultaneous import Family, NoiseModel, compare_with


@dataclass(frozen=True)
class StepModel:
    """The noise of one step's scores (fractions of a video, not points)."""

    videos: int = 104
    difficulty: tuple[float, float] = (0.35, 0.4)   # Beta(a, b) of a video's base accuracy
    affinity: float = 0.12                          # SD of a model's own per-video offset
    seed_shift: float = 0.04                        # SD of a training seed's shift of a whole model

    def draw_videos(self, rng: np.random.Generator) -> np.ndarray:
        return rng.beta(*self.difficulty, self.videos)

    def draw_affinity(self, rng: np.random.Generator, models: int) -> np.ndarray:
        return rng.normal(0.0, self.affinity, (models, self.videos))

    def train(self, rng: np.random.Generator, base: np.ndarray, affinity: np.ndarray, effect: float) -> np.ndarray:
        """One training's per-video top-1 (0 or 100)."""
        p = np.clip(base + affinity + effect + rng.normal(0.0, self.seed_shift), 0.0, 1.0)
        return 100.0 * (rng.random(self.videos) < p)


def measured_noise(model: StepModel, seed: int = 0, pairs: int = 200, seeds: int = 8) -> tuple[float, float]:
    """What calibrate would measure on this generator, in points: the SD over seeds of a paired difference
    on fixed videos (the noise model), and the video-bootstrap SD of one seed's difference."""
    rng = np.random.default_rng(seed)
    seed_sds, video_sds = [], []
    for _ in range(pairs):
        base, aff = model.draw_videos(rng), model.draw_affinity(rng, 2)
        diffs = np.stack([model.train(rng, base, aff[0], 0.0) - model.train(rng, base, aff[1], 0.0)
                          for _ in range(seeds)])
        seed_sds.append(diffs.mean(axis=1).var(ddof=1))
        video_sds.append(diffs.var(axis=1, ddof=1).mean() / model.videos)
    return float(np.sqrt(np.mean(seed_sds))), float(np.sqrt(np.mean(video_sds)))


def pair_sd(model: StepModel, seed: int = 0, pairs: int = 2000) -> float:
    """The SD of one seed's paired difference of two equal models over new videos, affinities and seeds,
    in points: the unit of an effect size."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(pairs):
        base, aff = model.draw_videos(rng), model.draw_affinity(rng, 2)
        out.append((model.train(rng, base, aff[0], 0.0) - model.train(rng, base, aff[1], 0.0)).mean())
    return float(np.std(out))


def shift_for(model: StepModel, points: float, seed: int = 0, draws: int = 400) -> float:
    """The accuracy shift that makes a candidate better by ``points`` expected top-1 points (clipping at
    0 and 1 makes a shift worth less than itself): found by bisection on fixed draws."""
    rng = np.random.default_rng(seed)
    base = np.stack([model.draw_videos(rng) for _ in range(draws)])
    aff = rng.normal(0.0, model.affinity, base.shape)
    seeds = rng.normal(0.0, model.seed_shift, (draws, 1))
    p0 = np.clip(base + aff + seeds, 0.0, 1.0).mean()

    def gain(shift: float) -> float:
        return 100.0 * float(np.clip(base + aff + seeds + shift, 0.0, 1.0).mean() - p0)

    low, high = 0.0, 1.0
    if gain(high) < points:
        raise ValueError(f"no shift makes a candidate {points:g} points better")
    for _ in range(50):
        mid = (low + high) / 2
        low, high = (mid, high) if gain(mid) < points else (low, mid)
    return (low + high) / 2


def step(rng: np.random.Generator, model: StepModel, effects: Sequence[float], seeds: int = 1,
         ) -> dict[str, dict[int, np.ndarray]]:
    """One simulated step: candidate ``c<i>`` with true effect ``effects[i]`` (fraction), ``seeds`` trainings."""
    base, aff = model.draw_videos(rng), model.draw_affinity(rng, len(effects))
    return {f"c{i}": {s: model.train(rng, base, aff[i], e) for s in range(seeds)} for i, e in enumerate(effects)}


def decide(values: dict[str, dict[int, np.ndarray]], seed: int, level: float, noise: NoiseModel | None,
           resamples: int) -> Family:
    """The search's rule: the best mean score against every other candidate."""
    best = max(values, key=lambda n: np.mean([row.mean() for row in values[n].values()]))
    return compare_with(best, values, seed, level, noise, resamples)


def repeated_step(rng: np.random.Generator, model: StepModel, noise: NoiseModel | None, step_seed: int,
                  level: float, looks: int, resamples: int, candidates: int = 6) -> bool:
    """``--on-tie repeat`` on equal candidates: look after 1, 2, ... ``looks`` seeds, training the best and
    its ties again after each look, and stop at the first look that excludes every other candidate.
    Whether the step claimed a winner (wrongly: none is better)."""
    base, aff = model.draw_videos(rng), model.draw_affinity(rng, candidates)
    values = {f"c{m}": {0: model.train(rng, base, aff[m], 0.0)} for m in range(candidates)}
    for look in range(looks):
        family = decide(values, step_seed * 10 + look, level, noise, resamples)
        if family.all_excluded:
            return True
        for name in [family.reference, *family.not_excluded()]:
            values[name][look + 1] = model.train(rng, base, aff[int(name[1:])], 0.0)
    return False
