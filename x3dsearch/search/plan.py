"""The search's arithmetic without training: a fixed path replayed, or the first step's candidates.

Everything a search decides without looking at accuracy is computed here, with
the same proposal rule, stopping rule and contraction the search uses, so
``x3dsearch expand --dry-run`` shows exactly what a search that chose a given
sequence of axes would train. Pure: no Ray, no training, no files.

The pieces are also what a replay (``expand --path``) needs at run time:
:func:`parse_path` checks the axes, :func:`path_proposal` makes one step's
model, :func:`reached` is the stopping rule, :func:`contraction_candidates`
shrinks the overshooting step.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ..errors import ConfigError
from ..factors import Factors
from .estimate import estimate_gflops
from .measure import GFLOPS, Measure
from .proposals import Proposal, Skip, contract, propose, propose_step
from .space import CONTRACTIONS, SearchSpace


class PlanEnd(str, Enum):
    """Why a plan stops where it does."""

    REACHED = "reached"          # within the space's tolerance under the target, or past it (then contracted)
    PATH_ENDED = "path-ended"    # the path's axes ran out before the target
    NEEDS_TRAINING = "needs-training"  # no path: only the first step is known before training

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class PlannedModel:
    """One model of a plan: the seed (step 0), a step's model or the contracted one."""

    step: int
    axis: str | None
    factors: Factors
    gflops: float
    value: float  # in the measure's unit; equal to ``gflops`` for the GFLOPs measure

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "axis": self.axis, "factors": self.factors.to_dict(), "gflops": self.gflops}


@dataclass(frozen=True)
class PlanStep:
    """One expansion step: the model it starts from, every axis's candidate, and the path's choice."""

    step: int
    start: Factors
    candidates: tuple[Proposal, ...]
    skipped: tuple[Skip, ...] = ()
    chosen: str | None = None  # the path's axis; None when training would decide

    def chosen_proposal(self) -> Proposal | None:
        return next((p for p in self.candidates if p.axis == self.chosen), None)


@dataclass(frozen=True)
class PlanContraction:
    """The overshooting last step shrunk back under the target."""

    start: Factors      # the model the last step started from
    overshoot: Factors  # the last step's model
    axis: str           # the last step's axis
    candidates: tuple[Proposal, ...]
    skipped: tuple[Skip, ...] = ()


@dataclass(frozen=True)
class Plan:
    target: float
    measure: str
    unit: str
    tolerance: float
    num_classes: int
    seed: PlannedModel
    steps: tuple[PlanStep, ...]
    end: PlanEnd
    contraction: PlanContraction | None = None
    final: PlannedModel | None = None  # None when training decides (no path, or several contractions)
    path: tuple[str, ...] = ()
    unused: tuple[str, ...] = ()       # the path's axes after the target was reached
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """``{"steps": [{"step", "axis", "factors", "gflops"}], "final": {"factors", "gflops"}, ...}``.

        With a path, ``steps`` lists the path's models; without one, the first step's
        candidates. The measure's own value is added as ``value`` when it is not GFLOPs.
        """
        def model(m: PlannedModel | Proposal, step: int) -> dict[str, Any]:
            out = {"step": step, "axis": m.axis, "factors": m.factors.to_dict(), "gflops": m.gflops}
            if self.measure != "gflops":
                out[self.unit] = m.value
            return out

        if self.path:
            steps = [model(p, s.step) for s in self.steps if (p := s.chosen_proposal()) is not None]
        else:
            steps = [model(p, s.step) for s in self.steps for p in s.candidates]
        out: dict[str, Any] = {
            "target": self.target, "measure": self.measure, "unit": self.unit, "tolerance": self.tolerance,
            "classes": self.num_classes, "path": list(self.path) or None,
            "seed": {"factors": self.seed.factors.to_dict(), "gflops": self.seed.gflops},
            "steps": steps,
            "skipped": [{"step": s.step, "axis": k.axis, "reason": k.reason} for s in self.steps for k in s.skipped],
            "contraction": None,
            "final": None,
            "end": str(self.end),
            "unused": list(self.unused),
            "notes": list(self.notes),
        }
        if self.contraction is not None:
            c = self.contraction
            out["contraction"] = {
                "axis": c.axis, "from": c.start.to_dict(), "overshoot": c.overshoot.to_dict(),
                "candidates": [model(p, len(self.steps)) for p in c.candidates],
                "skipped": [{"axis": k.axis, "reason": k.reason} for k in c.skipped]}
        if self.final is not None:
            out["final"] = {"factors": self.final.factors.to_dict(), "gflops": self.final.gflops,
                            "axis": self.final.axis, "step": self.final.step}
            if self.measure != "gflops":
                out["final"][self.unit] = self.final.value
        return out


