"""Read a search's ``expansion_path.yaml`` into typed records, rejecting broken logs early.

The search rewrites this log after every trial, so a reader meets finished,
interrupted and still-running runs alike. Unknown keys are ignored (the log may
grow); keys this module relies on are type-checked, and any problem becomes one
:class:`RunLogError` line that names the file and the key.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError, X3DSearchError
from ..factors import Factors
from ..utils.io import read_yaml

RUN_LOG_NAME = "expansion_path.yaml"
#: The paper's six expansion operators, in the order reports list them.
AXES = ("x-fast", "x-temporal", "x-spatial", "x-depth", "x-width", "x-bottleneck")
#: Statuses the search writes; others are accepted and shown as they are.
RUN_STATUSES = ("running", "interrupted", "finished")


class RunLogError(X3DSearchError):
    """A run directory or its log cannot be read."""


@dataclass(frozen=True)
class ModelRecord:
    """One architecture with what was measured about it (``top1`` is None until evaluated)."""

    factors: Factors
    gflops: float
    top1: float | None = None
    params_m: float | None = None

    @property
    def evaluated(self) -> bool:
        return self.top1 is not None


@dataclass(frozen=True)
class Candidate:
    """One proposal of one step: a trial trained briefly and validated.

    ``factors`` and ``gflops`` are required for an ``ok`` candidate only, so a
    log may also record axes that proposed nothing (e.g. status ``skipped``).
    """

    axis: str
    factors: Factors | None
    gflops: float | None
    params_m: float | None
    top1: float | None
    top5: float | None
    train_time_s: float | None
    status: str
    error: str | None
    train_macs: float | None

    @property
    def evaluated(self) -> bool:
        return self.status == "ok" and self.top1 is not None

    @property
    def model(self) -> ModelRecord:
        if self.factors is None or self.gflops is None:
            raise RunLogError(f"candidate '{self.axis}' ({self.status}) has no factors or gflops")
        return ModelRecord(self.factors, self.gflops, self.top1 if self.evaluated else None, self.params_m)


@dataclass(frozen=True)
class Step:
    step: int
    start: ModelRecord  # the log's ``from``
    candidates: tuple[Candidate, ...]
    chosen: str | None  # None while the step is still training
    time_s: float | None

    @property
    def chosen_candidate(self) -> Candidate | None:
        for cand in self.candidates:
            if cand.axis == self.chosen:
                return cand
        return None


@dataclass(frozen=True)
class Contraction:
    """The overshooting last expansion shrunk back under the target."""

    start: ModelRecord  # the log's ``from``: the model that overshot
    axis: str
    model: ModelRecord


@dataclass(frozen=True)
class Cost:
    train_macs: float | None = None
    wall_time_s: float | None = None
    flop_count_s: float | None = None
    ray_s: float | None = None
    train_s: float | None = None


@dataclass(frozen=True)
class PathPoint:
    """A model on the chosen path: the seed, each step's choice, then the contracted model."""

    label: str  # "seed", "1", "2", ..., "contracted"
    step: int | None  # None for the seed and the contraction
    axis: str | None
    model: ModelRecord
    time_s: float | None = None


@dataclass(frozen=True)
class RunLog:
    run_dir: Path
    target_gflops: float | None
    seed: int | None
    space: str | None
    budget: str | None
    status: str | None
    data: Mapping[str, Any] | None
    steps: tuple[Step, ...]
    contraction: Contraction | None
    final: ModelRecord | None
    cost: Cost

    @property
    def name(self) -> str:
        return self.run_dir.resolve().name

    @property
    def partial(self) -> bool:
        """Still running, interrupted, or finished without a final model: plots say so."""
        return self.status != "finished" or self.final is None

    @property
    def progress(self) -> str:
        """Where a partial run stands, e.g. ``running, step 4: 2/6 candidates evaluated``."""
        state = self.status or "partial"
        if not self.steps:
            return f"{state}, no step yet"
        last = self.steps[-1]
        done = sum(c.evaluated for c in last.candidates)
        if last.chosen is None:
            return f"{state}, step {last.step}: {done}/{len(last.candidates)} candidates evaluated"
        if self.final is None:
            return f"{state} after step {last.step}, no final model yet"
        return state

    @property
    def seed_model(self) -> ModelRecord | None:
        return self.steps[0].start if self.steps else None

    def candidates(self) -> list[Candidate]:
        return [c for s in self.steps for c in s.candidates]

    def evaluated_candidates(self) -> list[Candidate]:
        return [c for c in self.candidates() if c.evaluated]

    def path(self) -> list[PathPoint]:
        """The seed, each finished step's chosen candidate, then the contracted model if any."""
        points: list[PathPoint] = []
        if self.seed_model is not None:
            points.append(PathPoint("seed", None, None, self.seed_model))
        for step in self.steps:
            chosen = step.chosen_candidate
            if chosen is not None:
                points.append(PathPoint(str(step.step), step.step, step.chosen, chosen.model, step.time_s))
        if self.contraction is not None:
            points.append(PathPoint("contracted", None, self.contraction.axis, self.contraction.model))
        return points

    def evaluated_models(self) -> list[ModelRecord]:
        """Every model with a measured top-1 (seed, candidates, contraction, final), each once."""
        models: list[ModelRecord] = []
        seen: set[tuple[str, float]] = set()
        extra = [self.contraction.model if self.contraction else None, self.final]
        for model in [self.seed_model, *(c.model for c in self.evaluated_candidates()), *extra]:
            if model is None or not model.evaluated:
                continue
            key = (model.factors.key(), round(model.gflops, 6))
            if key not in seen:
                seen.add(key)
                models.append(model)
        return models


