"""The proxy's recipes side by side, from calibrations of the same models, seeds and reference.

Each argument is a calibration folder (``x3dsearch calibrate --out DIR``) of one recipe: a proxy budget
and a ``--proxy-init``. For each, one row of the criterion's figures as ``calibration.yaml`` has them
(the proxy's init, init_lr_scale, a grown training's epochs and ema_decay; Spearman of the seed-mean
ranking with the reference, seed-to-seed Spearman, the seed SD and the paired-difference SD, and one
seed's 90% decisions: coverage, precision, power), and the proxy's cost: the multiply-adds of the proxy
trainings the calibration's figures read, summed (3 x forward GFLOPs x clips seen, as the trainer counts
them; wall seconds would compare machine loads as much as recipes), and the pair SD at the first row's cost;
then one seed's reliability (``x3dsearch.calibrate.reliability``, ICC(C,1) of the models x seeds table), the
seeds a step's mean needs to reach 0.7, and what those seeds cost for every model: the signal a
multiply-add buys; and the seeds and cost for 0.7 on each seed's ranks of the models (the reliability of
a ranking, whose one-seed figure is the seed-against-seed Spearman)::

    .venv/bin/python experiments/recipe_table.py runs/cal-default runs/cal-inherit runs/cal-inherit-ft25

Prints a markdown table.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from x3dsearch.budget import Budget
from x3dsearch.calibrate.plan import CalibrationDir
from x3dsearch.calibrate.reliability import seed_reliability
from x3dsearch.stats import ranks
from x3dsearch.train.folder import TrainingFolder
from x3dsearch.utils.io import read_yaml


def proxy_macs(folder: Path, summary: dict) -> float:
    """Multiply-adds of the proxy trainings the summary reads: every model at every seed, grown ones by
    their ``-inherit`` name, the parent (never grown) by its own."""
    cal = CalibrationDir(folder)
    budget, inherit = summary["proxy_budget"], summary.get("proxy_init") == "inherit"
    total = 0.0
    for model in summary["models"]:
        grown = inherit and model["name"] != summary.get("proxy_parent")
        for seed in range(int(summary["seeds"])):
            name = f"{budget}/{model['name']}-s{seed}" + ("-inherit" if grown else "")
            result = TrainingFolder(cal.trial_dir(name)).read_result()
            if result is None or result.train_macs is None:
                raise SystemExit(f"recipe_table.py: {cal.trial_dir(name)} holds no finished training")
            total += result.train_macs
    return total


def row(folder: Path, criterion: str, base_macs: float | None) -> tuple[list[str], float]:
    """One recipe's cells, and its proxy multiply-adds. The last cell is the pair SD at the first row's cost:
    ``k`` seeds averaged cost ``k`` times as much and divide the SD by the square root of ``k``, so a recipe
    at ``c`` times the cost stands at ``SD * sqrt(c)``."""
    summary = read_yaml(folder / "calibration.yaml")
    config = read_yaml(folder / "config.yaml")
    proxy = Budget.from_dict(config["proxy"])
    honesty = summary["honesty"][criterion]
    macs = proxy_macs(folder, summary)
    pair_sd = summary["noise"]["sd"][criterion]
    cells = [folder.name, summary["proxy_budget"], summary.get("proxy_init") or "scratch",
            f"{proxy.init_lr_scale:g}" if summary.get("proxy_init") == "inherit" else "-",
            str(proxy.epochs_for(True)) if summary.get("proxy_init") == "inherit" else "-",
            f"{proxy.ema_decay:g}" if proxy.ema_decay is not None else "-",
            f"{summary['spearman'][criterion]:.2f}",
            "{:.2f}..{:.2f}".format(*summary["spearman_ci"][criterion]["ci"]),
            f"{summary['seed_spearman'][criterion]:.2f}", f"{summary['seed_sd'][criterion]:.2f}",
            f"{pair_sd:.2f}",
            f"{honesty['coverage']['value']:.2f}", f"{honesty['precision']['value']:.2f}",
            f"{honesty['power']['value']:.2f}", f"{honesty['called']} of {honesty['judged']}",
            f"{macs / 1e12:.2f}", f"{pair_sd * math.sqrt(macs / (base_macs or macs)):.2f}"]
    table = np.array([m["proxy"][criterion]["seeds"] for m in summary["models"]])
    reliability = seed_reliability(table)
    # The same on each seed's ranks of the models: its ICC is the mean seed-against-seed Spearman (exactly,
    # without ties), which no far-ahead model can carry; point figures only (ranks are not normal).
    by_ranks = seed_reliability(np.column_stack([ranks(table[:, s]) for s in range(table.shape[1])]))
    needed, rank_needed = reliability.seeds_for(0.7), by_ranks.seeds_for(0.7)
    per_seed = macs / int(summary["seeds"]) / 1e12
    cells += [f"{reliability.one_seed:.2f} [{reliability.interval[0]:.2f}, {reliability.interval[1]:.2f}]",
              f"{reliability.model_sd:.2f}", f"{reliability.training_sd:.2f}", str(needed or "-"),
              f"{needed * per_seed:.2f}" if needed else "-", str(rank_needed or "-"),
              f"{rank_needed * per_seed:.2f}" if rank_needed else "-"]
    return cells, macs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("calibrations", type=Path, nargs="+", help="calibration folders, one per recipe")
    parser.add_argument("--criterion", default="top1", choices=("top1", "prob", "log-prob"))
    args = parser.parse_args()
    head = ["calibration", "proxy budget", "init", "init_lr_scale", "grown epochs", "ema_decay",
            "Spearman with reference", "90% CI", "seed vs seed", "seed SD", "pair SD", "coverage", "precision",
            "power", "called", "proxy TMACs", "pair SD at the first row's cost", "one seed's ICC [90% CI]",
            "model SD", "training SD", "seeds for 0.7", "proxy TMACs for 0.7", "seeds for 0.7 by ranks",
            "proxy TMACs for 0.7 by ranks"]
    print("| " + " | ".join(head) + " |")
    print("| " + " | ".join("---" for _ in head) + " |")
    base = None
    for folder in args.calibrations:
        cells, macs = row(folder, args.criterion, base)
        base = base or macs
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
