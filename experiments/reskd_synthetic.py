"""ResKD, tested fairly on CPU: does a high-resolution teacher make a low-resolution student better?

Usage: python experiments/reskd_synthetic.py [CONFIG.yaml] [--data ROOT] [--out DIR] [--budget NAME]
                                             [--seeds N] [--grid] [--quiet]

On the synthetic ``detail`` variant (class pairs separated by mid-frequency detail that an
80 px crop weakens but keeps), with one network (X3D-XS-shaped) at every crop:

1. the teacher at its crop, under its own longer budget (or a given checkpoint);
2. the student alone (``none``) at its crop for every seed, and the same network alone at the
   reference crops (112 px, and 160 px: what training directly at the teacher's crop gives);
3. the check: the teacher must beat the undistilled student by ``margin`` points on the held-out
   split, or the experiment says so and makes no claim;
4. every distillation arm (``feature-mse``, ``dense-kl``, ``clip-kl``) with the same teacher and seeds;
5. held-out top-1 per arm (mean +- SD over seeds) and the difference to ``none`` paired by seed,
   with a t interval; the claim holds for an arm whose interval lies above 0.

Every student of one seed starts from the same weights and sees the same clips in the same
order with the same augmentation: the distilled arms' student pixels are bit-identical to the
``none`` arm's (the loader makes both crops from one decode). Finished trainings and held-out
evaluations are reused, so an interrupted run continues where it stopped.

``--grid`` trains the weight grid (``grid:`` in the config) on ``grid_seeds`` and reports the
validation top-1 and the KD / CE balance at the first step of each weight: the weights in
``arms:`` were chosen from it, on validation videos, never on the held-out ones.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Set before torch starts OpenMP: on shared cores, spinning OpenMP threads made a 2-thread training
# several times slower (docs/method/determinism.md). The wait policy changes no number.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

from x3dsearch.budget import Budget, load_budget
from x3dsearch.complexity import complexity
from x3dsearch.data import VideoClipDataset, load_split, make_loader, resolve_data
from x3dsearch.errors import ConfigError, X3DSearchError
from x3dsearch.factors import Factors
from x3dsearch.models import build_model
from x3dsearch.stats import LEVEL, holm, student_t_cdf, student_t_quantile
from x3dsearch.reskd import KDSpec, RunOptions, TeacherFailed, TeacherSpec, prepare_teacher, run_reskd
from x3dsearch.train import TrainResult, train_and_evaluate
from x3dsearch.utils.io import atomic_write_json, read_yaml
from x3dsearch.utils.logging import get_logger, setup_logging

log = get_logger("reskd")


class TrainingFailed(Exception):
    """A student's training diverged or failed (not bad input)."""

KD_ARMS = ("feature-mse", "dense-kl", "clip-kl")
#: Two-sided 90% t quantiles (the 0.95 quantile) by degrees of freedom.
T95 = {1: 6.314, 2: 2.920, 3: 2.353, 4: 2.132, 5: 2.015, 6: 1.943, 7: 1.895, 8: 1.860, 9: 1.833, 10: 1.812,
       12: 1.782, 15: 1.753, 20: 1.725, 30: 1.697}
CONFIG_KEYS = {"data", "out", "heldout", "network", "teacher", "student", "seeds", "references", "reference_seeds",
               "arms", "teacher_bn", "temperature", "margin", "grid", "grid_seeds"}


@dataclass(frozen=True)
class Experiment:
    data: str
    out: Path
    heldout: str
    network: Factors          # at the teacher's crop
    teacher: TeacherSpec
    student_crop: int
    student_budget: Budget
    seeds: tuple[int, ...]
    references: tuple[int, ...]
    reference_seeds: tuple[int, ...]
    arms: dict[str, KDSpec]   # "none" and the distillation kinds
    margin: float
    grid: dict[str, tuple[float, ...]]
    grid_seeds: tuple[int, ...]

    @property
    def student(self) -> Factors:
        return self.network.replace(crop=self.student_crop)


def _budget(section: dict, override: str | None) -> Budget:
    if override:
        return load_budget(override)
    budget = load_budget(section.get("budget", "quick"), cuda=False)
    return budget.replace(epochs=int(section["epochs"]), iterations=None) if section.get("epochs") else budget


