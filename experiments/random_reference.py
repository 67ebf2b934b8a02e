"""Does the search's final model beat random architectures under the reference training? (issue: a proxy
with signal, the goal "beats the median of at least 5 random architectures, beyond noise").

``x3dsearch baseline RUN --random N`` compares the final model with N random architectures of the run's
space at its target, each under the run's own proxy budget and init. With ``--proxy-init inherit`` that
comparison favours the search: its final model's score ends a chain of fine-tunings (seed -> step 1 ->
... -> final), while each random architecture gets one. This script takes the same architectures and
trains every one, the final model too, from scratch under a reference budget (default
``experiments/recipes/quick-x4.yaml``, the default calibration's reference: ``quick`` at 4x its epochs),
at the same seeds, and scores each on the test split (never used to choose)::

    x3dsearch baseline runs/demo-s0 --random 5
    .venv/bin/python experiments/random_reference.py runs/demo-s0 --seeds 1 --workers 2

It prints, as JSON, each model's held-out top-1 per seed, the random models' median, and
``final - median of the random models`` with a 90% bootstrap interval: test videos (and seeds) are
resampled together for every model, and the median is taken again in every resample. Trainings are
resumable and reused: a second call trains nothing.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from warm_start_gap import add_reference_options, heldout_correct, provenance, train_all

from x3dsearch.utils.io import read_yaml

RESAMPLES = 4000


def final_minus_median(final: np.ndarray, randoms: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """``final`` is (seeds, videos) of 0/1 outcomes, ``randoms`` (models, seeds, videos). The statistic is
    final top-1 minus the median of the random models' top-1 (points), and its 90% percentile interval
    over resampled videos and seeds."""
    def statistic(f: np.ndarray, r: np.ndarray) -> np.ndarray:
        return 100.0 * (f.mean(axis=(-2, -1)) - np.median(r.mean(axis=(-2, -1)), axis=-1))

    rng = np.random.default_rng(seed)
    seeds, videos = final.shape
    s_idx = rng.integers(0, seeds, size=(RESAMPLES, seeds))
    v_idx = rng.integers(0, videos, size=(RESAMPLES, videos))
    f = final[s_idx[:, :, None], v_idx[:, None, :]]                      # (resamples, seeds, videos)
    r = randoms[:, s_idx[:, :, None], v_idx[:, None, :]].transpose(1, 0, 2, 3)  # (resamples, models, ...)
    draws = statistic(f, r)
    low, high = np.percentile(draws, [5, 95])
    return float(statistic(final, randoms)), float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished search run with random baselines (baseline --random N)")
    add_reference_options(parser, seeds=1, out="random-reference")
    args = parser.parse_args()
    log = read_yaml(args.run / "expansion_path.yaml")
    if log.get("status") != "finished" or not log.get("final"):
        raise SystemExit(f"random_reference.py: {args.run} has not finished")
    randoms = {b["name"]: b["factors"] for b in log.get("baselines") or [] if b["name"].startswith("random-")}
    if len(randoms) < 2:
        raise SystemExit(f"random_reference.py: {args.run} has {len(randoms)} random baselines; "
                         f"run `x3dsearch baseline {args.run} --random 5` first")
    models = {"final": log["final"]["factors"], **randoms}
    data = str(read_yaml(args.run / "config.yaml")["data"]["root"])
    out = args.out or args.run / "random-reference"
    seeds = list(range(args.seeds))
    folders = {(name, s): out / f"{name}-s{s}" for name in models for s in seeds}
    jobs = [(models[name], data, args.budget, s, str(folder), None) for (name, s), folder in folders.items()]
    trained = len(train_all(jobs, args.workers))
    outcomes = {key: heldout_correct(folder) for key, folder in folders.items()}
    videos = sorted(set.intersection(*(set(o) for o in outcomes.values())))
    table = np.array([[[outcomes[name, s][v] for v in videos] for s in seeds] for name in models])
    top1 = {name: [round(100.0 * float(row.mean()), 1) for row in table[i]] for i, name in enumerate(models)}
    margin, low, high = final_minus_median(table[0], table[1:])
    report = {**provenance(), "run": str(args.run), "reference_budget": args.budget, "seeds": seeds,
              "videos": len(videos),
              "trained_now": trained, "factors": models, "heldout_top1": top1,
              "random_median": round(float(np.median(100.0 * table[1:].mean(axis=(1, 2)))), 1),
              "final_minus_random_median": {"margin": round(margin, 2), "ci90": [round(low, 2), round(high, 2)]},
              "beats_the_median_beyond_noise": low > 0}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