# --- the rules, shared with the search ----------------------------------------------------------
def reached(value: float, target: float, tolerance: float) -> bool:
    """The stopping rule: within ``tolerance`` (a fraction) under the target, or past it."""
    return value >= target * (1.0 - tolerance)


def check_target(target: float, space: SearchSpace, num_classes: int, measure: Measure = GFLOPS,
                 option: str = "--target-gflops") -> float:
    """A target at or below zero, or below the seed, is refused (one line); returns the seed's value."""
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not math.isfinite(target) or target <= 0:
        raise ConfigError(f"{option} must be a positive number, got {target!r}")
    seed_value = measure.value(space.seed, num_classes)
    if target < seed_value:
        raise ConfigError(f"{option} {target:g} is below the seed's {seed_value:.4g} {measure.unit} "
                          f"({space.seed.short()}); nothing to search")
    return seed_value


def parse_path(text: str, space: SearchSpace) -> tuple[str, ...]:
    """``--path fast,x-temporal,...`` -> the space's axis names; ``x-`` may be left out.

    An empty item or an axis the space lacks is refused with one line.
    """
    names = [a.name for a in space.axes]
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"--path must list axes separated by commas (the space's axes: {', '.join(names)})")
    path: list[str] = []
    for position, raw in enumerate(text.split(","), start=1):
        item = raw.strip()
        if not item:
            raise ConfigError(f"--path: item {position} is empty (write axes separated by single commas)")
        name = item if item in names else f"x-{item}" if f"x-{item}" in names else None
        if name is None:
            raise ConfigError(f"--path: unknown axis '{item}' at position {position} "
                              f"(the space's axes: {', '.join(names)})")
        path.append(name)
    return tuple(path)


def path_proposal(space: SearchSpace, axis: str, current: Factors, num_classes: int, step: int,
                  measure: Measure = GFLOPS) -> Proposal:
    """Step ``step`` of a replay: the proposal along ``axis``; an axis its bound would skip is refused."""
    result = propose(space.axis(axis), current, space, num_classes, measure)
    if isinstance(result, Skip):
        raise ConfigError(f"--path step {step} ({axis}) leaves the space from {current.short()}: {result.reason}")
    return result


def contraction_candidates(space: SearchSpace, start: Factors, overshoot: Factors, axis: str, num_classes: int,
                           target: float, measure: Measure = GFLOPS, contract_axes: str | None = None,
                           ) -> tuple[list[Proposal], list[Skip]]:
    """The overshooting step shrunk under ``target``: along its own ``axis`` (``own``), then every other
    axis from ``start`` too (``all``); equal models once. The own axis shrinks ``overshoot`` itself."""
    rule = contract_axes or space.contraction
    if rule not in CONTRACTIONS:
        raise ConfigError(f"--contract-axes must be one of {', '.join(CONTRACTIONS)}, got '{rule}'")
    axes = [axis] + ([a.name for a in space.axes if a.name != axis] if rule == "all" else [])
    found: list[Proposal] = []
    skipped: list[Skip] = []
    for name in axes:
        result = contract(space.axis(name), start, space, num_classes, target, measure,
                          expanded=overshoot if name == axis else None)
        if isinstance(result, Skip):
            skipped.append(result)
        elif all(result.factors != p.factors for p in found):
            found.append(result)
    return found, skipped


# --- plans ---------------------------------------------------------------------------------------
def _model(step: int, axis: str | None, factors: Factors, value: float, num_classes: int) -> PlannedModel:
    return PlannedModel(step, axis, factors, estimate_gflops(factors, num_classes), value)


