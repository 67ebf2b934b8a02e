"""The six X3D expansion factors, in the paper's units, and the published presets.

A :class:`Factors` value fully determines an architecture and its input clip,
so it is the unit the search proposes, the trainer trains and the FLOP cache
keys on.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any, Mapping

from .errors import ConfigError

#: Source frame rate that ``stride`` is measured on (Kinetics is ~30 fps).
NOMINAL_FPS = 30.0


@dataclass(frozen=True)
class Factors:
    """X3D expansion factors (Feichtenhofer, CVPR 2020, Sec. 3).

    Attributes:
        frames: gamma_t, input frames; every activation has this temporal size.
        stride: gamma_tau, sampling interval in source frames at 30 fps.
        crop: spatial input size in pixels (gamma_s x 112).
        width: gamma_w; 1.0 gives a 24-channel stem.
        bottleneck: gamma_b; inner width of each block's channel-wise conv.
        depth: gamma_d; blocks per stage are ``ceil(base * depth)``.
    """

    frames: int = 1
    stride: int = 30
    crop: int = 112
    width: float = 1.0
    bottleneck: float = 1.0
    depth: float = 1.0

    def __post_init__(self) -> None:
        for name in ("frames", "stride", "crop"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
                raise ConfigError(f"factor '{name}' must be a positive integer, got {value!r}")
            if value < 1:
                raise ConfigError(f"factor '{name}' must be a positive integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.crop < 32:
            raise ConfigError(f"factor 'crop' must be at least 32 pixels, got {self.crop}")
        for name in ("width", "bottleneck", "depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"factor '{name}' must be a positive number, got {value!r}")
            if value <= 0:
                raise ConfigError(f"factor '{name}' must be a positive number, got {value!r}")
            object.__setattr__(self, name, float(value))

    # --- derived quantities -------------------------------------------------------------
    @property
    def span(self) -> int:
        """Source frames covered by one clip (frames x stride)."""
        return self.frames * self.stride

    @property
    def duration_s(self) -> float:
        return self.span / NOMINAL_FPS

    def replace(self, **changes: Any) -> "Factors":
        return dataclasses.replace(self, **changes)

    def key(self) -> str:
        """A stable string that identifies the architecture and input (cache key)."""
        return (f"t{self.frames}_s{self.stride}_c{self.crop}_w{self.width:g}"
                f"_b{self.bottleneck:g}_d{self.depth:g}")

    def short(self) -> str:
        """Compact human form, e.g. ``4x12@160 w1 b2.25 d2.2``."""
        return (f"{self.frames}x{self.stride}@{self.crop} w{self.width:g} "
                f"b{self.bottleneck:g} d{self.depth:g}")

    # --- (de)serialisation --------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Factors":
        if not isinstance(data, Mapping):
            raise ConfigError(f"factors must be a mapping, got {type(data).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown factor '{unknown[0]}' (expected {', '.join(sorted(names))})")
        missing = sorted(names - set(data))
        if missing:
            raise ConfigError(f"factor '{missing[0]}' is missing")
        return cls(**{k: data[k] for k in names})

    @classmethod
    def parse(cls, text: str) -> "Factors":
        """Parse ``frames=16,stride=5,crop=224,width=1,bottleneck=2.25,depth=2.2``."""
        values: dict[str, Any] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, sep, raw = item.partition("=")
            name = name.strip()
            if not sep or not name:
                raise ConfigError(f"factor '{item}' must be written as name=value")
            try:
                number = float(raw)
            except ValueError:
                raise ConfigError(f"factor '{name}' must be a number, got {raw.strip()!r}") from None
            values[name] = int(number) if name in ("frames", "stride", "crop") and number.is_integer() else number
        return cls.from_dict(values)


#: Published models (paper Table 2 and the SlowFast model zoo). X2D's stride only
#: fixes the seed clip's duration for temporal expansions: 30 (about 1 s) makes the
#: paper's chain X-Fast 2x15, X-Temporal 4x12 (X3D-XS), X-Fast 8x6, X-Temporal 16x5.
PRESETS: dict[str, Factors] = {
    "x2d": Factors(frames=1, stride=30, crop=112, width=1.0, bottleneck=1.0, depth=1.0),
    "x3d-xs": Factors(frames=4, stride=12, crop=160, width=1.0, bottleneck=2.25, depth=2.2),
    "x3d-s": Factors(frames=13, stride=6, crop=160, width=1.0, bottleneck=2.25, depth=2.2),
    "x3d-m": Factors(frames=16, stride=5, crop=224, width=1.0, bottleneck=2.25, depth=2.2),
    "x3d-l": Factors(frames=16, stride=5, crop=312, width=1.0, bottleneck=2.25, depth=5.0),
    "x3d-xl": Factors(frames=16, stride=5, crop=312, width=1.45, bottleneck=2.25, depth=5.0),
}

#: Test-time crops used for the paper's multi-view numbers.
TEST_CROPS: dict[str, int] = {"x3d-xs": 182, "x3d-s": 182, "x3d-m": 256, "x3d-l": 356, "x3d-xl": 356}


def preset(name: str) -> Factors:
    try:
        return PRESETS[name.lower()]
    except KeyError:
        raise ConfigError(f"unknown preset '{name}' (choose from {', '.join(PRESETS)})") from None
