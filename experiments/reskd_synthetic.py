"""Reproduce ResKD's claim on the synthetic dataset: teacher, student without KD, student with KD.

Usage: python experiments/reskd_synthetic.py [CONFIG.yaml] [--data ROOT] [--out DIR] [--budget NAME]
Prints teacher top-1 and GFLOPs, the undistilled and distilled students' top-1
(mean and std over seeds) and the student's GFLOPs, and says whether the claim
holds: the distilled mean beats the undistilled one by more than the larger std.
Finished trainings are reused, so an interrupted run continues where it stopped.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from x3dsearch.budget import load_budget
from x3dsearch.complexity import complexity
from x3dsearch.distill import DistillConfig
from x3dsearch.errors import X3DSearchError
from x3dsearch.factors import Factors
from x3dsearch.train import train_and_evaluate
from x3dsearch.utils.io import atomic_write_json, read_yaml
from x3dsearch.utils.logging import setup_logging


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def run(config: dict, data: str, out: Path, budget_override: str | None, quiet: bool) -> dict:
    t_cfg = config["teacher"]
    teacher_factors = Factors.from_dict(t_cfg["factors"])
    student_factors = teacher_factors.replace(crop=int(config["student_crop"]))

    def budget_for(name: str, epochs: int | None):
        budget = load_budget(budget_override or name)
        return budget.replace(epochs=epochs, iterations=None) if epochs and not budget_override else budget

    progress = not quiet
    teacher = train_and_evaluate(teacher_factors, data, budget_for(t_cfg["budget"], t_cfg.get("epochs")),
                                 int(t_cfg.get("seed", 0)), out / "teacher", progress=progress)
    if teacher.status != "ok":
        raise SystemExit(f"teacher training {teacher.status}: {teacher.error}")
    student_budget = budget_for(config["budget"], config.get("epochs"))
    distill = DistillConfig(teacher=str((out / "teacher" / "model.pt").resolve()), **config.get("distill", {}))
    plain, reskd = [], []
    for seed in config["seeds"]:
        for name, budget, bucket in (("plain", student_budget, plain),
                                     ("reskd", student_budget.replace(distill=distill.to_dict()), reskd)):
            result = train_and_evaluate(student_factors, data, budget, int(seed), out / f"{name}_seed{seed}",
                                        progress=progress)
            if result.status != "ok":
                raise SystemExit(f"{name} seed {seed} {result.status}: {result.error}")
            bucket.append(result.top1)
    plain_mean, plain_std = mean_std(plain)
    kd_mean, kd_std = mean_std(reskd)
    summary = {
        "teacher": {"crop": teacher_factors.crop, "gflops": complexity(teacher_factors).gflops, "top1": teacher.top1},
        "student": {"crop": student_factors.crop, "gflops": complexity(student_factors).gflops},
        "plain": {"top1": plain, "mean": plain_mean, "std": plain_std},
        "reskd": {"top1": reskd, "mean": kd_mean, "std": kd_std},
        "claim_holds": kd_mean - plain_mean > max(plain_std, kd_std),
    }
    atomic_write_json(out / "summary.json", summary)
    return summary


def format_table(s: dict) -> str:
    t, st = s["teacher"], s["student"]
    rows = [
        "| model | crop | GFLOPs | top-1 (%) |",
        "| --- | --- | --- | --- |",
        f"| teacher | {t['crop']} | {t['gflops']:.3f} | {t['top1']:.1f} |",
        f"| student, no KD | {st['crop']} | {st['gflops']:.3f} | {s['plain']['mean']:.1f} ± {s['plain']['std']:.1f} |",
        f"| student, ResKD | {st['crop']} | {st['gflops']:.3f} | {s['reskd']['mean']:.1f} ± {s['reskd']['std']:.1f} |",
    ]
    verdict = "holds" if s["claim_holds"] else "does NOT hold"
    gain = s["reskd"]["mean"] - s["plain"]["mean"]
    rows.append(f"\nResKD gain {gain:+.1f} points over {len(s['plain']['top1'])} seeds: the claim {verdict}.")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=str(Path(__file__).with_name("reskd_synthetic.yaml")))
    parser.add_argument("--data", help="dataset root or 'synthetic' [default: the config's]")
    parser.add_argument("--out", type=Path, help="[default: the config's]")
    parser.add_argument("--budget", help="override every budget (e.g. smoke for a quick check)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    try:
        config = read_yaml(args.config)
    except X3DSearchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    out = args.out or Path(config.get("out", "runs/reskd_synthetic"))
    setup_logging(out / "experiment.log", console=not args.quiet)
    summary = run(config, args.data or config.get("data", "synthetic"), out, args.budget, args.quiet)
    print(format_table(summary))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