def replay(space: SearchSpace, path: tuple[str, ...] | list[str], target: float, num_classes: int,
           measure: Measure = GFLOPS, contract_axes: str | None = None) -> Plan:
    """What a search that chose ``path``'s axes in turn would train, up to the target and contraction.

    Steps run while the current model is short of the stopping rule; the path's axes left
    after that are reported as ``unused``. A path that ends first stops there
    (:attr:`PlanEnd.PATH_ENDED`); a replay in the search stops with that reason.
    """
    check_target(target, space, num_classes, measure)
    names = {a.name for a in space.axes}
    for name in path:
        if name not in names:
            raise ConfigError(f"--path: unknown axis '{name}'")
    current = _model(0, None, space.seed, measure.value(space.seed, num_classes), num_classes)
    seed = current
    steps: list[PlanStep] = []
    history: list[PlannedModel] = [seed]
    index = 0
    while not reached(current.value, target, space.tolerance) and index < len(path):
        axis = path[index]
        chosen = path_proposal(space, axis, current.factors, num_classes, index + 1, measure)
        steps.append(PlanStep(step=index + 1, start=current.factors, candidates=(chosen,), chosen=axis))
        current = _model(index + 1, axis, chosen.factors, chosen.value, num_classes)
        history.append(current)
        index += 1
    unused = tuple(path[index:])
    if not reached(current.value, target, space.tolerance):
        note = (f"the path ends at {current.factors.short()} ({current.value:.4g} {measure.unit}), short of the "
                f"stopping rule ({target * (1 - space.tolerance):.4g} {measure.unit} = {1 - space.tolerance:g} x "
                f"the target); a replay stops there")
        return Plan(target, measure.name, measure.unit, space.tolerance, num_classes, seed, tuple(steps),
                    PlanEnd.PATH_ENDED, final=current, path=tuple(path), notes=(note,))
    contraction: PlanContraction | None = None
    final: PlannedModel | None = current
    notes: list[str] = []
    if current.value > target and steps:
        start = history[-2]
        found, skipped = contraction_candidates(space, start.factors, current.factors, current.axis or "",
                                                num_classes, target, measure, contract_axes)
        contraction = PlanContraction(start.factors, current.factors, current.axis or "", tuple(found),
                                      tuple(skipped))
        if len(found) == 1:
            final = _model(len(steps), found[0].axis, found[0].factors, found[0].value, num_classes)
        elif not found:
            final = start
            notes.append("no setting fits under the target; the final model is the one the last step started from")
        else:
            final = None
            notes.append(f"{len(found)} contraction candidates: training picks the final model")
    return Plan(target, measure.name, measure.unit, space.tolerance, num_classes, seed, tuple(steps),
                PlanEnd.REACHED, contraction, final, tuple(path), unused, tuple(notes))


def random_path(space: SearchSpace, target: float, num_classes: int, rng: random.Random,
                measure: Measure = GFLOPS) -> Plan:
    """A random architecture of the space at the search's complexity: every step expands an axis drawn
    uniformly from those the space can still expand, and the path is replayed to the target and
    contracted as the search would. Random search over the same expansion paths is the baseline a
    search must beat (Li & Talwalkar, 2019; Yang et al., ICLR 2020)."""
    current = space.seed
    value = measure.value(current, num_classes)
    path: list[str] = []
    while not reached(value, target, space.tolerance):
        proposals, _ = propose_step(current, space, num_classes, measure)
        if not proposals:
            break
        chosen = rng.choice(proposals)
        path.append(chosen.axis)
        current, value = chosen.factors, chosen.value
    return replay(space, tuple(path), target, num_classes, measure)


def lands_on_target(plan: Plan) -> bool:
    """The plan's final model is where a search must end: within the tolerance under the target (a
    contraction that found nothing under it leaves the last step's start, far below)."""
    final = plan.final
    return (plan.end == PlanEnd.REACHED and final is not None and final.value <= plan.target
            and reached(final.value, plan.target, plan.tolerance))


def first_step(space: SearchSpace, target: float, num_classes: int, measure: Measure = GFLOPS) -> Plan:
    """Without a path only the first step is known: every axis's candidate from the seed."""
    check_target(target, space, num_classes, measure)
    seed = _model(0, None, space.seed, measure.value(space.seed, num_classes), num_classes)
    if reached(seed.value, target, space.tolerance):
        return Plan(target, measure.name, measure.unit, space.tolerance, num_classes, seed, (), PlanEnd.REACHED,
                    final=seed, notes=("the seed already meets the stopping rule; a search trains only the seed",))
    proposals, skips = propose_step(space.seed, space, num_classes, measure)
    step = PlanStep(1, space.seed, tuple(proposals), tuple(skips))
    note = ("later steps start from the candidate with the best validation score, which only training knows; "
            "give --path to see a whole chain")
    return Plan(target, measure.name, measure.unit, space.tolerance, num_classes, seed, (step,),
                PlanEnd.NEEDS_TRAINING, notes=(note,))
