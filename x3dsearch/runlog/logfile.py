"""``expansion_path.yaml``: the run log, written by the search and read by ``show`` and ``plot``.

Both directions live here, so the schema is defined once. The search rewrites
the log after every trial result, so a reader meets finished, interrupted and
still-running runs alike. Unknown keys are ignored (the log may grow); the keys
read are type-checked, and any problem becomes one :class:`RunLogError` line
that names the file and the key.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Mapping, overload

import yaml

from ..errors import ConfigError, X3DSearchError
from ..factors import Factors
from .decision import Comparison, Decision, Score
from .run import (SEED_TRIAL, Baseline, Contraction, Cost, Run, RunInfo, Step, contraction_trial_name,
                  step_trial_name)
from .status import RunStatus, StopReason, TrialStatus
from .trial import SCRATCH, Trial, trial_from_log


class RunLogError(X3DSearchError):
    """A run directory or its log cannot be read."""


# --- writing ---------------------------------------------------------------------------------------
class _Flow(dict):
    """A mapping written on one line (factors, data), as in ``{frames: 4, stride: 12, ...}``."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Flow, lambda d, data: d.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True))


def _flow_factors(entry: dict[str, Any]) -> dict[str, Any]:
    if entry.get("factors") is not None:
        entry["factors"] = _Flow(entry["factors"])
    return entry


def _judged(trial: Trial, scores: Mapping[str, Score], chosen: bool) -> dict[str, Any]:
    """A candidate with its score on the step's common videos, and for the chosen one its held-out top-1."""
    entry = _flow_factors(trial.to_log())
    if trial.name in scores:
        entry.update(scores[trial.name].to_log())
    if chosen:
        entry["heldout_top1"] = trial.heldout
    return entry


def _baseline(baseline: Baseline) -> dict[str, Any]:
    trial = baseline.trial
    return {"name": baseline.name, "factors": _Flow(trial.model.factors.to_dict()), "gflops": trial.gflops,
            "params_m": trial.params_m, "top1": trial.top1, "status": str(trial.status), "init": trial.init,
            "parent": trial.parent, **(baseline.score.to_log() if baseline.score else {}),
            "heldout_top1": trial.heldout,
            "vs_final": baseline.vs_final.to_dict() if baseline.vs_final else None}


def to_log(run: Run, interrupted: bool = False) -> dict[str, Any]:
    """The log's mapping of ``run``; ``interrupted`` marks a session that ended before the search did."""
    steps = [{"step": s.step, "from": _flow_factors(s.start.model_log()),
              "candidates": [_judged(c, s.scores, c.axis == s.chosen) for c in s.candidates], "chosen": s.chosen,
              "decision": s.decision.to_dict() if s.decision else None, "time_s": s.time_s} for s in run.steps]
    contraction = None
    c = run.contraction
    if c is not None and c.done and c.kept is not None:
        kept = c.kept
        contraction = {"from": _flow_factors(c.overshoot.model_log()), "axis": kept.axis,
                       **_flow_factors(kept.model_log()), "params_m": kept.params_m, "init": kept.init,
                       "parent": kept.parent, "node": kept.node,
                       **(c.scores[kept.name].to_log() if kept.name in c.scores else {}),
                       "heldout_top1": kept.heldout, "decision": c.decision.to_dict() if c.decision else None,
                       "vs_overshoot": c.vs_overshoot.to_dict() if c.vs_overshoot else None}
    final = None
    if run.final is not None:
        f = run.final
        final = {"factors": _Flow(f.model.factors.to_dict()), "gflops": f.gflops, "params_m": f.params_m,
                 "top1": f.top1, "heldout_top1": f.heldout,
                 **({"ms": f.latency_ms} if f.latency_ms is not None else {})}
    status = run.status if run.status == RunStatus.FINISHED else (
        RunStatus.INTERRUPTED if interrupted else RunStatus.RUNNING)
    info = run.info
    return {"target_gflops": info.target_gflops, "complexity": info.complexity, "target_ms": info.target_ms,
            "path": list(info.path) if info.path else None, "seed": info.seed, "space": info.space,
            "budget": info.budget, "proxy_init": info.proxy_init, "data": _Flow(info.data or {}),
            "status": str(status),
            "stop_reason": str(run.stop_reason) if run.stop_reason else None, "stop_detail": run.stop_detail,
            "steps": steps, "contraction": contraction, "final": final,
            "baselines": [_baseline(b) for b in run.baselines] or None, "cost": run.cost.to_dict()}


