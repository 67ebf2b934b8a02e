"""The bootstrap of calibrate's rank correlations: every resample's correlation at once against one call per
resample, side by side in one run, on the same resamples.

calibrate's summary computes a Spearman and a Kendall interval per criterion, each over 2000 resamples
(x3dsearch.stats.RESAMPLES); per resample, a call of ``spearman``/``kendall`` on 8 models costs tens of
microseconds of NumPy overhead. ``x3dsearch.stats._correlate_rows`` computes all of them in a few
array operations. This prints both timings, their ratio, and the largest difference between the two
(Spearman's may differ in the last bit: the sums are taken in another order).

Usage: python experiments/benchmarks/rank_interval.py [--models 8] [--resamples 2000] [--seed 0]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from x3dsearch.stats import _correlate_rows, kendall, spearman


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=8)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    # resampled mean scores: top-1 of 104 videos (multiples of 1/104, so ties happen) against a reference
    x = rng.integers(40, 70, size=(args.resamples, args.models)) / 104 * 100
    y = rng.normal(60, 10, size=(args.resamples, args.models))
    print(f"{args.resamples} resamples of {args.models} models, seed {args.seed}")
    for statistic in (spearman, kendall):
        start = time.perf_counter()
        one_by_one = np.array([statistic(a, b) for a, b in zip(x, y)])
        loop_s = time.perf_counter() - start
        start = time.perf_counter()
        at_once = _correlate_rows(statistic, x, y)
        rows_s = time.perf_counter() - start
        same_nan = bool((np.isnan(one_by_one) == np.isnan(at_once)).all())
        diff = float(np.nanmax(np.abs(one_by_one - at_once)))
        print(f"{statistic.__name__:9s} one call per resample {loop_s * 1000:8.1f} ms, all at once "
              f"{rows_s * 1000:6.1f} ms: x{loop_s / rows_s:.0f}; largest difference {diff:.1e}, "
              f"undefined resamples {'the same' if same_nan else 'DIFFER'}")


if __name__ == "__main__":
    main()
