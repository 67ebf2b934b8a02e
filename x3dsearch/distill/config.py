"""How to distil: the ``distill:`` mapping of a budget, or the options of ``x3dsearch distill``.

Torch-free, so budgets load without it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError

KINDS = ("auto", "feature-mse", "dense-kl", "clip-kl")
#: The paper's weights (x3d.md section 4). They suit its scale, not every one: at CPU-proxy scale
#: feature-mse x 100 is about 20 x the cross-entropy at the first step, so the ResKD experiment
#: picks its own weights from a grid (docs/guides/distillation.md).
DEFAULT_WEIGHTS = {"feature-mse": 100.0, "dense-kl": 200.0, "clip-kl": 1.0}


@dataclass(frozen=True)
class DistillConfig:
    """``kind``: ``feature-mse`` (same final-stage channels; pixel-level MSE),
    ``dense-kl`` (different channels; classifier at every position, KL),
    ``clip-kl`` (plain logit distillation, the paper's weaker baseline) or
    ``auto`` (``feature-mse`` when channels match, else ``dense-kl``).

    ``teacher`` is stored as an absolute path, resolved against the working directory
    of whoever wrote it, so a training folder or a search trial (which runs elsewhere)
    finds the same file.
    """

    teacher: str
    kind: str = "auto"
    weight: float | None = None
    temperature: float = 2.0
    teacher_crop: int | None = None
    teacher_bn: str = "train"

    def __post_init__(self) -> None:
        if not self.teacher or not isinstance(self.teacher, str):
            raise ConfigError("distill: 'teacher' must name a checkpoint written by `x3dsearch train`")
        object.__setattr__(self, "teacher", str(Path(self.teacher).expanduser().resolve()))
        if self.kind not in KINDS:
            raise ConfigError(f"distill: 'kind' must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.weight is not None and (isinstance(self.weight, bool) or not isinstance(self.weight, (int, float))
                                        or self.weight < 0):
            raise ConfigError(f"distill: 'weight' must be a non-negative number, got {self.weight!r}")
        if not isinstance(self.temperature, (int, float)) or self.temperature <= 0:
            raise ConfigError(f"distill: 'temperature' must be positive, got {self.temperature!r}")
        if self.teacher_bn not in ("train", "eval"):
            raise ConfigError(f"distill: 'teacher_bn' must be 'train' or 'eval', got {self.teacher_bn!r}")
        if self.teacher_crop is not None and (not isinstance(self.teacher_crop, int) or self.teacher_crop < 32):
            raise ConfigError(f"distill: 'teacher_crop' must be an integer >= 32, got {self.teacher_crop!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DistillConfig":
        if not isinstance(data, Mapping):
            raise ConfigError("distill must be a mapping")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"distill: unknown key '{unknown[0]}'")
        if "teacher" not in data:
            raise ConfigError("distill: 'teacher' must name a checkpoint written by `x3dsearch train`")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
