"""Error rate and power of a step's decision rule, on simulated steps with known answers.

Every simulated step has six candidates scored top-1 on 104 validation videos
with the noise ``x3dsearch calibrate`` measured on the default proxy
(:mod:`x3dsearch.simulate`: seed SD of a paired difference about 6.5 points,
video-bootstrap SD of one seed's difference about 4.7). The search's rule
(simultaneous one-sided 90% bounds, widened by the seed-noise model the
generator's own calibration gives) is run on each, and so is the old rule
(per-pair bounds on the videos alone) for comparison.

    .venv/bin/python experiments/decision_power.py --steps 400

prints the share of steps that claim a winner when none is better (six equal
candidates; and the least favourable case, two equal best and four clearly
worse), the detection rate against the effect size in SDs of a one-seed paired
difference (the power curve), and ``--on-tie repeat``'s error over its looks.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from x3dsearch.search.judge import look_level
from x3dsearch.simulate import StepModel, decide, measured_noise, pair_sd, repeated_step, shift_for, step
from x3dsearch.simultaneous import NoiseModel, pair_bounds

RESAMPLES = 1000


def old_rule(values: dict[str, dict[int, np.ndarray]], seed: int) -> str | None:
    """The rule before simultaneous decisions: the best beats the runner-up's two-sided 90% interval on
    the videos alone (equivalently a one-sided 95% bound; no seed noise)."""
    best = max(values, key=lambda n: values[n][0].mean())
    runner_up = max((n for n in values if n != best), key=lambda n: values[n][0].mean())
    return best if pair_bounds(values[best], values[runner_up], seed, 0.95, None, RESAMPLES).low > 0 else None


def rates(model: StepModel, noise: NoiseModel, effects: list[float], steps: int, seed: int) -> tuple[float, float]:
    """(new rule, old rule): the share of steps whose claimed winner is c0 when c0 is better, or any
    claim at all when no candidate is better than the best of the rest."""
    rng = np.random.default_rng(seed)
    new = old = 0
    truth = effects[0] > max(effects[1:])
    for i in range(steps):
        values = step(rng, model, effects)
        family = decide(values, i, 0.9, noise, RESAMPLES)
        claim = family.reference if family.all_excluded else None
        before = old_rule(values, i)
        new += claim == "c0" if truth else claim is not None
        old += before == "c0" if truth else before is not None
    return new / steps, old / steps


def repeat_error(model: StepModel, noise: NoiseModel, steps: int, seed: int, looks: int = 3) -> float:
    """Six equal candidates under ``--on-tie repeat`` (1 seed, up to ``looks`` seeds for the tied)."""
    rng = np.random.default_rng(seed)
    level = look_level("repeat", 1, looks)
    return sum(repeated_step(rng, model, noise, i, level, looks, RESAMPLES) for i in range(steps)) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=400, help="simulated steps per row")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.monotonic()
    model = StepModel()
    seed_sd, video_sd = measured_noise(model, seed=args.seed, pairs=200)
    sd = pair_sd(model, seed=args.seed)
    noise = NoiseModel("top1", seed_sd, "the generator's own calibration")
    print(f"generator: seed SD of a paired difference {seed_sd:.2f} points (the noise model), video-bootstrap SD "
          f"{video_sd:.2f}; SD of a one-seed paired difference over videos and seeds {sd:.2f} points")
    print(f"{args.steps} simulated steps per row, 6 candidates, 104 videos, {RESAMPLES} resamples, seed {args.seed}")
    print("")
    print(f"{'case':<44} {'new rule':>9} {'old rule':>9}")
    bad = -shift_for(model, 4 * sd)
    for label, effects in (("no candidate better (6 equal)", [0.0] * 6),
                           ("least favourable (2 equal best, 4 worse by 4 SD)", [0.0, 0.0] + [bad] * 4)):
        new, old = rates(model, noise, effects, args.steps, args.seed)
        print(f"{label:<44} {new:>9.3f} {old:>9.3f}   (claims, should be <= 0.10)")
    for size in (1, 2, 3, 4, 5):
        new, old = rates(model, noise, [shift_for(model, size * sd)] + [0.0] * 5, args.steps, args.seed + size)
        print(f"{f'one candidate better by {size} SD ({size * sd:.1f} points)':<44} {new:>9.3f} {old:>9.3f}"
              f"   (detected)")
    print("")
    print(f"--on-tie repeat, 6 equal, 3 looks at level {look_level('repeat', 1, 3):.4f}: claims "
          f"{repeat_error(model, noise, args.steps, args.seed):.3f} (should be <= 0.10)")
    print(f"took {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
