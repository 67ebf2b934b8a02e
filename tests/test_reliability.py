"""One seed's reliability (ICC) of a calibration's models x seeds table: a hand-worked table, the seeds'
shared shift, and the interval's coverage by simulation with known answers."""
from __future__ import annotations

import numpy as np
import pytest

from x3dsearch.calibrate.reliability import f_quantile, seed_reliability


def test_a_hand_worked_table():
    # 3 models x 2 seeds (hand-written). Model means 2, 2, 7; seed means 3, 13/3; grand mean 11/3.
    # MS(model) = 2 x 50/3 / 2 = 50/3; residuals +-1/3 (x4) and +-2/3 (x2): MS(rest) = (4/3) / 2 = 2/3.
    # ICC = (50/3 - 2/3) / (50/3 + 2/3) = 12/13; model SD sqrt((50/3 - 2/3) / 2) = sqrt(8).
    result = seed_reliability(np.array([[1.0, 3.0], [2.0, 2.0], [6.0, 8.0]]))
    assert result.one_seed == pytest.approx(12 / 13, abs=1e-12)
    assert result.model_sd == pytest.approx(8 ** 0.5, abs=1e-12)
    assert result.training_sd == pytest.approx((2 / 3) ** 0.5, abs=1e-12)
    assert (result.models, result.seeds) == (3, 2)
    assert result.interval[0] < result.one_seed < result.interval[1] <= 1


def test_a_seeds_shared_shift_is_not_training_noise():
    """Every model trained at one seed moving together changes no ranking: consistency, not absolute
    agreement (which would count the shift: 0.5 here falls to about 0.2 with it)."""
    rng = np.random.default_rng(0)
    table = rng.normal(0, 1, (8, 1)) + rng.normal(0, 1, (8, 6))
    shifted = table + np.array([0.0, 5.0, -5.0, 10.0, 0.0, 3.0])[None, :]
    a, b = seed_reliability(table), seed_reliability(shifted)
    assert b.one_seed == pytest.approx(a.one_seed, abs=1e-12) and b.interval == pytest.approx(a.interval, abs=1e-12)


def test_spearman_brown_and_seeds_needed():
    result = seed_reliability(np.array([[1.0, 3.0], [2.0, 2.0], [6.0, 8.0]]))
    assert result.of_mean(1) == pytest.approx(result.one_seed)
    # ICC 0.25: two seeds 0.4, seven 0.7 exactly (7 x 0.25 / (1 + 6 x 0.25) = 1.75 / 2.5)
    quarter = type(result)(0.25, (0.0, 0.5), 1.0, 3 ** 0.5, 8, 6)
    assert quarter.of_mean(2) == pytest.approx(0.4) and quarter.seeds_for(0.7) == 7
    assert quarter.seeds_for(0.71) == 8
    assert type(result)(-0.1, (-0.3, 0.2), 0.0, 1.0, 8, 6).seeds_for(0.7) is None


def test_f_quantiles_match_tables():
    # F(0.95; 7, 35) = 2.285 and F(0.95; 35, 7) = 3.358 (4 million draws each; tables: 2.29 and 3.36 by
    # interpolation between 30 and 40)
    assert f_quantile(0.95, 7, 35) == pytest.approx(2.285, rel=0.003)
    assert f_quantile(0.95, 35, 7) == pytest.approx(3.358, rel=0.003)


def test_the_interval_covers_a_known_icc_nine_times_in_ten():
    """4000 simulated calibrations of 8 models x 6 seeds, model SD 3 and training SD 4 (ICC 9/25 = 0.36),
    with a shared seed shift. A 90% interval covers 0.36 in 0.88..0.92 of them (4 standard errors either
    side; a 95% or an 85% interval would fall outside, 6 standard errors away)."""
    rng = np.random.default_rng(7)
    truth, covered, estimates = 9 / 25, 0, []
    for _ in range(4000):
        table = rng.normal(0, 3, (8, 1)) + rng.normal(0, 2, (1, 6)) + rng.normal(0, 4, (8, 6))
        result = seed_reliability(table)
        covered += result.interval[0] <= truth <= result.interval[1]
        estimates.append(result.one_seed)
    assert 0.88 <= covered / 4000 <= 0.92
    assert np.mean(estimates) == pytest.approx(truth, abs=0.04)


def test_too_small_or_exact_tables_are_refused():
    with pytest.raises(ValueError, match="2 models x 2 seeds"):
        seed_reliability(np.ones((1, 4)))
    with pytest.raises(ValueError, match="exactly"):
        seed_reliability(np.add.outer([1.0, 2.0, 3.0], [0.0, 1.0]))


def test_on_each_seeds_ranks_it_is_the_mean_seed_against_seed_spearman():
    """The identity docs/method/calibration.md relies on: without ties, one seed's ICC of the ranks is the
    mean Spearman over every two seeds (random, tie-free scores)."""
    from itertools import combinations

    from x3dsearch.stats import ranks, spearman

    table = np.random.default_rng(3).normal(0, 1, (8, 6)) + np.linspace(0, 2, 8)[:, None]
    ranked = np.column_stack([ranks(table[:, s]) for s in range(6)])
    pairs = [spearman(table[:, a], table[:, b]) for a, b in combinations(range(6), 2)]
    assert seed_reliability(ranked).one_seed == pytest.approx(np.mean(pairs), abs=1e-12)
    assert seed_reliability(table).one_seed != pytest.approx(np.mean(pairs), abs=0.01)  # the scores' differs
