"""Training and validation of any X3D architecture: one code path for search proxies and full runs.

``train_and_evaluate(factors, data, budget, seed, out_dir)`` returns a
:class:`TrainResult`; see :mod:`x3dsearch.train.trainer` for the guarantees
(determinism, common random numbers across candidates, exact resumption).
``evaluate_split(folder, data, "test")`` scores a finished training on a held-out
split; :class:`TrainingFolder` names and reads a training's files.

Names are imported on first use: reading a run log (``x3dsearch show``) needs
:class:`TrainResult` but not torch, which costs about 2 s to import.
"""
from __future__ import annotations

import importlib
from typing import Any

_WHERE = {"CrossEntropy": "objective", "Objective": "objective", "TrainResult": "result",
          "TrainingFolder": "folder", "evaluate_split": "heldout", "train_and_evaluate": "trainer"}

__all__ = sorted(_WHERE)  # noqa: PLE0605 - the lazy map names each export once


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