def load_experiment(path: str, args: argparse.Namespace) -> Experiment:
    """The config, checked before anything trains; bad values raise ConfigError (one line, exit 2)."""
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping")
    unknown = sorted(set(raw) - CONFIG_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key '{unknown[0]}'")
    try:
        t_cfg, s_cfg = dict(raw["teacher"]), dict(raw["student"])
        network = Factors.from_dict({**raw["network"], "crop": int(t_cfg["crop"])})
        seeds = tuple(int(s) for s in raw["seeds"])[: args.seeds or None]
        checkpoint = t_cfg.get("checkpoint")
        teacher = TeacherSpec(network, _budget(t_cfg, args.budget), seed=int(t_cfg.get("seed", 0)),
                              checkpoint=Path(checkpoint).expanduser().resolve() if checkpoint else None)
        common = {"teacher_bn": raw.get("teacher_bn", "train"), "temperature": float(raw.get("temperature", 2.0))}
        arms = {"none": KDSpec(kind="none")}
        for kind, settings in (raw.get("arms") or {}).items():
            if kind not in KD_ARMS:
                raise ConfigError(f"{path}: arms: '{kind}' is not one of {', '.join(KD_ARMS)}")
            arms[kind] = KDSpec(kind=kind, **{**common, **(settings or {})})
        grid = {kind: tuple(float(w) for w in weights) for kind, weights in (raw.get("grid") or {}).items()}
        experiment = Experiment(
            data=args.data or raw.get("data", "synthetic-detail"),
            out=(args.out or Path(raw.get("out", "runs/reskd_synthetic"))).expanduser().resolve(),
            heldout=str(raw.get("heldout", "test")), network=network, teacher=teacher,
            student_crop=int(s_cfg["crop"]), student_budget=_budget(s_cfg, args.budget), seeds=seeds,
            references=tuple(int(c) for c in raw.get("references", [])),
            reference_seeds=seeds[: int(raw.get("reference_seeds", len(seeds)))], arms=arms,
            margin=float(raw.get("margin", 5.0)), grid=grid,
            grid_seeds=tuple(int(s) for s in raw.get("grid_seeds", [0])))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{path}: missing or malformed {exc}") from None
    if len(experiment.seeds) < 2:
        raise ConfigError(f"{path}: give at least 2 seeds (paired statistics need them)")
    if experiment.student_crop >= network.crop:
        raise ConfigError(f"the student's crop ({experiment.student_crop}) must be below the teacher's "
                          f"({network.crop})")
    return experiment


# --- held-out evaluation --------------------------------------------------------------------------
def heldout(folder: Path, root: Path, split: str, cache: Path, crop: int | None = None) -> dict[str, Any]:
    """Top-1 of ``folder``'s model.pt on ``split``: the centre clip of every video, as validation does
    (at ``crop`` instead of its own when given).

    Stored in ``cache`` (this experiment's folder, not the training's), reused when present.
    """
    if cache.is_file():
        return json.loads(cache.read_text())
    state = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
    factors = Factors.from_dict(state["factors"])
    factors = factors.replace(crop=crop) if crop else factors
    model = build_model(factors, int(state["num_classes"]), shortcut_bn=bool(state.get("shortcut_bn", True)))
    model.load_state_dict(state["model_state"])
    model.eval()
    dataset = VideoClipDataset(root, split, factors, train=False)
    correct: list[bool] = []
    with torch.no_grad():
        for batch in make_loader(dataset, 8, seed=0, shuffle=False):
            predicted = model(batch["clip"]).argmax(dim=1)
            correct.extend((predicted == batch["label"]).tolist())
    labels = [r.label for r in dataset.records]
    per_class = {name: 100.0 * sum(c for c, y in zip(correct, labels) if y == k) / max(1, labels.count(k))
                 for k, name in enumerate(dataset.class_names)}
    record = {"split": split, "videos": len(correct), "top1": 100.0 * sum(correct) / len(correct),
              "per_class": per_class, "correct": correct}
    atomic_write_json(cache, record)
    return record


# --- statistics -----------------------------------------------------------------------------------
def t95(df: int) -> float:
    return T95.get(df) or T95[max(k for k in T95 if k <= df)]


def describe(values: list[float]) -> dict[str, Any]:
    return {"top1": values, "mean": statistics.mean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else 0.0}


def paired(arm: list[float], base: list[float], arms: int = 1) -> dict[str, Any]:
    """Mean of the per-seed differences, with a two-sided 90% t interval for reading, and the one-sided
    p-value of "the arm helps" and its lower bound at the family's level (Bonferroni over ``arms``),
    which :func:`verdicts` judges with Holm's step-down."""
    diffs = [a - b for a, b in zip(arm, base)]
    mean = statistics.mean(diffs)
    if len(diffs) < 2:
        return {"diffs": diffs, "mean": mean, "low": -math.inf, "high": math.inf, "p_helps": 1.0,
                "lower_bound": -math.inf, "verdict": "no difference shown"}
    se = statistics.stdev(diffs) / math.sqrt(len(diffs))
    df = len(diffs) - 1
    half = t95(df) * se
    if se == 0:
        p_helps = 0.0 if mean > 0 else 1.0
    else:
        p_helps = 1.0 - student_t_cdf(mean / se, df)
    bound = mean - student_t_quantile(1 - (1 - LEVEL) / arms, df) * se
    return {"diffs": diffs, "mean": mean, "low": mean - half, "high": mean + half, "p_helps": p_helps,
            "lower_bound": bound, "verdict": "no difference shown"}


def verdicts(vs_none: dict[str, dict[str, Any]]) -> list[str]:
    """Which arms help, with the family-wise error held over the arms (one-sided, Holm at 10%); sets each
    arm's verdict. An arm is said to hurt only when its two-sided interval lies below 0."""
    names = list(vs_none)
    helped = holm([vs_none[n]["p_helps"] for n in names])
    for name, helps in zip(names, helped):
        vs_none[name]["verdict"] = "helps" if helps else "hurts" if vs_none[name]["high"] < 0 else \
            "no difference shown"
    return [n for n, h in zip(names, helped) if h]


def balance(folder: Path) -> dict[str, float]:
    """The loss's parts at the first step and over the whole training, from metrics.jsonl."""
    lines = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines() if x.strip()]
    first = lines[0]
    out = {k: first[k] for k in ("first_ce", "first_kd") if k in first}
    for key in ("train_ce", "train_kd"):
        if key in lines[-1]:
            out[f"last_{key[6:]}"] = lines[-1][key]
    return out