# --- parsing --------------------------------------------------------------------------------
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

    def number(self, value: Any, where: str, optional: bool = True) -> float | None:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(where, f"expected a number, got {value!r}")
        return float(value)

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

    def model(self, raw: Any, where: str) -> ModelRecord:
        raw = self.mapping(raw, where)
        return ModelRecord(
            factors=self.factors(raw.get("factors"), f"{where}.factors"),
            gflops=self.number(raw.get("gflops"), f"{where}.gflops", optional=False),
            top1=self.number(raw.get("top1"), f"{where}.top1"),
            params_m=self.number(raw.get("params_m"), f"{where}.params_m"),
        )

    def candidate(self, raw: Any, where: str) -> Candidate:
        raw = self.mapping(raw, where)
        status = self.text(raw.get("status"), f"{where}.status", optional=False)
        needed = status == "ok" or raw.get("factors") is not None
        return Candidate(
            axis=self.text(raw.get("axis"), f"{where}.axis", optional=False),
            factors=self.factors(raw.get("factors"), f"{where}.factors") if needed else None,
            gflops=self.number(raw.get("gflops"), f"{where}.gflops", optional=status != "ok"),
            params_m=self.number(raw.get("params_m"), f"{where}.params_m"),
            top1=self.number(raw.get("top1"), f"{where}.top1"),
            top5=self.number(raw.get("top5"), f"{where}.top5"),
            train_time_s=self.number(raw.get("train_time_s"), f"{where}.train_time_s"),
            status=status,
            error=self.text(raw.get("error"), f"{where}.error"),
            train_macs=self.number(raw.get("train_macs"), f"{where}.train_macs"),
        )

    def step(self, raw: Any, index: int) -> Step:
        where = f"steps[{index}]"
        raw = self.mapping(raw, where)
        number = raw.get("step")
        if isinstance(number, bool) or not isinstance(number, int):
            raise self.fail(f"{where}.step", f"expected an integer, got {number!r}")
        cands_raw = raw.get("candidates", [])
        if not isinstance(cands_raw, list):
            raise self.fail(f"{where}.candidates", f"expected a list, got {type(cands_raw).__name__}")
        cands = tuple(self.candidate(c, f"{where}.candidates[{i}]") for i, c in enumerate(cands_raw))
        chosen = self.text(raw.get("chosen"), f"{where}.chosen")
        step = Step(number, self.model(raw.get("from"), f"{where}.from"), cands, chosen,
                    self.number(raw.get("time_s"), f"{where}.time_s"))
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
        return Contraction(
            start=self.model(raw.get("from"), "contraction.from"),
            axis=self.text(raw.get("axis"), "contraction.axis", optional=False),
            model=self.model(raw, "contraction"),
        )

    def cost(self, raw: Any) -> Cost:
        if raw is None:
            return Cost()
        raw = self.mapping(raw, "cost")
        return Cost(**{k: self.number(raw.get(k), f"cost.{k}")
                       for k in ("train_macs", "wall_time_s", "flop_count_s", "ray_s", "train_s")})


def resolve_run_dir(run_dir: str | Path) -> Path:
    """A run directory, or its ``expansion_path.yaml`` given directly."""
    path = Path(run_dir)
    if path.is_file() and path.name == RUN_LOG_NAME:
        return path.parent
    if not path.exists():
        raise RunLogError(f"{path}: no such directory")
    if not path.is_dir() or not (path / RUN_LOG_NAME).is_file():
        raise RunLogError(f"{path} is not a run directory (no {RUN_LOG_NAME})")
    return path


def load_run(run_dir: str | Path, require_evaluated: bool = True) -> RunLog:
    """Parse and validate a run's log; a run with no evaluated candidate is refused as empty."""
    run_dir = resolve_run_dir(run_dir)
    path = run_dir / RUN_LOG_NAME
    raw = read_yaml(path, error=RunLogError)
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
    final = reader.model(raw["final"], "final") if raw.get("final") is not None else None
    log = RunLog(
        run_dir=run_dir,
        target_gflops=reader.number(raw.get("target_gflops"), "target_gflops"),
        seed=seed,
        space=reader.text(raw.get("space"), "space"),
        budget=reader.text(raw.get("budget"), "budget"),
        status=status,
        data=data,
        steps=tuple(reader.step(s, i) for i, s in enumerate(steps_raw)),
        contraction=reader.contraction(raw.get("contraction")),
        final=final,
        cost=reader.cost(raw.get("cost")),
    )
    if require_evaluated and not log.evaluated_candidates():
        raise RunLogError(f"{run_dir}: the run is empty: no candidate has been evaluated yet ({log.progress})")
    return log
