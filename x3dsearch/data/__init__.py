"""The video data pipeline: dataset layouts, decord clip sampling by the X3D factors, loaders,
bad-file accounting and the embedded synthetic dataset (the default everywhere).

Names are imported on first use, so ``x3dsearch data synth`` and ``data check`` start without torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "VideoClipDataset": "dataset", "collate_clips": "dataset",
    "DataError": "health", "DataHealth": "health",
    "VideoRecord": "layout", "allows_flip": "layout", "class_names": "layout", "has_split": "layout",
    "load_split": "layout", "present_splits": "layout", "resolve_data": "layout",
    "EpochSampler": "loader", "make_loader": "loader",
    "ensure_synthetic": "synthetic", "synthesize": "synthetic",
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