# --- the experiment -------------------------------------------------------------------------------
class Runner:
    def __init__(self, exp: Experiment, quiet: bool):
        self.exp = exp
        self.run = RunOptions(progress=not quiet)
        self.root = resolve_data(exp.data)
        load_split(self.root, exp.heldout)  # a dataset without the held-out split fails now
        self.trained: list[TrainResult] = []

    def student_dir(self, name: str, crop: int, seed: int) -> Path:
        return self.exp.out / "students" / f"{name}_c{crop}_seed{seed}"

    @staticmethod
    def arm_name(kind: str, spec: KDSpec) -> str:
        return kind if spec.weight is None or kind == "none" else f"{kind}-w{spec.weight:g}"

    def evaluate(self, folder: Path, crop: int | None = None) -> dict[str, Any]:
        name = folder.name + (f"_at{crop}" if crop else "")
        return heldout(folder, self.root, self.exp.heldout, self.exp.out / "heldout" / f"{name}.json", crop)

    def teacher(self):
        prepared = prepare_teacher(self.exp.teacher, self.exp.data, self.exp.out / "teacher", self.run)
        if prepared.result is not None:
            self.trained.append(prepared.result)
        return prepared, self.evaluate(prepared.path.parent)

    def student(self, kind: str, spec: KDSpec, seed: int, crop: int | None = None) -> tuple[TrainResult, Path]:
        crop = crop or self.exp.student_crop
        folder = self.student_dir(self.arm_name(kind, spec), crop, seed)
        if crop < self.exp.network.crop:
            outcome = run_reskd(self.exp.teacher, self.exp.network.replace(crop=crop), self.exp.data,
                                self.exp.student_budget, seed, folder, teacher_dir=self.exp.out / "teacher",
                                kd=spec, run=self.run)
            result = outcome.student
        else:  # the network alone at (or above) the teacher's crop: no teacher involved
            result = train_and_evaluate(self.exp.network.replace(crop=crop), self.exp.data, self.exp.student_budget,
                                        seed, folder, progress=self.run.progress)
        if not result.ok:
            raise TrainingFailed(f"{folder.name} {result.status}: {result.error}")
        self.trained.append(result)
        return result, folder


