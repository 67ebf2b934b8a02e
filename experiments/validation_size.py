"""Does a larger judging split make the proxy rank models the way the reference does?

Seed-to-seed noise of a two-epoch proxy on the synthetic data behaves like independent coin flips
per validation video (the seed variance of top-1 matches the sum of the per-video variances), so it
should fall as 1/sqrt(videos). Validation is inference only, so this asks how far more videos
alone, with the trainings unchanged, move the calibration's figures.

It takes a finished calibration folder (``x3dsearch calibrate --out CAL``, which keeps every
``model.pt``) and the cached synthetic dataset, renders further videos of the same classes with the
generator's own per-video seeds (indices after the last cached one: they are new draws of the same
distribution, never trained on), and builds OUT/data: the cached videos linked, val = the 13 cached
validation videos per class plus the first EXTRA new ones, test = the 13 cached test videos per
class plus the next EXTRA. Every proxy training of CAL is evaluated on that val split and every
reference training on that test split, with ``evaluate_split`` (the package's one evaluation path),
outcomes kept in OUT/evals/<budget>/<model>-s<seed>/ (a rerun reuses them). Then the calibration's
own summary (``x3dsearch.calibrate.report.summarize``) is computed on nested class-balanced subsets:
13, 26, ... cached-first videos per class in each split, and printed as one line per size.

Usage: python experiments/validation_size.py CAL [--out runs/validation-size] [--extra 39] [--workers 2]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
from pathlib import Path

import numpy as np

from x3dsearch.calibrate.plan import Model
from x3dsearch.calibrate.report import MODEL_CRITERIA, model_scores, summarize
from x3dsearch.data.synthetic import encode_mp4, get_variant, render_video
from x3dsearch.factors import Factors
from x3dsearch.outcomes import SplitOutcomes
from x3dsearch.train import TrainingFolder
from x3dsearch.train.heldout import evaluate_split
from x3dsearch.utils.io import atomic_write_text, read_yaml
from x3dsearch.utils.logging import setup_logging


def _render(job: tuple[str, str, int, int, int, tuple[int, int], float, tuple[float, float]]) -> None:
    out, rel, label, index, seed, size, fps, seconds = job
    path = Path(out) / rel
    if path.is_file():
        return
    v = get_variant("default")
    frames = render_video(v.designs[label], v.video_rng(seed, label, index), size, fps, seconds)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.mp4")
    encode_mp4(tmp, frames, fps)
    os.replace(tmp, path)


def build_data(cached: Path, out: Path, extra: int, workers: int) -> dict[str, list[list[str]]]:
    """OUT/data, and per split the keys of each class in nesting order (cached videos first)."""
    meta = read_yaml(cached / "dataset.yaml")
    classes = [line.strip() for line in (cached / "classes.txt").read_text().splitlines() if line.strip()]
    per_class = int(meta["videos_per_class"])
    n_val, n_test = int(meta["val_per_class"]), int(meta["test_per_class"])
    n_train = per_class - n_val - n_test
    jobs, order = [], {"train": [], "val": [], "test": []}
    for label, name in enumerate(classes):
        rel = [f"videos/{name}/{name}_{i:03d}.mp4" for i in range(per_class + 2 * extra)]
        for i in range(per_class):
            link = out / rel[i]
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(cached / rel[i])
        for i in range(per_class, per_class + 2 * extra):
            jobs.append((str(out), rel[i], label, i, int(meta["seed"]), tuple(meta["size"]), float(meta["fps"]),
                         tuple(meta["seconds"])))
        order["train"].append(rel[:n_train])
        order["val"].append(rel[n_train:n_train + n_val] + rel[per_class:per_class + extra])
        order["test"].append(rel[n_train + n_val:per_class] + rel[per_class + extra:per_class + 2 * extra])
    todo = [j for j in jobs if not (out / j[1]).is_file()]
    print(f"rendering {len(todo)} of {len(jobs)} new videos with {workers} workers", file=sys.stderr)
    with mp.get_context("spawn").Pool(workers) as pool:
        for done, _ in enumerate(pool.imap_unordered(_render, todo), 1):
            if done % 50 == 0:
                print(f"  {done}/{len(todo)}", file=sys.stderr)
    for split, keys in order.items():
        lines = [f"{key} {label}" for label, per in enumerate(keys) for key in per]
        atomic_write_text(out / f"{split}.csv", "\n".join(lines) + "\n")
    atomic_write_text(out / "classes.txt", "\n".join(classes) + "\n")
    return order


def evaluate_all(cal: Path, data: Path, out: Path, threads: int) -> dict[str, dict[str, SplitOutcomes]]:
    """Outcomes of every proxy training on val and every reference training on test, by budget then trial."""
    config = read_yaml(cal / "config.yaml")
    models = {m["name"] for m in config["models"]}
    found: dict[str, dict[str, SplitOutcomes]] = {}
    for role, split in (("proxy", "val"), ("reference", "test")):
        budget = config[role]["name"]
        found[role] = {}
        for source in sorted((cal / "runs" / budget).iterdir()):
            if source.name.rsplit("-s", 1)[0] not in models:
                continue  # trained for an earlier model list
            result = TrainingFolder(source).read_result()
            if result is None or not result.ok:
                print(f"{budget}/{source.name}: unfinished, skipped (run again when it is done)", file=sys.stderr)
                continue
            target = out / budget / source.name
            target.mkdir(parents=True, exist_ok=True)
            for name in ("config.json", "result.json", "model.pt"):
                if not (target / name).exists():
                    (target / name).symlink_to(source / name)
            print(f"{budget}/{source.name} on {split}", file=sys.stderr)
            found[role][source.name] = evaluate_split(TrainingFolder(target), data, split, threads=threads)
    return found


def summaries(cal: Path, found: dict[str, dict[str, SplitOutcomes]], order: dict[str, list[list[str]]],
              sizes: list[int]) -> list[tuple[int, dict]]:
    config = read_yaml(cal / "config.yaml")
    models = [Model(m["name"], Factors.from_dict(m["factors"])) for m in config["models"]]
    out = []
    for size in sizes:
        val = {key for per in order["val"] for key in per[:size]}
        test = {key for per in order["test"] for key in per[:size]}
        proxy = {m.name: [_subset(o, val) for name, o in sorted(found["proxy"].items())
                          if name.rsplit("-s", 1)[0] == m.name] for m in models}
        reference = {m.name: [_subset(o, test) for name, o in sorted(found["reference"].items())
                              if name.rsplit("-s", 1)[0] == m.name] for m in models}
        present = [m for m in models if proxy[m.name] and reference[m.name]]
        scores = model_scores(present, {m.name: 0.0 for m in present}, {m.name: proxy[m.name] for m in present},
                              {m.name: reference[m.name] for m in present})
        out.append((size, {**summarize(scores, {}), "flip_ratio": flip_ratio(found, val)}))
    return out


def flip_ratio(found: dict[str, dict[str, SplitOutcomes]], keys: set[str]) -> float:
    """Seed variance of the proxy's top-1, pooled over models, over what independent per-video flips
    predict (the sum of each video's seed variance of right/wrong over videos squared): near 1 means
    the seed noise shrinks as 1/sqrt(videos)."""
    by_model: dict[str, list[SplitOutcomes]] = {}
    for name, outcomes in sorted(found["proxy"].items()):
        by_model.setdefault(name.rsplit("-s", 1)[0], []).append(outcomes)
    observed = predicted = 0.0
    for runs in by_model.values():
        if len(runs) < 2:
            continue
        videos = sorted(keys & set(runs[0].videos))
        right = np.array([[float(r.videos[k].correct) for k in videos] for r in runs])
        observed += right.mean(axis=1).var(ddof=1)
        predicted += right.var(axis=0, ddof=1).sum() / len(videos) ** 2
    return observed / predicted


def _subset(outcomes: SplitOutcomes, keys: set[str]) -> SplitOutcomes:
    return SplitOutcomes(outcomes.split, {k: v for k, v in outcomes.videos.items() if k in keys})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("calibration", type=Path)
    parser.add_argument("--out", type=Path, default=Path("runs/validation-size"))
    parser.add_argument("--extra", type=int, default=39, help="new videos per class in each of val and test")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cached", type=Path, default=None, help="the cached synthetic dataset (default: its cache)")
    args = parser.parse_args()
    setup_logging()
    from x3dsearch.data import resolve_data

    cal, out = args.calibration.resolve(), args.out.resolve()
    cached = args.cached.resolve() if args.cached else resolve_data("synthetic")
    data = out / "data"
    order = build_data(cached, data, args.extra, args.workers)
    found = evaluate_all(cal, data, out / "evals", args.workers)
    per_class = len(order["val"][0]) - args.extra
    sizes = sorted({per_class, *range(per_class, per_class + args.extra + 1, per_class), per_class + args.extra})
    classes = len(order["val"])
    print(f"\n{'videos per split':>16}  {'proxy seed SD':>13}  {'seed vs seed':>12}  {'ref seed vs seed':>16}  "
          + "  ".join(f"{'Spearman ' + str(c):>18}" for c in MODEL_CRITERIA)
          + f"  {'90% CI top1':>12}  {'Kendall top1':>12}  {'pair SD top1':>12}  {'flip ratio':>10}")
    for size, s in summaries(cal, found, order, sizes):
        ref = s["reference_seed_spearman"]
        print(f"{size * classes:>16}  {s['seed_sd']['top1']:>13.2f}  {_cell(s['seed_spearman']['top1']):>12}  "
              f"{_cell(ref):>16}  "
              + "  ".join(f"{_cell(s['spearman'][str(c)]):>18}" for c in MODEL_CRITERIA)
              + f"  {_interval(s['spearman_ci']['top1']):>12}  {_cell(s['kendall']['top1']):>12}"
              f"  {_cell(s['noise']['sd']['top1']):>12}  {s['flip_ratio']:>10.2f}")


def _interval(entry: dict | None) -> str:
    return "-" if not entry else f"{entry['ci'][0]:.2f}..{entry['ci'][1]:.2f}"


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    main()
