"""Complexity measures the search can target: GFLOPs (exact, the default) or latency (measured).

Proposals, the stopping rule and contraction only ask a measure for a number per
model, so the same solver targets GFLOPs or milliseconds. An exact measure
(``noise == 0``) is climbed rung by rung exactly as before; a noisy one is climbed
with its cheap ``quick`` estimate and the rungs near the goal are measured again
with the full protocol before choosing (see :mod:`.proposals`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..errors import ConfigError
from ..factors import Factors
from ..latency import DEFAULT_NOISE, LatencyConfig, measure_latency, quick_latency_ms
from .estimate import estimate_gflops

MEASURES = ("gflops", "latency")


@runtime_checkable
class Measure(Protocol):
    """What the solver needs from a complexity criterion."""

    # Read-only (properties), so the frozen dataclasses below satisfy the protocol.
    @property
    def name(self) -> str: ...    # "gflops" | "latency"

    @property
    def unit(self) -> str: ...    # "GFLOPs" | "ms"

    @property
    def noise(self) -> float: ...  # relative band within which two values cannot be told apart; 0: exact and repeatable

    def value(self, factors: Factors, num_classes: int) -> float:
        """The number of record (full protocol, cached where it is measured)."""

    def quick(self, factors: Factors, num_classes: int) -> float:
        """A cheaper estimate used to climb a ladder; equal to ``value`` for exact measures."""


@dataclass(frozen=True)
class GFlopsMeasure:
    """The paper's criterion: the closed-form multiply-add count (equal to fvcore's)."""

    name: str = "gflops"
    unit: str = "GFLOPs"
    noise: float = 0.0

    def value(self, factors: Factors, num_classes: int) -> float:
        return estimate_gflops(factors, num_classes)

    def quick(self, factors: Factors, num_classes: int) -> float:
        return estimate_gflops(factors, num_classes)


GFLOPS = GFlopsMeasure()


@dataclass(frozen=True)
class LatencyMeasure:
    """Milliseconds per clip (median of N runs, see :mod:`x3dsearch.latency`).

    ``value`` uses the full protocol and the disk cache; ``quick`` a short protocol kept
    in memory only (it is too noisy to share). ``noise`` is the relative band around a
    goal inside which quick values are measured again in full before a choice is made.
    """

    config: LatencyConfig = field(default_factory=LatencyConfig)
    noise: float = DEFAULT_NOISE
    name: str = "latency"
    unit: str = "ms"

    def __post_init__(self) -> None:
        if not 0 < self.noise < 1:
            raise ConfigError(f"latency noise band must be in (0, 1), got {self.noise!r}")

    def value(self, factors: Factors, num_classes: int) -> float:
        return measure_latency(factors, num_classes, self.config).median_ms

    def quick(self, factors: Factors, num_classes: int) -> float:
        return quick_latency_ms(factors, num_classes, self.config)


def get_measure(name: str, **options: object) -> Measure:
    """``gflops`` or ``latency`` (options: ``config=LatencyConfig(...)``, ``noise=...``)."""
    if name == "gflops":
        if options:
            raise ConfigError(f"the gflops measure takes no options, got {', '.join(sorted(options))}")
        return GFLOPS
    if name == "latency":
        return LatencyMeasure(**options)  # type: ignore[arg-type]
    raise ConfigError(f"--complexity must be one of {', '.join(MEASURES)}, got {name!r}")