def run(exp: Experiment, quiet: bool) -> dict[str, Any]:
    started = time.monotonic()
    runner = Runner(exp, quiet)
    teacher, teacher_eval = runner.teacher()
    classes = teacher.num_classes
    gflops = {crop: complexity(exp.network.replace(crop=crop), classes).gflops
              for crop in {exp.student_crop, exp.network.crop, *exp.references}}
    t_result = teacher.result
    summary: dict[str, Any] = {
        "data": str(runner.root), "heldout": exp.heldout, "videos": teacher_eval["videos"], "seeds": list(exp.seeds),
        "network": exp.network.to_dict(),
        "teacher": {"crop": exp.network.crop, "gflops": gflops[exp.network.crop], "top1": teacher_eval["top1"],
                    "per_class": teacher_eval["per_class"], "budget": exp.teacher.budget.name,
                    # the teacher's own weights run on the student's crop: what it knows without its pixels
                    "top1_at_student_crop": runner.evaluate(teacher.path.parent, exp.student_crop)["top1"],
                    "epochs": t_result.epochs_done if t_result else None,
                    "val_top1": t_result.top1 if t_result else None,
                    "wall_time_s": t_result.wall_time_s if t_result else None,
                    "train_macs": t_result.train_macs if t_result else None},
        "student": {"crop": exp.student_crop, "gflops": gflops[exp.student_crop],
                    "budget": exp.student_budget.name, "epochs": exp.student_budget.epochs},
    }
    base = [runner.evaluate(runner.student("none", exp.arms["none"], s)[1])["top1"] for s in exp.seeds]
    references = {}
    for crop in exp.references:
        tops = [runner.evaluate(runner.student("none", exp.arms["none"], s, crop)[1])["top1"]
                for s in exp.reference_seeds]
        references[str(crop)] = {"gflops": gflops[crop], **describe(tops)}
    summary["references"] = references
    arms: dict[str, Any] = {"none": {"kd": "none", "weight": None, **describe(base)}}
    gap = teacher_eval["top1"] - statistics.mean(base)
    summary["check"] = {"teacher_minus_student": gap, "margin": exp.margin, "passed": gap >= exp.margin}
    if gap < exp.margin:
        summary["verdict"] = (f"no claim: the teacher ({teacher_eval['top1']:.1f}%) does not beat the undistilled "
                              f"student ({statistics.mean(base):.1f}%) by {exp.margin:g} points on held-out videos")
    else:
        for kind, spec in exp.arms.items():
            if kind == "none":
                continue
            tops, parts = [], []
            for s in exp.seeds:
                _, folder = runner.student(kind, spec, s)
                tops.append(runner.evaluate(folder)["top1"])
                parts.append(balance(folder))
            arms[kind] = {"kd": kind, "weight": spec.weight, **describe(tops),
                          "vs_none": paired(tops, base, arms=len(exp.arms) - 1),
                          "balance": {k: statistics.mean(p[k] for p in parts) for k in parts[0]}}
        helped = verdicts({k: a["vs_none"] for k, a in arms.items() if k != "none"})
        summary["verdict"] = (f"the claim holds for {', '.join(helped)} (one-sided, Holm over "
                              f"{len(arms) - 1} arms at 10%)" if helped else
                              "the claim does not hold: no distillation arm beats none with the error held over "
                              "the arms (one-sided, Holm at 10%)")
    summary["arms"] = arms
    # Wall time of every training, teacher included, as each one recorded it (stable when reused).
    summary["training_wall_s"] = sum(r.wall_time_s for r in runner.trained)
    atomic_write_json(exp.out / "summary.json", summary)
    log.info("this run took %.0f s (finished trainings and evaluations reused)", time.monotonic() - started)
    return summary


