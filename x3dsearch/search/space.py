"""The search space as data: seed, axes (operators), expansion rate, bounds, selection, budget.

Spaces are YAML files so a user can drop an axis, change c or add bounds without
touching code; every malformed key is rejected with one line naming it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..criteria import CRITERIA, TIE_RULES
from ..errors import ConfigError
from ..factors import Factors
from ..runlog.trial import PROXY_INITS
from ..utils.io import read_yaml

SPACE_DIR = Path(__file__).resolve().parents[1] / "spaces"
DEFAULT_SPACE = SPACE_DIR / "x3d.yaml"

#: Factors an axis may grow (the stride changes only as a side effect of X-Fast).
AXIS_FACTORS = ("frames", "crop", "depth", "width", "bottleneck")
INTEGER_FACTORS = ("frames", "crop")
CONTRACTIONS = ("own", "all")
PROPOSAL_RULES = ("at-most", "nearest")
TOP_KEYS = ("name", "seed", "expansion_rate", "proposal", "axes", "bounds", "tolerance", "selection", "on_tie",
            "repeats", "max_repeats", "contraction", "budget", "proxy_init")
AXIS_KEYS = ("factor", "keep", "span_growth", "contract", "step", "max")
#: How a step along an axis is shrunk when it overshoots the target (see :class:`Axis`).
CONTRACT_RULES = ("ladder", "keep-span")
BOUND_KEYS = ("min_stride", "max_span")


@dataclass(frozen=True)
class Axis:
    """One expansion operator: grow ``factor`` on a grid of ``step`` up to ``max``.

    Frames axes also say what happens to the clip (frames x stride source frames):
    ``keep="span"`` holds it fixed while frames grow, so the stride shrinks (X-Fast);
    otherwise it grows by ``span_growth`` for every doubling of frames (X-Temporal:
    the paper's longer clip at a higher frame rate is 1.6; 2.0 keeps the stride).
    ``contract`` is how an overshooting step along the axis is shrunk: ``ladder``
    takes the axis's own largest setting under the target; ``keep-span`` spreads
    fewer frames over the expanded clip (the paper's 16x5 -> 13x6, X3D-S).
    """

    name: str
    factor: str
    step: float
    max: float
    keep: str | None = None
    span_growth: float = 2.0
    contract: str = "ladder"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"factor": self.factor}
        if self.keep:
            out["keep"] = self.keep
        if self.factor == "frames" and not self.keep and self.span_growth != 2.0:
            out["span_growth"] = self.span_growth
        if self.contract != "ladder":
            out["contract"] = self.contract
        out.update(step=self.step, max=self.max)
        return out


@dataclass(frozen=True)
class SearchSpace:
    name: str
    seed: Factors
    expansion_rate: float
    axes: tuple[Axis, ...]
    proposal: str = "at-most"
    min_stride: int = 1
    max_span: int | None = None
    tolerance: float = 0.29
    selection: str = "top1"
    on_tie: str = "best"
    repeats: int = 1
    max_repeats: int = 3
    contraction: str = "own"
    budget: str = "auto"
    proxy_init: str = "scratch"

    def axis(self, name: str) -> Axis:
        for axis in self.axes:
            if axis.name == name:
                return axis
        raise ConfigError(f"space '{self.name}' has no axis '{name}'")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seed": self.seed.to_dict(),
            "expansion_rate": self.expansion_rate,
            "proposal": self.proposal,
            "axes": {a.name: a.to_dict() for a in self.axes},
            "bounds": {"min_stride": self.min_stride, "max_span": self.max_span},
            "tolerance": self.tolerance,
            "selection": self.selection,
            "on_tie": self.on_tie,
            "repeats": self.repeats,
            "max_repeats": self.max_repeats,
            "contraction": self.contraction,
            "budget": self.budget,
            "proxy_init": self.proxy_init,
        }

    @classmethod
    def from_dict(cls, data: Any, label: str = "space") -> "SearchSpace":
        def bad(key: str, why: str) -> ConfigError:
            return ConfigError(f"{label}: '{key}' {why}")

        if not isinstance(data, Mapping):
            raise ConfigError(f"{label}: must be a mapping of {', '.join(TOP_KEYS)}")
        unknown = sorted(set(data) - set(TOP_KEYS))
        if unknown:
            raise bad(unknown[0], f"is not a space key (expected {', '.join(TOP_KEYS)})")
        for key in ("seed", "axes"):
            if key not in data:
                raise bad(key, "is missing")
        try:
            seed = Factors.from_dict(data["seed"])
        except ConfigError as exc:
            raise ConfigError(f"{label}: 'seed': {exc}") from None

        rate = data.get("expansion_rate", 2.0)
        if not _is_number(rate) or not rate > 1:
            raise bad("expansion_rate", f"must be a number above 1, got {rate!r}")

        proposal = data.get("proposal", "at-most")
        if proposal not in PROPOSAL_RULES:
            raise bad("proposal", f"must be one of {', '.join(PROPOSAL_RULES)}, got {proposal!r}")

        raw_axes = data["axes"]
        if not isinstance(raw_axes, Mapping) or not raw_axes:
            raise bad("axes", "must be a non-empty mapping of axis name to {factor, step, max}")
        axes = tuple(_parse_axis(str(name), spec, label) for name, spec in raw_axes.items())

        bounds = data.get("bounds") or {}
        if not isinstance(bounds, Mapping):
            raise bad("bounds", "must be a mapping")
        unknown = sorted(set(bounds) - set(BOUND_KEYS))
        if unknown:
            raise bad(f"bounds.{unknown[0]}", f"is not a bound (expected {', '.join(BOUND_KEYS)})")
        min_stride = bounds.get("min_stride", 1)
        if not _is_int(min_stride) or min_stride < 1:
            raise bad("bounds.min_stride", f"must be a positive integer, got {min_stride!r}")
        max_span = bounds.get("max_span")
        if max_span is not None and (not _is_int(max_span) or max_span < seed.span):
            raise bad("bounds.max_span", f"must be null or an integer >= the seed's span {seed.span}, "
                                         f"got {max_span!r}")

        tolerance = data.get("tolerance", 0.29)
        if not _is_number(tolerance) or not 0 <= tolerance < 1:
            raise bad("tolerance", f"must be a number in [0, 1), got {tolerance!r}")
        selection = data.get("selection", "top1")
        if selection not in CRITERIA:
            raise bad("selection", f"must be one of {', '.join(CRITERIA)}, got {selection!r}")
        on_tie = data.get("on_tie", "best")
        if on_tie not in TIE_RULES:
            raise bad("on_tie", f"must be one of {', '.join(TIE_RULES)}, got {on_tie!r}")
        repeats = data.get("repeats", 1)
        if not _is_int(repeats) or repeats < 1:
            raise bad("repeats", f"must be a positive integer, got {repeats!r}")
        max_repeats = data.get("max_repeats", 3)
        if not _is_int(max_repeats) or max_repeats < 1:
            raise bad("max_repeats", f"must be a positive integer, got {max_repeats!r}")
        contraction = data.get("contraction", "own")
        if contraction not in CONTRACTIONS:
            raise bad("contraction", f"must be one of {', '.join(CONTRACTIONS)}, got {contraction!r}")
        budget = data.get("budget", "auto")
        if not isinstance(budget, str) or not budget:
            raise bad("budget", f"must be a budget name or file, got {budget!r}")
        proxy_init = data.get("proxy_init", "scratch")
        if proxy_init not in PROXY_INITS:
            raise bad("proxy_init", f"must be one of {', '.join(PROXY_INITS)}, got {proxy_init!r}")
        name = data.get("name", "custom")
        if not isinstance(name, str) or not name:
            raise bad("name", "must be a non-empty string")
        return cls(name=name, seed=seed, expansion_rate=float(rate), axes=axes, proposal=proposal,
                   min_stride=int(min_stride), max_span=None if max_span is None else int(max_span),
                   tolerance=float(tolerance), selection=selection, on_tie=on_tie, repeats=repeats,
                   max_repeats=max_repeats, contraction=contraction, budget=budget, proxy_init=proxy_init)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_axis(name: str, spec: Any, label: str) -> Axis:
    where = f"axes.{name}"
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{label}: '{where}' must be a mapping with keys {', '.join(AXIS_KEYS)}")
    unknown = sorted(set(spec) - set(AXIS_KEYS))
    if unknown:
        raise ConfigError(f"{label}: '{where}.{unknown[0]}' is not an axis key (expected {', '.join(AXIS_KEYS)})")
    factor = spec.get("factor")
    if factor not in AXIS_FACTORS:
        raise ConfigError(f"{label}: '{where}.factor' must be one of {', '.join(AXIS_FACTORS)}, got {factor!r}")
    keep = spec.get("keep")
    if keep not in (None, "span"):
        raise ConfigError(f"{label}: '{where}.keep' must be 'span' or absent, got {keep!r}")
    if keep == "span" and factor != "frames":
        raise ConfigError(f"{label}: '{where}.keep' 'span' only applies to factor 'frames'")
    growth = spec.get("span_growth", 2.0)
    if "span_growth" in spec:
        if factor != "frames" or keep == "span":
            raise ConfigError(f"{label}: '{where}.span_growth' only applies to factor 'frames' without 'keep: span'")
        if not _is_number(growth) or not 1 <= growth <= 2:
            raise ConfigError(f"{label}: '{where}.span_growth' must be a number in [1, 2] (clip growth per "
                              f"doubling of frames), got {growth!r}")
    rule = spec.get("contract", "ladder")
    if rule not in CONTRACT_RULES:
        raise ConfigError(f"{label}: '{where}.contract' must be one of {', '.join(CONTRACT_RULES)}, got {rule!r}")
    if rule == "keep-span" and factor != "frames":
        raise ConfigError(f"{label}: '{where}.contract' 'keep-span' only applies to factor 'frames'")
    step = spec.get("step", 1)
    if factor in INTEGER_FACTORS:
        if not _is_int(step) or step < 1:
            raise ConfigError(f"{label}: '{where}.step' must be a positive integer for {factor}, got {step!r}")
    elif not _is_number(step) or step <= 0:
        raise ConfigError(f"{label}: '{where}.step' must be a positive number, got {step!r}")
    if "max" not in spec:
        raise ConfigError(f"{label}: '{where}.max' is missing")
    upper = spec["max"]
    if not _is_number(upper) or upper <= 0:
        raise ConfigError(f"{label}: '{where}.max' must be a positive number, got {upper!r}")
    return Axis(name=name, factor=factor, step=step if factor in INTEGER_FACTORS else float(step),
                max=int(upper) if factor in INTEGER_FACTORS else float(upper), keep=keep,
                span_growth=float(growth), contract=rule)


def load_space(spec: str | Path | None = None) -> SearchSpace:
    """A shipped space name (``x3d``) or a YAML file; ``None`` is the default X3D space."""
    if spec is None:
        path = DEFAULT_SPACE
    else:
        path = Path(spec)
        if not path.is_file() and (SPACE_DIR / f"{spec}.yaml").is_file():
            path = SPACE_DIR / f"{spec}.yaml"
        if not path.is_file():
            raise ConfigError(f"search space not found: {spec}")
    data = read_yaml(path, f"space {path}")
    if isinstance(data, Mapping) and "name" not in data:
        data = {"name": path.stem, **data}
    return SearchSpace.from_dict(data, label=f"space {path.name}")
