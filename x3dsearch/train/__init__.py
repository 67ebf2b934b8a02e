"""Training and validation of any X3D architecture: one code path for search proxies and full runs.

``train_and_evaluate(factors, data, budget, seed, out_dir)`` returns a
:class:`TrainResult`; see :mod:`x3dsearch.train.trainer` for the guarantees
(determinism, common random numbers across candidates, exact resumption).
"""
from .objective import CrossEntropy, Objective
from .result import TrainResult
from .trainer import train_and_evaluate

__all__ = ["CrossEntropy", "Objective", "TrainResult", "train_and_evaluate"]
