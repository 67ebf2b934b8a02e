"""``expansion_path.yaml`` (the search's log), ``final_model.yaml`` and the closing path table.

The log is rewritten after every trial result, so ``x3dsearch show``/``plot``
read running, interrupted and finished searches alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..model_file import save_model_file
from ..utils.io import atomic_write_text
from .state import SearchState, StepRecord, TrialRecord

PATH_LOG_NAME = "expansion_path.yaml"
FINAL_MODEL_NAME = "final_model.yaml"


@dataclass(frozen=True)
class RunInfo:
    """What the log says about the run besides its state."""

    target_gflops: float
    seed: int
    space: str
    budget: str
    data: dict[str, Any]  # root, num_classes, train_videos, val_videos


class _Flow(dict):
    """A mapping written on one line (factors), as in ``{frames: 4, stride: 12, ...}``."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Flow, lambda d, data: d.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True))


def _factors(record: TrialRecord) -> _Flow:
    return _Flow(record.factors.to_dict())


def _model(record: TrialRecord) -> dict[str, Any]:
    return {"factors": _factors(record), "gflops": record.gflops, "top1": record.top1}


def _candidate(record: TrialRecord) -> dict[str, Any]:
    return {"axis": record.axis, "factors": _factors(record), "gflops": record.gflops,
            "params_m": record.params_m, "top1": record.top1, "top5": record.top5,
            "train_time_s": record.train_time_s, "status": record.status, "error": record.error,
            "train_macs": record.train_macs}


def _skipped(entry: dict[str, str]) -> dict[str, Any]:
    """An axis that proposed nothing, in the candidate shape readers expect."""
    return {"axis": entry["axis"], "factors": None, "gflops": None, "params_m": None, "top1": None, "top5": None,
            "train_time_s": None, "status": "skipped", "error": entry["reason"], "train_macs": None}


def union_seconds(intervals: list[list[float]]) -> float:
    """Length of the union of [start, end] intervals: wall time in which some trial was training."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted((a, b) for a, b in intervals if b > a):
        if start > end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


def _step_time(step: StepRecord) -> float | None:
    sessions = [s for c in step.candidates for s in c.sessions]
    return union_seconds(sessions) if sessions else None


def cost(state: SearchState, live_wall_s: float = 0.0) -> dict[str, float]:
    trials = state.trials()
    train_s = union_seconds([s for t in trials for s in t.sessions])
    ray_s = state.cost.ray_start_s + max(0.0, state.cost.experiments_s - train_s)
    return {"train_macs": float(sum(t.train_macs or 0.0 for t in trials)),
            "wall_time_s": state.cost.wall_s + live_wall_s, "flop_count_s": state.cost.flop_count_s,
            "ray_s": ray_s, "train_s": train_s}


def path_log(state: SearchState, info: RunInfo, live_wall_s: float = 0.0, interrupted: bool = False,
             ) -> dict[str, Any]:
    steps = []
    for step in state.steps:
        start = state.trial(step.start)
        steps.append({"step": step.step, "from": _model(start),
                      "candidates": [_candidate(c) for c in step.candidates] + [_skipped(s) for s in step.skipped],
                      "chosen": step.chosen, "time_s": _step_time(step)})
    contraction = None
    c = state.contraction
    if c is not None and c.done and c.chosen is not None:
        kept = state.trial(c.chosen)
        contraction = {"from": _model(state.trial(c.overshoot)), "axis": kept.axis, **_model(kept),
                       "params_m": kept.params_m}
    final = None
    if state.final is not None:
        record = state.trial(state.final)
        final = {"factors": _factors(record), "gflops": record.gflops, "params_m": record.params_m,
                 "top1": record.top1}
    status = state.status if state.status == "finished" else ("interrupted" if interrupted else "running")
    return {"target_gflops": info.target_gflops, "seed": info.seed, "space": info.space, "budget": info.budget,
            "data": _Flow(info.data), "status": status, "steps": steps, "contraction": contraction, "final": final,
            "cost": cost(state, live_wall_s)}


def write_path_log(run_dir: Path, state: SearchState, info: RunInfo, live_wall_s: float = 0.0,
                   interrupted: bool = False) -> None:
    text = yaml.dump(path_log(state, info, live_wall_s, interrupted), Dumper=_Dumper, sort_keys=False,
                     default_flow_style=False)
    atomic_write_text(Path(run_dir) / PATH_LOG_NAME, text)


def write_final_model(run_dir: Path, record: TrialRecord, num_classes: int, target_gflops: float) -> None:
    save_model_file(Path(run_dir) / FINAL_MODEL_NAME, record.factors, num_classes, gflops=record.gflops,
                    params_m=record.params_m, top1=record.top1, target_gflops=target_gflops,
                    source="x3dsearch expand")


def _fmt_top1(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def path_table(state: SearchState, target_gflops: float) -> list[str]:
    """The chosen path, one line per model, ending with how close the final model is to the target."""
    rows = [("seed", "", state.seed)]
    for step in state.steps:
        if step.chosen is not None:
            chosen = next(c for c in step.candidates if c.axis == step.chosen)
            usable = sum(c.usable for c in step.candidates)
            rows.append((str(step.step), f"{step.chosen} ({usable}/{len(step.candidates)} ok)", chosen))
    c = state.contraction
    if c is not None and c.chosen is not None:
        kept = state.trial(c.chosen)
        rows.append(("contracted", kept.axis or "", kept))
    out = [f"{'step':<11} {'chosen':<22} {'model':<28} {'GFLOPs':>8} {'params':>8} {'top-1':>6}"]
    for label, axis, record in rows:
        out.append(f"{label:<11} {axis:<22} {record.factors.short():<28} {record.gflops:>8.4f} "
                   f"{record.params_m:>7.2f}M {_fmt_top1(record.top1):>6}")
    if state.final is not None:
        final = state.trial(state.final)
        share = 100.0 * final.gflops / target_gflops
        out.append(f"final: {final.factors.short()}, {final.gflops:.4f} GFLOPs = {share:.1f}% of the "
                   f"{target_gflops:g} GFLOPs target ({target_gflops - final.gflops:.4f} under), "
                   f"top-1 {_fmt_top1(final.top1)}")
    return out
