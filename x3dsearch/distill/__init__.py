"""Cross-resolution knowledge distillation (ResKD, Ma et al. NeurIPS 2022).

Names are imported on first use, so a budget can hold a :class:`DistillConfig` without importing torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "DistillConfig": "config", "KINDS": "config", "DEFAULT_WEIGHTS": "config",
    "dense_logits": "losses", "feature_mse": "losses", "kl_to_teacher": "losses", "resize_frames": "losses",
    "ResKDObjective": "objective", "Teacher": "objective", "build_objective": "objective",
    "load_teacher": "objective",
}

__all__ = sorted(_WHERE)  # noqa: PLE0605 - the lazy map names each export once


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
