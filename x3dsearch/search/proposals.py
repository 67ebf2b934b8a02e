"""Per-axis proposals: the discrete setting whose complexity is closest to c x the current model's.

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
from typing import Callable, Iterable, Iterator

from ..factors import Factors
from ..models.x3d import stage_plan
from .estimate import estimate_gflops
from .measure import GFLOPS, Measure
from .space import Axis, SearchSpace

#: Safety cap on rungs climbed per axis (a ladder with a tiny step and a huge goal).
MAX_RUNGS = 20000


@dataclass(frozen=True)
class Proposal:
    axis: str
    factors: Factors
    gflops: float  # closed-form count, equal to fvcore's (see estimate.py)
    cost: float | None = None  # the criterion's value when it is not GFLOPs (e.g. ms)

    @property
    def value(self) -> float:
        """The number the solver compared: ``cost`` for another measure, else GFLOPs."""
        return self.gflops if self.cost is None else self.cost

    def ratio(self, base_gflops: float) -> float:
        return self.gflops / base_gflops


@dataclass(frozen=True)
class Skip:
    """An axis that proposes nothing this step, and why (logged)."""

    axis: str
    reason: str


def _nearest_stride(span: float, frames: int) -> int:
    """The integer stride closest to span / frames; an exact half goes to the faster rate."""
    return int(math.ceil(span / frames - 0.5))


def _network(factors: Factors) -> tuple:
    stem, stages, head = stage_plan(factors)
    return stem, tuple(stages), head


def grown_span(axis: Axis, current: Factors, frames: int) -> float:
    """The clip span (source frames) an axis gives ``frames`` frames grown from ``current``.

    X-Fast keeps the span; otherwise it grows by ``span_growth`` per doubling of frames,
    i.e. span x (frames / current frames) ** log2(span_growth): 2.0 keeps the stride, the
    paper's X-Temporal is about 1.6 (2x15 -> 4x12, 8x6 -> 16x5).
    """
    if axis.keep == "span":
        return float(current.span)
    if axis.span_growth == 2.0:
        return float(current.stride * frames)  # exact: the stride stays
    return current.span * (frames / current.frames) ** math.log2(axis.span_growth)


def _frames_ladder(axis: Axis, current: Factors, space: SearchSpace, upto: Factors | None = None,
                   ) -> Iterator[Factors | str]:
    """Frames above ``current``'s; with ``upto`` (keep-span contraction) only up to its frames,
    every rung spread over its span."""
    frames = current.frames
    while True:
        frames += int(axis.step)
        if upto is not None and frames > upto.frames:
            yield f"frames would exceed the expanded {upto.frames}"
            return
        if frames > axis.max:
            yield f"frames would exceed max {axis.max:g}"
            return
        span = float(upto.span) if upto is not None else grown_span(axis, current, frames)
        stride = _nearest_stride(span, frames)
        if stride < space.min_stride and stride < current.stride:  # a start already under it may keep its stride
            yield f"stride would drop below min_stride {space.min_stride}"
            return
        if axis.keep == "span" and upto is None and stride >= current.stride:
            continue  # not yet a faster frame rate; this rung is a longer clip
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


def _proposal(axis: str, rung: Factors, value: float, measure: Measure, num_classes: int) -> Proposal:
    if measure is GFLOPS:
        return Proposal(axis, rung, value)
    return Proposal(axis, rung, estimate_gflops(rung, num_classes), cost=value)


@dataclass
class _Crossing:
    """Where a noisy measure's ladder passes a goal, decided on full measurements only."""

    settings: list[Factors]      # rungs climbed, smallest first
    first_above: int | None      # index of the first rung whose full value exceeds the goal; None: none did
    end: str | None              # why the climb stopped short of a crossing (a bound), when first_above is None
    full: dict[Factors, float]   # full measurements taken

    def around(self) -> list[Factors | str]:
        """The rungs the choice rests on: the last one at most the goal and the first one above it
        (or the last one and the bound); the exact rule applied to these decides as on the whole ladder."""
        if self.first_above is None:
            return [*self.settings[-1:], *([self.end] if self.end else [])]
        return [*self.settings[max(0, self.first_above - 1):self.first_above + 1]]