def dump_log(run: Run, interrupted: bool = False) -> str:
    return yaml.dump(to_log(run, interrupted), Dumper=_Dumper, sort_keys=False, default_flow_style=False)


# --- reading ---------------------------------------------------------------------------------------
class _Reader:
    """Typed access to the raw YAML with errors that name the file and the key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str) -> RunLogError:
        return RunLogError(f"{self.path}: {where}: {problem}")

    def mapping(self, value: Any, where: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(where, f"expected a mapping, got {type(value).__name__}")
        return value

    @overload
    def number(self, value: Any, where: str, optional: Literal[False]) -> float: ...
    @overload
    def number(self, value: Any, where: str, optional: bool = True) -> float | None: ...

    def number(self, value: Any, where: str, optional: bool = True) -> float | None:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(where, f"expected a number, got {value!r}")
        return float(value)

    @overload
    def text(self, value: Any, where: str, optional: Literal[False]) -> str: ...
    @overload
    def text(self, value: Any, where: str, optional: bool = True) -> str | None: ...

    def text(self, value: Any, where: str, optional: bool = True) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise self.fail(where, f"expected a string, got {value!r}")
        return str(value)

    def factors(self, value: Any, where: str) -> Factors:
        try:
            return Factors.from_dict(self.mapping(value, where))
        except ConfigError as exc:
            raise self.fail(where, str(exc)) from None

    def model(self, raw: Any, where: str, name: str, axis: str | None = None) -> Trial:
        raw = self.mapping(raw, where)
        top1 = self.number(raw.get("top1"), f"{where}.top1")
        trial = trial_from_log(name, axis, self.factors(raw.get("factors"), f"{where}.factors"),
                               self.number(raw.get("gflops"), f"{where}.gflops", optional=False),
                               params_m=self.number(raw.get("params_m"), f"{where}.params_m"),
                               status=TrialStatus.OK if top1 is not None else TrialStatus.PENDING, top1=top1)
        trial.heldout_top1 = self.number(raw.get("heldout_top1"), f"{where}.heldout_top1")
        trial.latency_ms = self.number(raw.get("ms"), f"{where}.ms")
        self.started(trial, raw, where)
        return trial

    def started(self, trial: Trial, raw: Mapping[str, Any], where: str) -> None:
        """How a trained model started (``init``, ``parent``) and where (``node``); a log written before them:
        scratch, on a node it did not name."""
        trial.init = self.text(raw.get("init"), f"{where}.init") or SCRATCH
        trial.parent = self.text(raw.get("parent"), f"{where}.parent")
        trial.node = self.text(raw.get("node"), f"{where}.node")

    def candidate(self, raw: Any, where: str, step: int) -> Trial:
        raw = self.mapping(raw, where)
        status = self.text(raw.get("status"), f"{where}.status", optional=False)
        axis = self.text(raw.get("axis"), f"{where}.axis", optional=False)
        needed = status == TrialStatus.OK or raw.get("factors") is not None
        trial = trial_from_log(
            step_trial_name(step, axis), axis,
            self.factors(raw.get("factors"), f"{where}.factors") if needed else None,
            self.number(raw.get("gflops"), f"{where}.gflops", optional=status != TrialStatus.OK),
            params_m=self.number(raw.get("params_m"), f"{where}.params_m"), status=status,
            error=self.text(raw.get("error"), f"{where}.error"),
            top1=self.number(raw.get("top1"), f"{where}.top1"), top5=self.number(raw.get("top5"), f"{where}.top5"),
            train_time_s=self.number(raw.get("train_time_s"), f"{where}.train_time_s"),
            train_macs=self.number(raw.get("train_macs"), f"{where}.train_macs"))
        trial.heldout_top1 = self.number(raw.get("heldout_top1"), f"{where}.heldout_top1")
        trial.latency_ms = self.number(raw.get("ms"), f"{where}.ms")
        self.started(trial, raw, where)
        return trial

    def decision(self, raw: Any, where: str) -> Decision | None:
        if raw is None:
            return None
        try:
            return Decision.from_dict(self.mapping(raw, where))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise self.fail(where, f"not a decision ({type(exc).__name__}: {exc})") from None

    def scores(self, raws: list[Any], trials: list[Trial], decision: Decision | None) -> dict[str, Score]:
        criterion = decision.criterion if decision else "top1"
        out = {}
        for raw, trial in zip(raws, trials):
            score = Score.from_log(raw, criterion) if isinstance(raw, Mapping) else None
            if score is not None:
                out[trial.name] = score
        return out

    def step(self, raw: Any, index: int, previous: Step | None) -> Step:
        where = f"steps[{index}]"
        raw = self.mapping(raw, where)
        number = raw.get("step")
        if isinstance(number, bool) or not isinstance(number, int):
            raise self.fail(f"{where}.step", f"expected an integer, got {number!r}")
        cands_raw = raw.get("candidates", [])
        if not isinstance(cands_raw, list):
            raise self.fail(f"{where}.candidates", f"expected a list, got {type(cands_raw).__name__}")
        cands = [self.candidate(c, f"{where}.candidates[{i}]", number) for i, c in enumerate(cands_raw)]
        chosen = self.text(raw.get("chosen"), f"{where}.chosen")
        start_name = SEED_TRIAL if previous is None or previous.chosen is None else \
            step_trial_name(previous.step, previous.chosen)
        decision = self.decision(raw.get("decision"), f"{where}.decision")
        step = Step(step=number, start=self.model(raw.get("from"), f"{where}.from", start_name), candidates=cands,
                    chosen=chosen, done=chosen is not None,
                    recorded_time_s=self.number(raw.get("time_s"), f"{where}.time_s"), decision=decision,
                    scores=self.scores(cands_raw, cands, decision))
        picked = step.chosen_candidate
        if chosen is not None and picked is None:
            raise self.fail(f"{where}.chosen", f"'{chosen}' is not the axis of any candidate of step {number}")
        if picked is not None and (picked.factors is None or picked.gflops is None):
            raise self.fail(f"{where}.chosen", f"the chosen candidate '{chosen}' has no factors or gflops")
        return step

    def contraction(self, raw: Any) -> Contraction | None:
        if raw is None:
            return None
        raw = self.mapping(raw, "contraction")
        axis = self.text(raw.get("axis"), "contraction.axis", optional=False)
        kept = self.model(raw, "contraction", contraction_trial_name(axis), axis)
        overshoot = self.model(raw.get("from"), "contraction.from", "overshoot")
        decision = self.decision(raw.get("decision"), "contraction.decision")
        vs_overshoot = raw.get("vs_overshoot")
        return Contraction(overshoot=overshoot, start=None, axis=axis, candidates=[kept], chosen=kept.name, done=True,
                           decision=decision, scores=self.scores([raw], [kept], decision),
                           vs_overshoot=Comparison.from_dict(vs_overshoot) if isinstance(vs_overshoot, Mapping)
                           else None)

    def baselines(self, raw: Any, criterion: str) -> list[Baseline]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise self.fail("baselines", f"expected a list, got {type(raw).__name__}")
        out = []
        for index, item in enumerate(raw):
            where = f"baselines[{index}]"
            entry = self.mapping(item, where)
            name = self.text(entry.get("name"), f"{where}.name", optional=False)
            trial = trial_from_log(f"baseline-{name}", name, self.factors(entry.get("factors"), f"{where}.factors"),
                                   self.number(entry.get("gflops"), f"{where}.gflops", optional=False),
                                   params_m=self.number(entry.get("params_m"), f"{where}.params_m"),
                                   status=self.text(entry.get("status"), f"{where}.status") or "ok",
                                   top1=self.number(entry.get("top1"), f"{where}.top1"))
            trial.heldout_top1 = self.number(entry.get("heldout_top1"), f"{where}.heldout_top1")
            self.started(trial, entry, where)
            vs_final = entry.get("vs_final")
            out.append(Baseline(name, trial, Score.from_log(entry, criterion),
                                Comparison.from_dict(vs_final) if isinstance(vs_final, Mapping) else None))
        return out

    def cost(self, raw: Any) -> Cost:
        if raw is None:
            return Cost()
        raw = self.mapping(raw, "cost")
        return Cost(**{k: self.number(raw.get(k), f"cost.{k}") for k in Cost.KEYS})


def from_log(raw: Any, path: Path, run_dir: Path | None = None) -> Run:
    """The :class:`Run` a log describes; raises :class:`RunLogError` naming the first bad key."""
    reader = _Reader(path)
    if not isinstance(raw, Mapping):
        raise RunLogError(f"{path}: expected a mapping at the top level, got "
                          f"{'an empty file' if raw is None else type(raw).__name__}")
    if "steps" not in raw:
        raise RunLogError(f"{path}: missing key 'steps'")
    steps_raw = raw["steps"] if raw["steps"] is not None else []
    if not isinstance(steps_raw, list):
        raise reader.fail("steps", f"expected a list, got {type(steps_raw).__name__}")
    seed = raw.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise reader.fail("seed", f"expected an integer, got {seed!r}")
    status = reader.text(raw.get("status"), "status")  # any value but "finished" reads as partial
    data = raw.get("data")
    if data is not None:
        data = reader.mapping(data, "data")
        for key in ("num_classes", "train_videos", "val_videos"):
            value = data.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise reader.fail(f"data.{key}", f"expected a non-negative integer, got {value!r}")
    final = reader.model(raw["final"], "final", "final") if raw.get("final") is not None else None
    steps: list[Step] = []
    for index, entry in enumerate(steps_raw):
        steps.append(reader.step(entry, index, steps[-1] if steps else None))
    axes = raw.get("path")
    if axes is not None and (not isinstance(axes, list) or not all(isinstance(a, str) for a in axes)):
        raise reader.fail("path", f"expected a list of axes, got {axes!r}")
    info = RunInfo(target_gflops=reader.number(raw.get("target_gflops"), "target_gflops"), seed=seed,
                   space=reader.text(raw.get("space"), "space"), budget=reader.text(raw.get("budget"), "budget"),
                   data=data, complexity=reader.text(raw.get("complexity"), "complexity") or "gflops",
                   target_ms=reader.number(raw.get("target_ms"), "target_ms"), path=tuple(axes) if axes else None,
                   proxy_init=reader.text(raw.get("proxy_init"), "proxy_init") or SCRATCH)
    seed_trial = steps[0].start if steps else Trial(SEED_TRIAL, None, None, None)
    reason = reader.text(raw.get("stop_reason"), "stop_reason")
    decided = next((s.decision for s in steps if s.decision is not None), None)
    baselines = reader.baselines(raw.get("baselines"), decided.criterion if decided else "top1")
    return Run(info=info, seed_trial=seed_trial, steps=steps, contraction=reader.contraction(raw.get("contraction")),
               final=final, status=_run_status(status), stop_reason=_stop_reason(reason),
               stop_detail=reader.text(raw.get("stop_detail"), "stop_detail"), cost=reader.cost(raw.get("cost")),
               baselines=baselines, run_dir=run_dir)


def _stop_reason(text: str | None) -> StopReason | str | None:
    try:
        return StopReason(text) if text is not None else None
    except ValueError:  # a reason of a newer writer, shown as it is
        return text


def _run_status(text: str | None) -> RunStatus | str | None:
    if text is None:
        return None
    try:
        return RunStatus(text)
    except ValueError:
        return text
