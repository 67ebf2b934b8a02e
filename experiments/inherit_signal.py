"""Does a step's proxy have more signal when its candidates grow from the parent's weights?

A calibration of the default model set already holds the search's first step
trained from scratch: X2D and its six one-axis candidates (``s1-*``) at several
proxy seeds, each scored on the validation split, and every model's reference
(a 4x longer training scored on the held-out test split). This script trains
the same candidates with the same budget and seeds, but starting from X2D's
trained proxy weights grown to each candidate (``--init``, network morphism,
docs/method/growth.md), exactly as ``expand --proxy-init inherit`` does, and
sets the two arms side by side:

    .venv/bin/python experiments/inherit_signal.py runs/cal-default --workers 2

Per arm: the mean validation top-1, the pooled seed SD, the mean Spearman
between two seeds' rankings of the six candidates, the Spearman of the
seed-mean ranking with the reference ranking, and seconds per training (one
thread each).
Six candidates and a few seeds are a small sample: the table says so, and
the reference itself is single-seed unless the calibration has more.
Trainings are resumable and reused: a second run trains nothing.
"""
from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing as mp
import platform
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from x3dsearch.calibrate.plan import CalibrationDir
from x3dsearch.factors import Factors
from x3dsearch.stats import spearman
from x3dsearch.train.folder import TrainingFolder
from x3dsearch.utils.io import read_yaml

PARENT = "x2d"


def _train(job: tuple[dict, str, str, int, str, str | None]) -> float:
    """One training in a worker process (one thread); returns its wall seconds (0 when reused)."""
    from x3dsearch.train import train_and_evaluate

    factors, data, budget, seed, out, init = job
    done = TrainingFolder(Path(out)).read_result()
    if done is not None and done.ok:
        return 0.0
    started = time.monotonic()
    train_and_evaluate(Factors.from_dict(factors), data, budget, seed, Path(out), threads=1, progress=False,
                       init=Path(init) if init else None)
    return time.monotonic() - started


def _arm(folders: dict[tuple[str, int], Path], names: list[str], seeds: list[int], reference: dict[str, float]) -> dict:
    top1 = np.array([[TrainingFolder(folders[n, s]).read_result().top1 for s in seeds] for n in names])
    pairs = [spearman(top1[:, a], top1[:, b]) for a, b in itertools.combinations(range(len(seeds)), 2)]
    return {"mean_top1": float(top1.mean()), "seed_sd": float(np.sqrt(top1.var(axis=1, ddof=1).mean())),
            "seed_spearman": float(np.mean(pairs)),
            "reference_spearman": float(spearman(top1.mean(axis=1), [reference[n] for n in names])),
            "top1": {n: [round(float(v), 1) for v in row] for n, row in zip(names, top1)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("calibration", type=Path, help="a calibration folder of the default model set")
    parser.add_argument("--parent-seed", type=int, default=0, help="which of X2D's proxy trainings to grow from")
    parser.add_argument("--workers", type=int, default=2, help="trainings side by side, one thread each")
    args = parser.parse_args()
    cal = CalibrationDir(args.calibration)
    config, summary = read_yaml(cal.config), read_yaml(cal.report)
    budget, seeds = config["proxy"]["name"], list(range(int(config["seeds"])))
    data = config["data"]["root"]
    models = {m["name"]: Factors.from_dict(m["factors"]) for m in config["models"] if m["name"].startswith("s1-")}
    if len(models) < 2 or PARENT not in {m["name"] for m in config["models"]}:
        raise SystemExit("inherit_signal.py: the calibration needs x2d and the s1-* candidates (the default model set)")
    reference = {m["name"]: m["reference"]["top1"] for m in summary["models"]}
    parent = cal.trial_dir(f"{budget}/{PARENT}-s{args.parent_seed}") / "model.pt"
    scratch = {(n, s): cal.trial_dir(f"{budget}/{n}-s{s}") for n in models for s in seeds}
    inherit = {(n, s): args.calibration / "runs" / f"{budget}-inherit" / f"{n}-s{s}" for n in models for s in seeds}
    jobs = [(models[n].to_dict(), data, budget, s, str(inherit[n, s]), str(parent)) for n, s in inherit]
    # Not multiprocessing.Pool: its daemonic workers may not start the trainer's data-loading processes.
    with ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as pool:
        walls = [w for w in pool.map(_train, jobs) if w > 0]
    # Seconds per training, one thread each; the scratch arm's from its own records (the calibration's run).
    cost = {"scratch": float(np.mean([TrainingFolder(p).read_result().wall_time_s for p in scratch.values()])),
            "inherit": float(np.mean([TrainingFolder(p).read_result().wall_time_s for p in inherit.values()]))}
    report = {"command": " ".join(sys.argv), "machine": f"{platform.node()} ({mp.cpu_count()} CPUs)",
              "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                       cwd=Path(__file__).resolve().parents[1]).stdout.strip(),
              "budget": budget, "seeds": seeds, "parent": str(parent),
              "val_videos": summary.get("data", {}).get("val_videos"), "candidates": sorted(models),
              "reference_metric": summary.get("reference_metric"), "trained_now": len(walls),
              "arms": {"scratch": {**_arm(scratch, sorted(models), seeds, reference), "train_s": cost["scratch"]},
                       "inherit": {**_arm(inherit, sorted(models), seeds, reference), "train_s": cost["inherit"]}}}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
