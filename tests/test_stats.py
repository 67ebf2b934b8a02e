"""Bootstrap intervals and rank correlations on constructed data with known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from x3dsearch.stats import bootstrap, kendall, ranks, spearman, spearman_interval


def test_identical_outcomes_give_a_zero_interval_that_is_not_significant():
    a = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    interval = bootstrap(a - a, seed=0)
    assert (interval.value, interval.low, interval.high) == (0.0, 0.0, 0.0)
    assert not interval.excludes_zero


def test_a_constant_difference_is_exact_and_significant():
    interval = bootstrap(np.full(40, 2.5), seed=3)
    assert interval.low == interval.high == interval.value == 2.5 and interval.excludes_zero


def test_interval_width_matches_the_normal_theory_for_a_known_spread():
    """Paired differences N(1, 4) over 400 videos: the 90% interval is 1 +- 1.645 x 2 / 20 = [0.84, 1.16]."""
    diffs = np.random.default_rng(7).normal(1.0, 2.0, 400)
    interval = bootstrap(diffs, seed=0)
    half = 1.645 * diffs.std(ddof=1) / math.sqrt(len(diffs))
    assert interval.value == pytest.approx(diffs.mean())
    assert interval.low == pytest.approx(diffs.mean() - half, abs=0.03)
    assert interval.high == pytest.approx(diffs.mean() + half, abs=0.03)


def test_resampling_seeds_widens_the_interval_when_repeats_disagree():
    """Two repeats that agree video by video but differ by a constant: resampling repeats adds that spread."""
    base = np.random.default_rng(1).normal(0.0, 1.0, 200)
    agree = bootstrap(np.vstack([base, base]), seed=0)
    differ = bootstrap(np.vstack([base - 1.5, base + 1.5]), seed=0)
    assert differ.high - differ.low > 2 * (agree.high - agree.low)


def test_the_interval_is_deterministic_for_a_seed():
    values = np.random.default_rng(2).random((3, 50))
    assert bootstrap(values, seed=(0, 4)) == bootstrap(values, seed=(0, 4))
    assert bootstrap(values, seed=(0, 4)) != bootstrap(values, seed=(0, 5))


def test_ranks_share_ties():
    assert list(ranks([10, 30, 20, 20])) == [1.0, 4.0, 2.5, 2.5]


def test_rank_correlations_on_hand_worked_examples():
    assert spearman([1, 2, 3, 4, 5], [2, 4, 6, 8, 10]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4, 5], [5, 4, 3, 2, 1]) == pytest.approx(-1.0)
    # d = ranks differ by (0, 0, 1, -1, 0): rho = 1 - 6 x 2 / (5 x 24) = 0.9
    assert spearman([1, 2, 3, 4, 5], [1, 2, 4, 3, 5]) == pytest.approx(0.9)
    # one swapped pair of 10: tau = (9 - 1) / 10 = 0.8
    assert kendall([1, 2, 3, 4, 5], [1, 2, 4, 3, 5]) == pytest.approx(0.8)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3])) and math.isnan(kendall([1, 1, 1], [1, 2, 3]))


def _models(rng: np.random.Generator, rates: list[float], seeds: int, videos: int) -> list[np.ndarray]:
    """Constructed top-1 outcomes (0 or 100 per video): model m is right with probability rates[m]."""
    return [100.0 * (rng.random((seeds, videos)) < rate) for rate in rates]


def test_rankings_that_no_resample_can_change_give_an_exact_interval():
    # every model right on a fixed share of every seed's videos, 30 points apart: no resample reorders them
    proxy = [np.tile(np.r_[np.full(k, 100.0), np.zeros(10 - k)], (3, 4)) for k in (1, 4, 7)]
    reference = [p[:2] + 1.0 for p in proxy]
    interval = spearman_interval(proxy, reference, seed=0)
    assert (interval.value, interval.low, interval.high) == (1.0, 1.0, 1.0)
    reversed_ = spearman_interval(proxy, reference[::-1], seed=0)
    assert (reversed_.value, reversed_.low, reversed_.high) == (-1.0, -1.0, -1.0)


def test_models_that_differ_only_by_noise_get_an_interval_around_zero():
    """Eight models with one true rate (50%), 3 seeds x 104 videos a side: both rankings are noise, so the
    interval must hold 0 and be wide; eight clearly spaced rates (20..90%) give one near 1."""
    rng = np.random.default_rng(11)
    noise = spearman_interval(_models(rng, [0.5] * 8, 3, 104), _models(rng, [0.5] * 8, 3, 104), seed=0)
    assert noise.low < 0 < noise.high and noise.high - noise.low > 0.8
    rates = [0.2 + 0.1 * k for k in range(8)]
    signal = spearman_interval(_models(rng, rates, 3, 104), _models(rng, rates, 3, 104), seed=0)
    assert signal.value > 0.9 and signal.low > 0.7


def test_the_spearman_interval_is_deterministic_and_refuses_ragged_input():
    rng = np.random.default_rng(5)
    proxy, reference = _models(rng, [0.3, 0.5, 0.6], 3, 40), _models(rng, [0.3, 0.5, 0.6], 2, 30)
    assert spearman_interval(proxy, reference, seed=[1, 2]) == spearman_interval(proxy, reference, seed=[1, 2])
    with pytest.raises(ValueError):
        spearman_interval(proxy, reference[:2], seed=0)
    with pytest.raises(ValueError):
        spearman_interval([proxy[0], proxy[1][:, :10], proxy[2]], reference, seed=0)


def test_one_repeat_resamples_exactly_as_one_draw_per_resample(monkeypatch):
    """The fast path for one repeat must keep every interval of earlier runs: same draws, same means."""
    import x3dsearch.stats as stats

    def one_by_one(values, rng, resamples):
        return np.array([values[0][rng.integers(0, values.shape[1], values.shape[1])].mean()
                         for _ in range(resamples)])

    values = np.random.default_rng(3).normal(size=(1, 103))
    expected = one_by_one(values, np.random.default_rng([7, 1]), 500)
    assert np.array_equal(stats._resampled_means(values, np.random.default_rng([7, 1]), 500), expected)
    monkeypatch.setattr(stats, "_BLOCK", 1000)  # blocks of 9 resamples: still the same stream
    assert np.array_equal(stats._resampled_means(values, np.random.default_rng([7, 1]), 500), expected)
