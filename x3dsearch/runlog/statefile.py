"""``state.json``: a :class:`Run` whole, so a search continues after ``kill -9``.

Trials are written in full and referred to by name (a step's start, the
contraction's models, the final model). Only paths relative to the run
directory appear, so a moved run resumes. Version 1 files (written before the
trainer's result was kept whole) are read and converted.

Every save is atomic and keeps the state it replaces as ``.state.json.prev`` (a hard
link: no copy). A ``state.json`` damaged afterwards (a disk error, a bad copy) is
replaced by that previous state on the next load, with a warning: the search is
resumable from any state it saved, since it is from wherever a ``kill -9`` lands.
Damaged both, the run stops with one line; it never continues on a corrupt record.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import X3DSearchError
from ..utils.io import atomic_write_bytes, atomic_write_json
from ..utils.logging import get_logger
from .decision import Comparison, Decision, Score
from .run import Baseline, Clock, Contraction, Run, RunInfo, Step, step_trial_name
from .status import RunStatus, StopReason, TrialStatus
from .trial import Trial

STATE_VERSION = 2
READABLE_VERSIONS = (1, 2)

log = get_logger("search")


class CorruptState(X3DSearchError):
    """``state.json`` cannot be read as a run's state."""


def to_state(run: Run, live_wall_s: float = 0.0) -> dict[str, Any]:
    clock = {"wall_s": run.clock.wall_s + live_wall_s, "flop_count_s": run.clock.flop_count_s,
             "ray_start_s": run.clock.ray_start_s, "experiments_s": run.clock.experiments_s}
    contraction = None
    if run.contraction is not None:
        c = run.contraction
        contraction = {"overshoot": c.overshoot.name, "start": c.start.name if c.start else None, "axis": c.axis,
                       "candidates": [t.to_state() for t in c.candidates], "chosen": c.chosen, "done": c.done,
                       **_judged(c), "vs_overshoot": c.vs_overshoot.to_dict() if c.vs_overshoot else None}
    status = run.status if run.status == RunStatus.FINISHED else RunStatus.RUNNING
    return {"version": STATE_VERSION, "status": str(status),
            "stop_reason": run.stop_reason.name.lower() if isinstance(run.stop_reason, StopReason) else run.stop_reason,
            "stop_detail": run.stop_detail, "sessions": run.sessions, "seed": run.seed_trial.to_state(),
            "steps": [{"step": s.step, "start": s.start.name, "candidates": [t.to_state() for t in s.candidates],
                       "chosen": s.chosen, "done": s.done, **_judged(s)} for s in run.steps],
            "contraction": contraction, "final": run.final.name if run.final else None, "clock": clock,
            "baselines": [{"name": b.name, "trial": b.trial.to_state(),
                           "score": b.score.to_state() if b.score else None,
                           "vs_final": b.vs_final.to_dict() if b.vs_final else None} for b in run.baselines]}


def previous_copy(path: Path) -> Path:
    return Path(path).with_name(f".{Path(path).name}.prev")


def save_state(path: Path, run: Run, live_wall_s: float = 0.0) -> None:
    _keep_previous(Path(path))
    atomic_write_json(path, to_state(run, live_wall_s))


def _keep_previous(path: Path) -> None:
    """Link the current state as the previous copy (atomically: a kill leaves the old one or the new)."""
    if not path.is_file():
        return
    tmp = path.with_name(f".{path.name}.prev.tmp")
    try:
        tmp.unlink(missing_ok=True)
        os.link(path, tmp)
        os.replace(tmp, previous_copy(path))
    except OSError:  # a filesystem without hard links keeps no previous copy; the save itself goes on
        tmp.unlink(missing_ok=True)


def load_state(path: Path, info: RunInfo) -> Run:
    """The run ``state.json`` holds; a damaged one is replaced by the previous state (logged)."""
    path = Path(path)
    if not path.is_file():
        raise X3DSearchError(f"{path.parent} is not a search run (no {path.name})")
    try:
        run = _read(path, info)
    except CorruptState as damage:
        previous = previous_copy(path)
        recovered: Run | None
        try:
            recovered = _read(previous, info) if previous.is_file() else None
        except CorruptState:
            recovered = None
        if recovered is None:
            raise CorruptState(f"{damage}; no good previous copy is left either: restore the run directory from "
                               f"a backup, or start the search again in another --run-dir") from None
        log.warning("%s; continuing from the state saved before it (%s), which a kill -9 could also have left",
                    damage, previous.name)
        atomic_write_bytes(path, previous.read_bytes())  # the damaged file is replaced now, not at the next save
        run = recovered
    run.run_dir = path.parent
    return run


