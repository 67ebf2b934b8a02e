"""Which tie rule leads to the better model: the search's own step, replayed on a calibration's trainings.

A calibration of the default model set holds one search step (the space's six
first-step candidates of X2D, named ``s1-*``, and X2D itself) trained at
several proxy seeds, and every model's reference (a 4x longer training, scored
on held-out videos). At each proxy seed this replays the step's decision with
the search's own :class:`~x3dsearch.search.judge.Judge` under each tie rule,
and reads the reference accuracy of the model each rule keeps:

    .venv/bin/python experiments/tie_rule.py runs/cal-default

The rule whose kept models score higher under the reference is the better
default. With a few seeds this is a small sample, and the table says so.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from x3dsearch.calibrate.plan import CalibrationDir
from x3dsearch.factors import Factors
from x3dsearch.noise import load_noise
from x3dsearch.runlog import Trial, TrialStatus
from x3dsearch.search.estimate import estimate_gflops
from x3dsearch.search.judge import Judge
from x3dsearch.train.folder import TrainingFolder
from x3dsearch.utils.io import read_yaml

RULES = ("best", "cheaper")


def trial(cal: CalibrationDir, budget: str, model: dict, seed: int, classes: int) -> Trial:
    name = f"{budget}/{model['name']}-s{seed}"
    result = TrainingFolder(cal.trial_dir(name)).read_result()
    factors = Factors.from_dict(model["factors"])
    return Trial(name=name, axis=model["name"], factors=factors, gflops=estimate_gflops(factors, classes),
                 status=TrialStatus.OK if result is not None and result.ok else TrialStatus.FAILED,
                 result=result, seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("calibration", type=Path, help="a calibration folder of the default model set")
    parser.add_argument("--noise", default=None, help="the seed-noise model [default: the calibration's own]")
    args = parser.parse_args()
    cal = CalibrationDir(args.calibration)
    config, summary = read_yaml(cal.config), read_yaml(cal.report)
    budget, classes = config["proxy"]["name"], 8
    reference = {m["name"]: m["reference"]["top1"] for m in summary["models"]}
    models = {m["name"]: m for m in config["models"]}
    candidates = [n for n in models if n.startswith("s1-")]
    if "x2d" not in models or len(candidates) < 2:
        raise SystemExit("tie_rule.py: the calibration needs x2d and the s1-* candidates (the default model set)")
    noise = load_noise(args.noise or str(cal.report), summary.get("criterion", "top1"), "", "")
    outcomes = {}

    def read(t: Trial):
        if t.name not in outcomes:
            outcomes[t.name] = TrainingFolder(cal.trial_dir(t.name)).read_outcomes("val")
        return outcomes[t.name]

    print(f"calibration {cal.path}: proxy {budget}, {config['seeds']} seeds; step: {', '.join(candidates)} from x2d")
    print(f"noise model: {noise.describe() if noise else 'none'}")
    print(f"{'seed':>4}  " + "  ".join(f"{r + ' keeps':<32}" for r in RULES) + "  significant")
    kept: dict[str, list[float]] = {r: [] for r in RULES}
    for seed in range(int(config["seeds"])):
        start = trial(cal, budget, models["x2d"], seed, classes)
        step = [trial(cal, budget, models[n], seed, classes) for n in candidates]
        cells, significant = [], None
        for rule in RULES:
            decision, _ = Judge("top1", rule, 0, read, noise=noise).decide(1, step, start)
            kept[rule].append(reference[decision.winner])
            significant = decision.significant
            cells.append(f"{decision.winner} (ref {reference[decision.winner]:.1f})")
        print(f"{seed:>4}  " + "  ".join(f"{c:<32}" for c in cells) + f"  {significant}")
    print("")
    for rule in RULES:
        print(f"{rule:<8} mean reference top-1 of the kept model: {np.mean(kept[rule]):.2f} "
              f"(over {len(kept[rule])} seeds: {', '.join(f'{v:.1f}' for v in kept[rule])})")
    best_possible = max(reference[n] for n in candidates)
    print(f"the best candidate under the reference: {max(candidates, key=reference.get)} ({best_possible:.1f}); "
          f"the candidates' reference mean: {np.mean([reference[n] for n in candidates]):.2f}")


if __name__ == "__main__":
    main()
