"""Time a search spends outside training (FLOP counting, Ray start and scheduling, bookkeeping).

Runs the demo search (``x3dsearch expand --target-gflops 0.25``: synthetic dataset, default
budget, local Ray) into a temporary run dir, or reads an existing RUN_DIR, and prints the
``cost`` block of its ``expansion_path.yaml``: training time (wall time during which some trial
was training) side by side with everything else. Goal: outside training < 5% of wall time.
Usage: python experiments/benchmarks/search_overhead.py [RUN_DIR] [--target-gflops 0.25] [--budget NAME]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

GOAL = 0.05


def run_demo(run_dir: Path, target: float, budget: str | None) -> float:
    cmd = [str(Path(sys.executable).parent / "x3dsearch"), "expand", "--target-gflops", str(target),
           "--run-dir", str(run_dir)] + (["--budget", budget] if budget else [])
    print("running:", " ".join(cmd), flush=True)
    started = time.monotonic()
    code = subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode
    if code != 0:
        print(f"error: the search exited with code {code} (its messages are above)", file=sys.stderr)
        raise SystemExit(1)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", type=Path, help="read this finished run instead of running one")
    parser.add_argument("--target-gflops", type=float, default=0.25)
    parser.add_argument("--budget", default=None)
    args = parser.parse_args()

    process_s = None
    with tempfile.TemporaryDirectory(prefix="x3d-overhead-") as tmp:
        run_dir = args.run_dir
        if run_dir is None:
            run_dir = Path(tmp) / "run"
            process_s = run_demo(run_dir, args.target_gflops, args.budget)
        path = run_dir / "expansion_path.yaml"
        if not path.is_file():
            print(f"error: {run_dir} is not a run directory (no expansion_path.yaml)", file=sys.stderr)
            return 2
        log = yaml.safe_load(path.read_text())
    cost = log["cost"]
    wall, train = cost["wall_time_s"], cost["train_s"]
    outside = wall - train
    other = outside - cost["flop_count_s"] - cost["ray_s"]
    trials = sum(len(s["candidates"]) for s in log["steps"]) + 1 + (1 if log.get("contraction") else 0)
    print(f"run: {run_dir} ({log['status']}), {len(log['steps'])} steps, {trials} trials, "
          f"final {log['final']['gflops']:.4f} GFLOPs" if log.get("final") else f"run: {run_dir}")
    if process_s is not None:
        print(f"command wall time         {process_s:8.1f} s (includes interpreter start and imports)")
    print(f"search wall time          {wall:8.1f} s")
    print(f"  training                {train:8.1f} s  {100 * train / wall:5.1f}%")
    print(f"  outside training        {outside:8.1f} s  {100 * outside / wall:5.1f}%   goal < {100 * GOAL:.0f}%")
    print(f"    FLOP counting         {cost['flop_count_s']:8.1f} s  {100 * cost['flop_count_s'] / wall:5.1f}%")
    print(f"    Ray start/scheduling  {cost['ray_s']:8.1f} s  {100 * cost['ray_s'] / wall:5.1f}%")
    print(f"    bookkeeping           {other:8.1f} s  {100 * other / wall:5.1f}%")
    met = outside / wall < GOAL
    print(f"training : outside = {train / max(outside, 1e-9):.1f} : 1 -> goal {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
