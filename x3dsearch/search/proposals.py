"""Per-axis proposals: the discrete setting whose GFLOPs is closest to c x the current model's.

Each axis moves on a ladder of discrete settings (integer frames, crops on a
multiple, depth/width/bottleneck on a grid where each rung builds a different
network). GFLOPs grow monotonically up a ladder, so the solver climbs until it
passes the goal and keeps the nearer of the two rungs around it. Fixed
multipliers would not do: x2 width is x3.4 GFLOPs, and ceil-rounded depths or
8-rounded widths move the real ratio by several percent.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

from ..factors import Factors
from ..models.x3d import stage_plan
from .estimate import estimate_gflops
from .space import Axis, SearchSpace

#: Safety cap on rungs climbed per axis (a ladder with a tiny step and a huge goal).
MAX_RUNGS = 20000


@dataclass(frozen=True)
class Proposal:
    axis: str
    factors: Factors
    gflops: float  # closed-form count, equal to fvcore's (see estimate.py)

    def ratio(self, base_gflops: float) -> float:
        return self.gflops / base_gflops


@dataclass(frozen=True)
class Skip:
    """An axis that proposes nothing this step, and why (logged)."""

    axis: str
    reason: str


def _nearest_stride(span: int, frames: int) -> int:
    """The integer stride closest to span / frames; an exact half goes to the faster rate."""
    return int(math.ceil(span / frames - 0.5))


def _network(factors: Factors) -> tuple:
    stem, stages, head = stage_plan(factors)
    return stem, tuple(stages), head


def _frames_ladder(axis: Axis, current: Factors, space: SearchSpace) -> Iterator[Factors | str]:
    frames = current.frames
    while True:
        frames += axis.step
        if frames > axis.max:
            yield f"frames would exceed max {axis.max:g}"
            return
        if axis.keep == "span":
            stride = _nearest_stride(current.span, frames)
            if stride < space.min_stride:
                yield f"stride would drop below min_stride {space.min_stride}"
                return
            if stride >= current.stride:
                continue  # not yet a faster frame rate; this rung is a longer clip
        else:
            stride = current.stride
        if space.max_span is not None and frames * stride > space.max_span:
            yield f"clip span {frames}x{stride} would exceed max_span {space.max_span}"
            return
        yield current.replace(frames=frames, stride=stride)


def _crop_ladder(axis: Axis, current: Factors) -> Iterator[Factors | str]:
    step = int(axis.step)
    crop = (current.crop // step + 1) * step
    while True:
        if crop > axis.max:
            yield f"crop would exceed max {axis.max:g}"
            return
        yield current.replace(crop=crop)
        crop += step


def _grid_ladder(axis: Axis, current: Factors) -> Iterator[Factors | str]:
    """Grid values above the current one; each distinct network once, named by its largest value."""
    name = axis.factor
    step = axis.step
    k = math.floor(getattr(current, name) / step + 1e-9) + 1
    seen = _network(current)
    pending: Factors | None = None
    while True:
        value = round(k * step, 6)
        if value > axis.max + 1e-9:
            if pending is not None:
                yield pending
            yield f"{name} would exceed max {axis.max:g}"
            return
        candidate = current.replace(**{name: value})
        network = _network(candidate)
        if network != seen:
            if pending is not None:
                yield pending
            seen = network
            pending = candidate
        elif pending is not None:
            pending = candidate  # same network, larger name
        k += 1


def ladder(axis: Axis, current: Factors, space: SearchSpace) -> Iterator[Factors | str]:
    """Settings along ``axis`` above ``current``, smallest first; a string ends it with the bound hit."""
    if axis.factor == "frames":
        return _frames_ladder(axis, current, space)
    if axis.factor == "crop":
        return _crop_ladder(axis, current)
    return _grid_ladder(axis, current)


def propose(axis: Axis, current: Factors, space: SearchSpace, num_classes: int) -> Proposal | Skip:
    """The rung closest to ``expansion_rate`` x current GFLOPs (ties to the cheaper one).

    With the space's ``proposal: at-most`` rule the rung must not exceed the goal.

    A bound that stops the climb early still yields its last rung, but only if
    that rung reaches at least sqrt(c) x (half the step in log terms); a smaller
    candidate would not cost about the same as the others.
    """
    base = estimate_gflops(current, num_classes)
    goal = space.expansion_rate * base
    below: Proposal | None = None
    reason = "no setting above the current one"
    for rungs, rung in enumerate(ladder(axis, current, space)):
        if isinstance(rung, str):
            reason = rung
            break
        if rungs >= MAX_RUNGS:
            reason = f"more than {MAX_RUNGS} settings below x{space.expansion_rate:g}"
            break
        proposal = Proposal(axis.name, rung, estimate_gflops(rung, num_classes))
        if proposal.gflops >= goal:
            if proposal.gflops == goal:
                return proposal
            if below is not None and (space.proposal == "at-most"
                                      or goal - below.gflops <= proposal.gflops - goal):
                return below
            if space.proposal == "nearest":
                return proposal
            reason = f"the smallest setting is already x{proposal.gflops / base:.2f}"
            below = None
            break
        below = proposal
    if below is not None and below.gflops >= math.sqrt(space.expansion_rate) * base:
        return below
    best = f" (largest reachable x{below.gflops / base:.2f})" if below is not None else ""
    return Skip(axis.name, f"{reason}{best}")


def propose_step(current: Factors, space: SearchSpace, num_classes: int) -> tuple[list[Proposal], list[Skip]]:
    proposals: list[Proposal] = []
    skips: list[Skip] = []
    for axis in space.axes:
        result = propose(axis, current, space, num_classes)
        (proposals if isinstance(result, Proposal) else skips).append(result)
    return proposals, skips


def contract(axis: Axis, start: Factors, space: SearchSpace, num_classes: int, target_gflops: float,
             ) -> Proposal | Skip:
    """The largest rung along ``axis`` above ``start`` whose GFLOPs is at most the target."""
    best: Proposal | None = None
    reason = f"the smallest setting along {axis.name} already exceeds the target"
    for rungs, rung in enumerate(ladder(axis, start, space)):
        if isinstance(rung, str):
            reason = rung
            break
        g = estimate_gflops(rung, num_classes)
        if g > target_gflops or rungs >= MAX_RUNGS:
            break
        best = Proposal(axis.name, rung, g)
    return best if best is not None else Skip(axis.name, reason)