def grid(exp: Experiment, quiet: bool) -> list[dict[str, Any]]:
    """The weight grid on validation videos (the trainings' own top-1), with the first-step balance."""
    runner = Runner(exp, quiet)
    runner.teacher()
    rows = []
    for kind, weights in exp.grid.items():
        base = exp.arms.get(kind, KDSpec(kind=kind))
        for weight in weights:
            spec = KDSpec(kind=kind, weight=weight, temperature=base.temperature, teacher_bn=base.teacher_bn)
            for seed in exp.grid_seeds:
                result, folder = runner.student(kind, spec, seed)
                rows.append({"kd": kind, "weight": weight, "seed": seed, "val_top1": result.top1,
                             **balance(folder)})
    atomic_write_json(exp.out / "grid.json", rows)
    return rows


# --- output ---------------------------------------------------------------------------------------
def format_table(s: dict[str, Any]) -> str:
    t, st = s["teacher"], s["student"]
    n, videos = len(s["seeds"]), s["videos"]
    cost = (f"{t['epochs']} epochs, {t['wall_time_s'] / 60:.1f} min, {t['train_macs'] / 1e12:.1f} T MACs"
            if t["epochs"] else "given checkpoint")
    rows = [f"held-out split: {s['heldout']} ({videos} videos); {n} seeds per arm, paired by seed",
            "",
            "| model | crop | GFLOPs | held-out top-1 (%) | vs none, paired (90% interval) | KD / CE at step 1 |",
            "| --- | --- | --- | --- | --- | --- |",
            f"| teacher ({t['budget']}, {cost}) | {t['crop']} | {t['gflops']:.3f} | {t['top1']:.1f} (1 seed) | | |",
            f"| the teacher's weights run at the student's crop | {st['crop']} | {st['gflops']:.3f} | "
            f"{t['top1_at_student_crop']:.1f} (1 seed) | | |"]
    for name, arm in s["arms"].items():
        label = "student alone (none)" if name == "none" else f"student, {name}, w = {arm['weight']:g}"
        diff = arm.get("vs_none")
        diff_text = (f"{diff['mean']:+.1f} [{diff['low']:+.1f}, {diff['high']:+.1f}] {diff['verdict']}"
                     if diff else "")
        bal = arm.get("balance", {})
        ratio = f"{bal['first_kd'] / bal['first_ce']:.2f}" if bal.get("first_ce") else ""
        rows.append(f"| {label} | {st['crop']} | {st['gflops']:.3f} | {arm['mean']:.1f} ± {arm['sd']:.1f} | "
                    f"{diff_text} | {ratio} |")
    for crop, ref in s["references"].items():
        rows.append(f"| the network alone ({len(ref['top1'])} seeds) | {crop} | {ref['gflops']:.3f} | "
                    f"{ref['mean']:.1f} ± {ref['sd']:.1f} | | |")
    c = s["check"]
    rows += ["", f"teacher - student alone: {c['teacher_minus_student']:+.1f} points "
                 f"(needed: {c['margin']:g}): {'passed' if c['passed'] else 'FAILED'}",
             f"verdict: {s['verdict']}",
             f"trainings: {s['training_wall_s'] / 60:.1f} min of wall time in all, teacher included"]
    return "\n".join(rows)


def format_grid(rows: list[dict[str, Any]]) -> str:
    lines = ["| kd | weight | seed | val top-1 (%) | CE at step 1 | weighted KD at step 1 | KD / CE |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['kd']} | {r['weight']:g} | {r['seed']} | {r['val_top1']:.1f} | {r['first_ce']:.3f} | "
                     f"{r['first_kd']:.3f} | {r['first_kd'] / r['first_ce']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=str(Path(__file__).with_name("reskd_synthetic.yaml")))
    parser.add_argument("--data", help="dataset root or synthetic-<variant> [default: the config's]")
    parser.add_argument("--out", type=Path, help="[default: the config's]")
    parser.add_argument("--budget", help="override every budget (e.g. smoke for a quick check)")
    parser.add_argument("--seeds", type=int, help="only the first N seeds of the config")
    parser.add_argument("--grid", action="store_true", help="train the weight grid instead (validation only)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    try:
        exp = load_experiment(args.config, args)
        setup_logging(exp.out / "experiment.log", console=not args.quiet)
        if args.grid:
            print(format_grid(grid(exp, args.quiet)))
            return
        summary = run(exp, args.quiet)
    except X3DSearchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except (TeacherFailed, TrainingFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print(format_table(summary))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
