"""Does multi-view validation lower the seed variance of a model's score per second spent?

Trains each model at each seed exactly as ``x3dsearch train --preset P --budget B --seed S
--threads N`` does (finished trainings in OUT are reused), then evaluates every ``model.pt`` once
on the validation split with 3 temporal x 3 spatial views, keeping each view's softmax. Every
setting T x S in {1, 2, 3} x {1, 3} is a subset of those 9 views (window positions 0.5 for one
view, 0 and 1 for two, 0, 0.5 and 1 for three; spatial centre, or left/centre/right), so its
per-video outcomes are exactly what ``evaluate`` gives with that setting; the 1 x 1 subset is
checked against the trainer's own ``val_outcomes.json``. Time per setting is the measured time
per view of the 9-view pass (decode, crop and forward, batch of the budget) times its views,
plus one real 1 x 1 pass per training timed on its own. The 9-view softmax is kept in
``OUT/<model>_seed<seed>/val_views_3x3.pt``, so a rerun only summarizes.

Prints, per setting: eval seconds per video, and over seeds the SD of top-1 and of mean p_true
per model (pooled over models), and the SD of the paired difference of two models.
Usage: python experiments/eval_views.py [--out runs/eval-views] [--seeds 0 1 2] [--threads 1]
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

from x3dsearch.budget import load_budget
from x3dsearch.data import VideoClipDataset, make_loader, resolve_data
from x3dsearch.factors import Factors, preset
from x3dsearch.models import build_model
from x3dsearch.outcomes import SplitOutcomes, VideoOutcome
from x3dsearch.train import TrainingFolder, evaluate_split, train_and_evaluate
from x3dsearch.train.evaluate import evaluate
from x3dsearch.utils.io import atomic_write_json
from x3dsearch.utils.logging import setup_logging

MODELS = {
    "x2d": preset("x2d"),
    "x-fast": Factors(frames=2, stride=6, crop=112, width=1.0, bottleneck=1.0, depth=1.0),  # step 1 of the demo
    "xs": preset("x3d-xs"),
    "s": preset("x3d-s"),
}
#: (temporal views, spatial views) -> indices into the 3 x 3 views (temporal-major: view = t * 3 + s).
SETTINGS = {(t, s): [ti * 3 + si for ti in {1: [1], 2: [0, 2], 3: [0, 1, 2]}[t] for si in {1: [1], 3: [0, 1, 2]}[s]]
            for t in (1, 2, 3) for s in (1, 3)}
PAIRS = (("xs", "x2d"), ("s", "xs"), ("x-fast", "x2d"))


def per_view_probs(folder: TrainingFolder, root: Path, batch: int, workers: int) -> tuple[torch.Tensor, list, float]:
    """Softmax of every (video, view) of the 3 x 3 validation, [videos, 9, classes], the dataset's
    (key, label) list, and the wall time of the pass."""
    config = folder.read_config()
    factors = Factors.from_dict(config["factors"])
    weights = torch.load(folder.model, map_location="cpu", weights_only=True)
    model = build_model(factors, config["num_classes"], dropout=0.0, shortcut_bn=weights["shortcut_bn"])
    model.load_state_dict(weights["model_state"])
    model = model.to(memory_format=torch.channels_last_3d).eval()
    ds = VideoClipDataset(root, "val", factors, train=False, temporal_views=3, spatial_views=3, substitute=False)
    probs = torch.zeros(ds.num_videos, 9, config["num_classes"])
    started = time.monotonic()
    with torch.no_grad():
        for b in make_loader(ds, batch, seed=0, shuffle=False, workers=workers):
            assert not b["excluded"].any(), "an unreadable video in the validation split"
            clips = b["clip"].contiguous(memory_format=torch.channels_last_3d)
            probs[b["video"], b["view"]] = model(clips).float().softmax(1)
    return probs, [(r.key, r.label) for r in ds.records], time.monotonic() - started


def outcomes_of(probs: torch.Tensor, records: list, views: list[int]) -> SplitOutcomes:
    mean = probs[:, views].mean(1)
    labels = torch.tensor([label for _, label in records])
    right = mean.argmax(1) == labels
    p_true = mean.gather(1, labels[:, None])[:, 0]
    return SplitOutcomes("val", {key: VideoOutcome(label, float(p), bool(c))
                                 for (key, label), p, c in zip(records, p_true.tolist(), right.tolist())})


def sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else float("nan")


def pooled(sds: list[float]) -> float:
    """Root mean square of per-model SDs (each over the same number of seeds)."""
    return math.sqrt(sum(s * s for s in sds) / len(sds))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--budget", default="quick")
    parser.add_argument("--out", type=Path, default=Path("runs/eval-views"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    setup_logging(None, console=True)
    torch.set_num_threads(args.threads)
    root = resolve_data(args.data)
    budget = load_budget(args.budget, cuda=False)
    names = args.models.split(",")
    runs: dict = {}
    for name in names:
        for seed in args.seeds:
            out = args.out / f"{name}_seed{seed}"
            result = train_and_evaluate(MODELS[name], args.data, budget, seed, out, threads=args.threads,
                                        device="cpu", progress=False)
            if result.status != "ok":
                print(f"{name} seed {seed}: {result.status} {result.error}", file=sys.stderr)
                return 1
            heldout = evaluate_split(out, args.data, "test", threads=args.threads, device="cpu")
            folder = TrainingFolder(out)
            t1 = time.monotonic()
            real = evaluate_split(out, args.data, "val", threads=args.threads, device="cpu")  # stored: reads back
            cache = out / "val_views_3x3.pt"  # per-view softmax, so a rerun only summarizes
            if cache.is_file():
                probs, records, pass_s = torch.load(cache, weights_only=False).values()
            else:
                probs, records, pass_s = per_view_probs(folder, root, budget.batch_size, budget.workers)
                torch.save({"probs": probs, "records": records, "pass_s": pass_s}, cache)
            # a real 1 x 1 evaluation, timed on its own
            ds = VideoClipDataset(root, "val", MODELS[name], train=False, substitute=False)
            weights = torch.load(folder.model, map_location="cpu", weights_only=True)
            classes = ds.num_classes
            model = build_model(MODELS[name], classes, dropout=0.0, shortcut_bn=weights["shortcut_bn"])
            model.load_state_dict(weights["model_state"])
            model = model.to(memory_format=torch.channels_last_3d)
            t2 = time.monotonic()
            single = evaluate(model, make_loader(ds, budget.batch_size, seed=0, shuffle=False, workers=budget.workers),
                              classes, torch.device("cpu"), channels_last=True, keys=ds.keys)
            single_s = time.monotonic() - t2
            derived = {setting: outcomes_of(probs, records, views) for setting, views in SETTINGS.items()}
            one_view = derived[(1, 1)].videos
            same = real.videos.keys() <= one_view.keys() and all(
                one_view[k].correct == v.correct and abs(one_view[k].p_true - v.p_true) < 1e-4
                for k, v in real.videos.items())
            runs[(name, seed)] = {"derived": derived, "pass_s": pass_s, "single_s": single_s, "videos": len(records),
                                  "trainer_top1": result.top1, "single_top1": single.top1, "heldout_top1": heldout.top1,
                                  "train_s": result.wall_time_s, "matches_trainer": same,
                                  "bookkeeping_s": t2 - t1 - pass_s}
            print(f"{name} seed {seed}: trained {result.wall_time_s:.0f} s, val top-1 {result.top1:.1f} "
                  f"(held-out {heldout.top1:.1f}); 3x3 pass {pass_s:.1f} s, 1x1 pass {single_s:.1f} s; "
                  f"1x1 subset matches the trainer: {same}", flush=True)
    report = summarize(runs, names, args.seeds)
    atomic_write_json(args.out / "eval_views.json", report)
    print_table(report)
    return 0


def summarize(runs: dict, names: list[str], seeds: list[int]) -> dict:
    per_view_s = statistics.mean(r["pass_s"] / (9 * r["videos"]) for r in runs.values())
    single_s = statistics.mean(r["single_s"] / r["videos"] for r in runs.values())
    by_model_view = {name: statistics.mean(runs[(name, s)]["pass_s"] / (9 * runs[(name, s)]["videos"]) for s in seeds)
                     for name in names}
    rows = []
    for setting, views in SETTINGS.items():
        top1 = {n: [runs[(n, s)]["derived"][setting].top1 for s in seeds] for n in names}
        p_true = {n: [runs[(n, s)]["derived"][setting].mean_p_true for s in seeds] for n in names}
        log_p = {n: [runs[(n, s)]["derived"][setting].mean_log_p for s in seeds] for n in names}
        pairs = {f"{a}-{b}": {"top1": sd([x - y for x, y in zip(top1[a], top1[b])]),
                              "p_true": sd([x - y for x, y in zip(p_true[a], p_true[b])])}
                 for a, b in PAIRS if a in names and b in names}
        rows.append({"temporal": setting[0], "spatial": setting[1], "views": len(views),
                     "s_per_video": per_view_s * len(views),
                     "s_per_video_by_model": {n: by_model_view[n] * len(views) for n in names},
                     "top1": top1, "p_true": p_true, "log_p": log_p,
                     "top1_sd": {n: sd(v) for n, v in top1.items()}, "p_true_sd": {n: sd(v) for n, v in p_true.items()},
                     "top1_sd_pooled": pooled([sd(v) for v in top1.values()]),
                     "p_true_sd_pooled": pooled([sd(v) for v in p_true.values()]),
                     "log_p_sd_pooled": pooled([sd(v) for v in log_p.values()]), "pair_sd": pairs})
    return {"seeds": seeds, "models": names, "videos": next(iter(runs.values()))["videos"],
            "s_per_view": per_view_s, "s_per_video_1x1_real": single_s,
            "matches_trainer": all(r["matches_trainer"] for r in runs.values()),
            "runs": {f"{n}_seed{s}": {k: v for k, v in r.items() if k != "derived"} for (n, s), r in runs.items()},
            "settings": rows}


def print_table(report: dict) -> None:
    names = report["models"]
    print(f"\n{len(report['seeds'])} seeds x {len(names)} models, {report['videos']} validation videos; "
          f"1x1 subset equals the trainer's outcomes: {report['matches_trainer']}; "
          f"a real 1x1 pass took {report['s_per_video_1x1_real']:.3f} s per video (all models)")
    pair_names = list(report["settings"][0]["pair_sd"])
    head = (["views (T x S)", "s per video"] + [f"top-1 SD {n}" for n in names]
            + ["top-1 SD pooled", "p_true SD pooled (pts)"] + [f"top-1 SD {p}" for p in pair_names]
            + [f"p_true SD {p} (pts)" for p in pair_names])
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for row in report["settings"]:
        cells = [f"{row['temporal']} x {row['spatial']}", f"{row['s_per_video']:.3f}"]
        cells += [f"{row['top1_sd'][n]:.1f}" for n in names]
        cells += [f"{row['top1_sd_pooled']:.2f}", f"{100 * row['p_true_sd_pooled']:.2f}"]
        cells += [f"{row['pair_sd'][p]['top1']:.1f}" for p in pair_names]
        cells += [f"{100 * row['pair_sd'][p]['p_true']:.2f}" for p in pair_names]
        print("| " + " | ".join(cells) + " |")
    print("\nmean top-1 per model and setting:")
    for row in report["settings"]:
        means = ", ".join(f"{n} {statistics.mean(row['top1'][n]):.1f}" for n in names)
        print(f"  {row['temporal']} x {row['spatial']}: {means}")


if __name__ == "__main__":
    sys.exit(main())