def _noisy_crossing(rungs: Iterable[Factors | str], goal: float, measure: Measure, num_classes: int) -> _Crossing:
    """Climb on quick values until one is past the noise band above ``goal``, then find the first rung
    whose full value exceeds the goal by bisection, measuring in full only the rungs bisection visits.

    The search window runs from the last rung clearly under the band to the first clearly over it.
    If quick noise exceeded the band (the window's first rung is already over the goal, or its last
    is not), the window is widened to the ladder's start, or the climb continues on full values.
    """
    band = 1.0 + measure.noise
    ladder_iter = iter(rungs)
    settings: list[Factors] = []
    quick: dict[Factors, float] = {}
    full: dict[Factors, float] = {}
    end: str | None = None
    passed = False
    for count, rung in enumerate(ladder_iter):
        if isinstance(rung, str):
            end = rung
            break
        if count >= MAX_RUNGS:
            end = f"more than {MAX_RUNGS} settings below the goal"
            break
        settings.append(rung)
        quick[rung] = measure.quick(rung, num_classes)
        if quick[rung] > goal * band:
            passed = True
            break

    def above(index: int) -> bool:
        rung = settings[index]
        if rung not in full:
            full[rung] = measure.value(rung, num_classes)
        return full[rung] > goal

    def bisect(lo: int, hi: int) -> int:
        """The first index in [lo, hi) whose rung is above the goal, or hi (values rise along a ladder)."""
        while lo < hi:
            mid = (lo + hi) // 2
            if above(mid):
                hi = mid
            else:
                lo = mid + 1
        return lo

    def crossing_at(index: int) -> _Crossing:
        while index > 0 and above(index - 1):  # full values out of order: step down to a rung under the goal
            index -= 1
        return _Crossing(settings, index, None, full)

    if not settings:
        return _Crossing(settings, None, end, full)
    last = len(settings) - 1
    start = max((i for i in range(last + 1) if quick[settings[i]] < goal / band), default=0)
    found = bisect(start, last + 1)
    if found == start and start > 0:
        found = bisect(0, start)  # quick noise beyond the band below the goal
    if found <= last:
        return crossing_at(found)
    if passed:  # the last rung's quick value was over the band but its full one is not: keep climbing in full
        for rung in ladder_iter:
            if isinstance(rung, str):
                return _Crossing(settings, None, rung, full)
            settings.append(rung)
            if above(len(settings) - 1):
                return crossing_at(len(settings) - 1)
            if len(settings) > MAX_RUNGS:
                break
        return _Crossing(settings, None, f"more than {MAX_RUNGS} settings below the goal", full)
    if above(last):  # the bound's last rung: its full value decides whether it is kept
        return crossing_at(last)
    return _Crossing(settings, None, end, full)


def propose(axis: Axis, current: Factors, space: SearchSpace, num_classes: int, measure: Measure = GFLOPS,
            ) -> Proposal | Skip:
    """The rung closest to ``expansion_rate`` x the current model's complexity (ties to the cheaper one).

    With the space's ``proposal: at-most`` rule the rung must not exceed the goal.

    A bound that stops the climb early still yields its last rung, but only if
    that rung reaches at least sqrt(c) x (half the step in log terms); a smaller
    candidate would not cost about the same as the others.

    An exact measure (GFLOPs) is evaluated rung by rung while climbing. A noisy one
    (latency) climbs on quick values, then bisects the rungs near the goal on full
    measurements (:func:`_noisy_crossing`) and applies the same rule to the two rungs
    around the crossing; a chosen rung's value is always a full measurement.
    """
    base = measure.value(current, num_classes)
    goal = space.expansion_rate * base
    rungs: Iterable[Factors | str] = ladder(axis, current, space)
    value: Callable[[Factors], float] = lambda f: measure.value(f, num_classes)  # noqa: E731
    if measure.noise > 0:
        crossing = _noisy_crossing(rungs, goal, measure, num_classes)
        rungs, value = crossing.around(), crossing.full.__getitem__
    return _choose(axis.name, rungs, value, base, goal, space, measure, num_classes)


