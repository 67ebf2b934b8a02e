"""Training and validation of any X3D architecture: one code path for search proxies and full runs.

``train_and_evaluate(factors, data, budget, seed, out_dir)`` returns a
:class:`TrainResult`; see :mod:`x3dsearch.train.trainer` for the guarantees
(determinism, common random numbers across candidates, exact resumption).
``evaluate_split(folder, data, "test")`` scores a finished training on a held-out
split; :class:`TrainingFolder` names and reads a training's files.
"""
from .folder import TrainingFolder
from .heldout import evaluate_split
from .objective import CrossEntropy, Objective
from .result import TrainResult
from .trainer import train_and_evaluate

__all__ = ["CrossEntropy", "Objective", "TrainResult", "TrainingFolder", "evaluate_split", "train_and_evaluate"]