def _read(path: Path, info: RunInfo) -> Run:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptState(f"{path} is corrupt ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise CorruptState(f"{path} is corrupt (a {type(data).__name__}, not a run's state)")
    if data.get("version") not in READABLE_VERSIONS:
        if isinstance(data.get("version"), int) and data["version"] > STATE_VERSION:
            raise X3DSearchError(f"{path} has version {data['version']!r}; this x3dsearch reads versions "
                                 f"{', '.join(map(str, READABLE_VERSIONS))}: upgrade x3dsearch to resume it")
        raise CorruptState(f"{path} is corrupt (version {data.get('version')!r})")
    try:
        return from_state(data, info)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CorruptState(f"{path} is corrupt ({type(exc).__name__}: {exc})") from None


def from_state(data: dict[str, Any], info: RunInfo) -> Run:
    legacy = data["version"] == 1
    seed = Trial.from_state(data["seed"])
    known = {seed.name: seed}

    def resolve(name: str) -> Trial:
        if name not in known:
            raise KeyError(f"unknown trial '{name}'")
        return known[name]

    steps = []
    for raw in data["steps"]:
        candidates = [Trial.from_state(c) for c in raw["candidates"]]
        if legacy:  # version 1 kept skipped axes apart
            candidates += [_skipped(raw["step"], s) for s in raw.get("skipped", [])]
        steps.append(Step(step=raw["step"], start=resolve(raw["start"]), candidates=candidates,
                          chosen=raw.get("chosen"), done=bool(raw["done"]), **_read_judged(raw)))
        known.update((c.name, c) for c in candidates)
    contraction = None
    if data.get("contraction"):
        raw = data["contraction"]
        candidates = [Trial.from_state(c) for c in raw["candidates"]]
        overshoot = resolve(raw["overshoot"])
        start = resolve(raw["start"]) if raw.get("start") else None
        if legacy:
            candidates += [_skipped(None, s) for s in raw.get("skipped", [])]
        contraction = Contraction(overshoot=overshoot, start=start, axis=raw["axis"], candidates=candidates,
                                  chosen=raw.get("chosen"), done=bool(raw["done"]), **_read_judged(raw),
                                  vs_overshoot=Comparison.from_dict(raw.get("vs_overshoot")))
        known.update((c.name, c) for c in candidates)
    clock = data.get("cost" if legacy else "clock") or {}
    reason, detail = _stop(data, legacy)
    baselines = [Baseline(b["name"], Trial.from_state(b["trial"]), Score.from_state(b["score"]) if b.get("score")
                          else None, Comparison.from_dict(b.get("vs_final"))) for b in data.get("baselines", [])]
    return Run(info=info, seed_trial=seed, steps=steps, contraction=contraction,
               final=resolve(data["final"]) if data.get("final") else None,
               status=RunStatus(data["status"]), stop_reason=reason, stop_detail=detail,
               sessions=int(data.get("sessions", 0)), clock=Clock(**clock), baselines=baselines)


def _judged(record: Step | Contraction) -> dict[str, Any]:
    return {"decision": record.decision.to_dict() if record.decision else None,
            "scores": {name: score.to_state() for name, score in record.scores.items()}}


def _read_judged(raw: dict[str, Any]) -> dict[str, Any]:
    scores = {name: Score.from_state(entry) for name, entry in (raw.get("scores") or {}).items()}
    return {"decision": Decision.from_dict(raw["decision"]) if raw.get("decision") else None, "scores": scores}


def _skipped(step: int | None, entry: dict[str, str]) -> Trial:
    name = step_trial_name(step, entry["axis"]) if step is not None else f"contract-{entry['axis']}"
    return Trial(name=name, axis=entry["axis"], factors=None, gflops=None, status=TrialStatus.SKIPPED,
                 error=entry["reason"])


def _stop(data: dict[str, Any], legacy: bool) -> tuple[StopReason | None, str | None]:
    text = data.get("stop_reason")
    if not text:
        return None, None
    if legacy:  # version 1 wrote one sentence, only for a search stopped by the space's bounds
        return StopReason.BOUNDED, text
    return StopReason[text.upper()], data.get("stop_detail")