def _choose(axis: str, rungs: Iterable[Factors | str], value: Callable[[Factors], float], base: float,
            goal: float, space: SearchSpace, measure: Measure, num_classes: int) -> Proposal | Skip:
    below: Proposal | None = None
    reason = "no setting above the current one"
    for rungs_seen, rung in enumerate(rungs):
        if isinstance(rung, str):
            reason = rung
            break
        if rungs_seen >= MAX_RUNGS:
            reason = f"more than {MAX_RUNGS} settings below x{space.expansion_rate:g}"
            break
        proposal = _proposal(axis, rung, value(rung), measure, num_classes)
        if proposal.value >= goal:
            if proposal.value == goal:
                return proposal
            if below is not None and (space.proposal == "at-most"
                                      or goal - below.value <= proposal.value - goal):
                return below
            if space.proposal == "nearest":
                return proposal
            reason = f"the smallest setting is already x{proposal.value / base:.2f}"
            below = None
            break
        below = proposal
    if below is not None and below.value >= math.sqrt(space.expansion_rate) * base:
        return below
    best = f" (largest reachable x{below.value / base:.2f})" if below is not None else ""
    return Skip(axis, f"{reason}{best}")


def propose_step(current: Factors, space: SearchSpace, num_classes: int, measure: Measure = GFLOPS,
                 ) -> tuple[list[Proposal], list[Skip]]:
    proposals: list[Proposal] = []
    skips: list[Skip] = []
    for axis in space.axes:
        result = propose(axis, current, space, num_classes, measure)
        if isinstance(result, Proposal):
            proposals.append(result)
        else:
            skips.append(result)
    return proposals, skips


def contract(axis: Axis, start: Factors, space: SearchSpace, num_classes: int, target: float | None = None,
             measure: Measure = GFLOPS, *, expanded: Factors | None = None, target_gflops: float | None = None,
             ) -> Proposal | Skip:
    """The largest rung along ``axis`` above ``start`` whose complexity is at most ``target``.

    An axis with ``contract: keep-span`` (the paper's X-Temporal) shrinks its own expansion
    of ``start`` instead: fewer frames spread over the expanded clip, 16x5 -> 13x6. Pass the
    step's overshooting model as ``expanded`` when contracting along the step's own axis;
    otherwise (``--contract-axes all``) the axis's proposal from ``start`` is the expansion.
    ``target`` is in the measure's unit (GFLOPs by default). A noisy measure climbs on quick
    values and measures the rungs near the target again in full, as :func:`propose` does.
    (``target_gflops=`` is the older name of ``target``.)
    """
    if target is None:
        if target_gflops is None:
            raise TypeError("contract() needs a target")
        target = target_gflops
    if axis.contract == "keep-span":
        if expanded is None:
            grown = propose(axis, start, space, num_classes, measure)
            if isinstance(grown, Skip):
                return Skip(axis.name, f"{axis.name} expands nothing from {start.short()}: {grown.reason}")
            expanded = grown.factors
        rungs: Iterable[Factors | str] = _frames_ladder(axis, start, space, upto=expanded)
    else:
        rungs = ladder(axis, start, space)
    value: Callable[[Factors], float] = lambda f: measure.value(f, num_classes)  # noqa: E731
    if measure.noise > 0:
        crossing = _noisy_crossing(rungs, target, measure, num_classes)
        rungs, value = crossing.around(), crossing.full.__getitem__
    best: Proposal | None = None
    reason = f"the smallest setting along {axis.name} already exceeds the target"
    for rungs_seen, rung in enumerate(rungs):
        if isinstance(rung, str):
            reason = rung
            break
        v = value(rung)
        if v > target or rungs_seen >= MAX_RUNGS:
            break
        best = _proposal(axis.name, rung, v, measure, num_classes)
    return best if best is not None else Skip(axis.name, reason)
