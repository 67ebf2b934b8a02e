"""GFLOPs against measured latency (ms per clip, batch 1) for the presets and a sample of the search space.

Depthwise 3D convolutions make FLOPs a poor guide to speed (SlowFast issue 286);
this prints, on this machine, how well GFLOPs rank models by latency: the
Spearman rank correlation between the two over every model measured, the
number of model pairs the two order differently, and ms per GFLOP.

Protocol (x3dsearch.latency): eval mode, one clip, ``--warmup`` untimed forwards,
then the median of up to ``--runs`` timed ones; heavy models get fewer runs so the
whole script stays within a couple of minutes (``--seconds-per-model`` of timed
runs per model, at least one run; one warm-up, not the search's two, for the same
reason). Measurements are fresh (the cache is neither read nor written).
Last, one search step's six candidates (about equal GFLOPs by construction) are
timed: what a latency criterion sees that GFLOPs cannot.
The sample is models the default space's proposals reach by random paths
(``--sample`` models up to ``--max-gflops``, RNG seed ``--seed``).

Usage: python experiments/benchmarks/latency_vs_flops.py [--threads 1] [--device cpu|cuda] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

T0 = time.perf_counter()

from x3dsearch.factors import PRESETS, Factors  # noqa: E402
from x3dsearch.latency import (Latency, device_label, model_and_clip, summarize, time_forward,  # noqa: E402
                               torch_threads)
from x3dsearch.search.estimate import estimate_gflops  # noqa: E402
from x3dsearch.search.proposals import propose_step  # noqa: E402
from x3dsearch.search.space import load_space  # noqa: E402
from x3dsearch.stats import spearman  # noqa: E402

NUM_CLASSES = 400


def sample_space(count: int, max_gflops: float, seed: int) -> list[Factors]:
    """Models reached by random paths of the default space's proposals (distinct, not presets)."""
    space = load_space()
    rng = random.Random(seed)
    found: list[Factors] = []
    presets = set(PRESETS.values())
    for _ in range(200):
        current = space.seed
        while len(found) < count:
            proposals, _ = propose_step(current, space, NUM_CLASSES)
            proposals = [p for p in proposals if p.gflops <= max_gflops]
            if not proposals:
                break
            current = rng.choice(proposals).factors
            if current not in found and current not in presets and rng.random() < 0.5:
                found.append(current)
        if len(found) >= count:
            break
    return found


def measure(factors: Factors, args: argparse.Namespace, label: str) -> Latency:
    """Warm-up, one timed run, then as many more as fit in ``--seconds-per-model`` (up to ``--runs``)."""
    import torch

    with torch_threads(args.threads):
        model, clip = model_and_clip(factors, NUM_CLASSES, args.device)
        times = time_forward(model, clip, args.device, 1, args.warmup)
        more = max(0, min(args.runs, int(args.seconds_per_model * 1000 / times[0])) - 1)
        times += time_forward(model, clip, args.device, more, 0) if more else []
    return summarize(times, args.warmup, label, args.threads, torch.__version__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", type=int, default=15, help="most timed runs per model")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--seconds-per-model", type=float, default=2.0)
    parser.add_argument("--sample", type=int, default=12)
    parser.add_argument("--max-gflops", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--step-from", default="x3d-xs",
                        help="also time one search step's candidates from this preset ('none': skip)")
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    args = parser.parse_args(argv)

    models = [(name, f) for name, f in PRESETS.items()]
    models += [(f"sample{i + 1:02d}", f) for i, f in enumerate(sample_space(args.sample, args.max_gflops, args.seed))]
    models.sort(key=lambda m: estimate_gflops(m[1], NUM_CLASSES))
    label = device_label(args.device)
    rows = []
    print(f"{'model':<9} {'factors':<27} {'GFLOPs':>8} {'ms':>9} {'IQR ms':>8} {'runs':>4} {'ms/GFLOP':>9}")
    for name, factors in models:
        g = estimate_gflops(factors, NUM_CLASSES)
        lat = measure(factors, args, label)
        rows.append({"model": name, "factors": factors.to_dict(), "gflops": g, **lat.to_dict()})
        iqr = f"{lat.iqr_ms:8.1f}" if lat.runs >= 3 else f"{'-':>8}"
        print(f"{name:<9} {factors.short():<27} {g:8.4f} {lat.median_ms:9.1f} {iqr} {lat.runs:4d} "
              f"{lat.median_ms / g:9.1f}", flush=True)
    gflops = [r["gflops"] for r in rows]
    ms = [r["median_ms"] for r in rows]
    pairs = [(i, j) for i in range(len(rows)) for j in range(i + 1, len(rows))]
    discordant = [(i, j) for i, j in pairs if (gflops[i] - gflops[j]) * (ms[i] - ms[j]) < 0]
    published = [i for i, r in enumerate(rows) if not r["model"].startswith("sample")]
    print(f"\nSpearman rank correlation GFLOPs vs ms: {spearman(gflops, ms):.3f} over {len(rows)} models "
          f"(presets only: {spearman([gflops[i] for i in published], [ms[i] for i in published]):.3f})")
    print(f"pairs ordered differently by GFLOPs and ms: {len(discordant)} of {len(pairs)}")
    worst = sorted(discordant, key=lambda p: -max(gflops[p[0]], gflops[p[1]]) / min(gflops[p[0]], gflops[p[1]]))[:3]
    for i, j in worst:
        lo, hi = (i, j) if gflops[i] < gflops[j] else (j, i)
        print(f"  {rows[lo]['model']} {gflops[lo]:.3f} GFLOPs takes {ms[lo]:.0f} ms; {rows[hi]['model']} "
              f"{gflops[hi]:.3f} GFLOPs takes {ms[hi]:.0f} ms")
    step_rows = []
    if args.step_from != "none":
        start = PRESETS[args.step_from]
        proposals, _ = propose_step(start, load_space(), NUM_CLASSES)
        print(f"\none search step from {args.step_from} ({start.short()}): candidates of about equal GFLOPs")
        for p in proposals:
            lat = measure(p.factors, args, label)
            step_rows.append({"axis": p.axis, "factors": p.factors.to_dict(), "gflops": p.gflops, **lat.to_dict()})
            print(f"  {p.axis:<13} {p.factors.short():<27} {p.gflops:8.4f} {lat.median_ms:9.1f} {lat.runs:4d}",
                  flush=True)
        g = [r["gflops"] for r in step_rows]
        t = [r["median_ms"] for r in step_rows]
        print(f"  GFLOPs span x{max(g) / min(g):.2f}, ms span x{max(t) / min(t):.2f} (fastest "
              f"{step_rows[t.index(min(t))]['axis']}, slowest {step_rows[t.index(max(t))]['axis']})")
        network = [Factors.from_dict({**r["factors"], "stride": 1}) for r in step_rows]
        for i in range(len(step_rows)):
            for j in range(i + 1, len(step_rows)):
                if network[i] == network[j]:  # the stride only picks other frames: the same computation
                    a, b = sorted((t[i], t[j]))
                    print(f"  {step_rows[i]['axis']} and {step_rows[j]['axis']} run the same network: "
                          f"their x{b / a:.2f} is measurement noise")
    print(f"device {label}, {args.threads} thread(s), torch {rows[0]['torch'] if rows else '?'}, warm-up "
          f"{args.warmup}, up to {args.runs} runs or {args.seconds_per_model:g} s of runs per model")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows,
                                         "step": step_rows}, indent=1))
    print(f"runtime {time.perf_counter() - T0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
