"""``final_model.yaml``: the architecture a search settles on, loadable by ``x3dsearch train --model``."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .factors import Factors
from .utils.io import atomic_write_yaml, read_yaml


@dataclass(frozen=True)
class ModelFile:
    factors: Factors
    num_classes: int
    extra: dict[str, Any]


def save_model_file(path: Path, factors: Factors, num_classes: int, **extra: Any) -> None:
    atomic_write_yaml(path, {"factors": factors.to_dict(), "num_classes": int(num_classes), **extra})


def load_model_file(path: Path) -> ModelFile:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"model file not found: {path}")
    data = read_yaml(path)
    if not isinstance(data, dict) or "factors" not in data:
        raise ConfigError(f"{path}: missing key 'factors'")
    factors = Factors.from_dict(data["factors"])
    num_classes = data.get("num_classes", 400)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"{path}: 'num_classes' must be a positive integer")
    extra = {k: v for k, v in data.items() if k not in ("factors", "num_classes")}
    return ModelFile(factors, num_classes, extra)
