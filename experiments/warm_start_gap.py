"""The warm-start gap of an inherit search's final model (issue: a proxy with signal, item 5).

A search run with ``--proxy-init inherit`` trains its final model by growing the weights of a chain
of proxy trainings (seed -> step 1 -> ... -> the final model). Ash & Adams (NeurIPS 2020) found that
warm-started networks can generalise worse than networks trained from scratch. This script trains
the final architecture under a reference budget (default ``experiments/recipes/quick-x4.yaml``, the
default calibration's reference: ``quick`` at 4x its epochs) in two arms, at the same seeds:

- ``scratch``: from random weights;
- ``warm``: from the chain's last training (its ``model.pt``), the same recipe otherwise;

and sets them beside the chain's own last training (``chain``: the proxy budget, grown). Every
figure is held-out top-1 (the test split, never used to choose), with a 90% paired bootstrap
interval over test videos and seeds for ``warm - scratch`` and ``chain - scratch``:

    .venv/bin/python experiments/warm_start_gap.py runs/demo-inherit-s0 --seeds 2 --workers 2

Trainings are resumable and reused: a second run trains nothing. A couple of seeds on about a
hundred test videos is a small sample; the interval says how small.
"""
from __future__ import annotations

import argparse
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

from x3dsearch.factors import Factors
from x3dsearch.stats import bootstrap
from x3dsearch.train.folder import TrainingFolder
from x3dsearch.utils.io import read_yaml

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "experiments" / "recipes" / "quick-x4.yaml"


def train_and_score(job: tuple[dict, str, str, int, str, str | None]) -> float:
    """One training in a worker process (one thread), then scored on the test split, as ``x3dsearch train``
    does; returns its wall seconds (0 when reused)."""
    from x3dsearch.train import evaluate_split, train_and_evaluate

    factors, data, budget, seed, out, init = job
    folder = TrainingFolder(Path(out))
    done = folder.read_result()
    trains = done is None or not done.ok
    started = time.monotonic()
    if trains:
        train_and_evaluate(Factors.from_dict(factors), data, budget, seed, Path(out), threads=1, progress=False,
                           init=Path(init) if init else None)
    if folder.read_outcomes("test") is None:
        evaluate_split(out, data, "test", threads=1)
    return time.monotonic() - started if trains else 0.0


def heldout_correct(folder: Path) -> dict[str, float]:
    """Each test video's outcome (1.0 right, 0.0 wrong) of the training in ``folder``."""
    outcomes = TrainingFolder(folder).read_outcomes("test")
    if outcomes is None:
        raise SystemExit(f"{Path(sys.argv[0]).name}: {folder} has no test outcomes (the data needs a test split)")
    return {video: float(v.correct) for video, v in outcomes.videos.items()}


def _versus(a: list[dict[str, float]], b: list[dict[str, float]], seed: int) -> dict:
    """``a - b`` in points of held-out top-1, paired by video (and by seed, row by row)."""
    videos = sorted(set.intersection(*(set(x) for x in a + b)))
    diff = 100.0 * np.array([[x[v] - y[v] for v in videos] for x, y in zip(a, b)])
    interval = bootstrap(diff, seed)
    return {"margin": round(float(diff.mean()), 2), "ci90": [round(interval.low, 2), round(interval.high, 2)],
            "videos": len(videos), "rows": len(diff)}


def add_reference_options(parser: argparse.ArgumentParser, *, seeds: int, out: str) -> None:
    """The options of a script that trains architectures of a run under a reference budget."""
    parser.add_argument("--budget", default=str(REFERENCE), help="the reference budget (name or YAML)")
    parser.add_argument("--seeds", type=int, default=seeds, help="seeds per model (0, 1, ...)")
    parser.add_argument("--workers", type=int, default=2, help="trainings side by side, one thread each")
    parser.add_argument("--out", type=Path, help=f"where the trainings go (default RUN/{out})")


def train_all(jobs: list[tuple[dict, str, str, int, str, str | None]], workers: int) -> list[float]:
    """Every job through :func:`train_and_score`, ``workers`` at a time; the wall seconds of those trained now."""
    # Not multiprocessing.Pool: its daemonic workers may not start the trainer's data-loading processes.
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        return [w for w in pool.map(train_and_score, jobs) if w > 0]


def provenance() -> dict[str, str]:
    """What every printed figure carries: the command, the machine and the commit."""
    return {"command": " ".join(sys.argv), "machine": f"{platform.node()} ({mp.cpu_count()} CPUs)",
            "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                     cwd=REPO).stdout.strip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished search run with --proxy-init inherit")
    add_reference_options(parser, seeds=2, out="warm-start-gap")
    args = parser.parse_args()
    state = json.loads((args.run / "state.json").read_text())
    config = read_yaml(args.run / "config.yaml")
    if state.get("status") != "finished" or not state.get("final"):
        raise SystemExit(f"warm_start_gap.py: {args.run} has not finished")
    if config.get("proxy_init") != "inherit":
        raise SystemExit(f"warm_start_gap.py: {args.run} did not run with --proxy-init inherit")
    chain = args.run / "candidates" / state["final"]
    weights = chain / "model.pt"
    if not weights.is_file():
        raise SystemExit(f"warm_start_gap.py: {weights} is gone (the run kept no weights of its final model)")
    factors = read_yaml(args.run / "final_model.yaml")["factors"]
    data = json.loads((chain / "config.json").read_text())["data"]
    out = args.out or args.run / "warm-start-gap"
    seeds = list(range(args.seeds))
    arms = {"scratch": None, "warm": str(weights.resolve())}
    folders = {(arm, s): out / f"{arm}-s{s}" for arm in arms for s in seeds}
    jobs = [(factors, data, args.budget, s, str(folders[arm, s]), arms[arm]) for arm, s in folders]
    walls = train_all(jobs, args.workers)
    scored = {arm: [heldout_correct(folders[arm, s]) for s in seeds] for arm in arms}
    chain_scores = heldout_correct(chain)

    def top1(rows: list[dict[str, float]]) -> list[float]:
        return [round(100.0 * float(np.mean(list(r.values()))), 1) for r in rows]

    report = {**provenance(), "run": str(args.run), "final": state["final"], "factors": factors,
              "reference_budget": args.budget, "seeds": seeds, "trained_now": len(walls),
              "train_s": {arm: [round(TrainingFolder(folders[arm, s]).read_result().wall_time_s or 0) for s in seeds]
                          for arm in arms},
              "heldout_top1": {"chain": top1([chain_scores]), **{arm: top1(rows) for arm, rows in scored.items()}},
              "warm_minus_scratch": _versus(scored["warm"], scored["scratch"], 0),
              "chain_minus_scratch": _versus([chain_scores] * len(seeds), scored["scratch"], 0)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
