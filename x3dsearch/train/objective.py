"""Training objectives: ``loss, logits, terms = objective(model, clips, labels, extra_clips)``.

Every training step goes through one objective, so distillation (ResKD) plugs in
by supplying another one instead of a second training loop. ``terms`` names the
parts that add up to the loss (``ce``; ``kd`` for distillation), for ``metrics.jsonl``.
"""
from __future__ import annotations

from typing import Protocol

import torch
from torch import nn
from torch.nn import functional as F

from ..distill.config import DistillConfig
from ..distill.objective import build_objective
from ..factors import Factors
from ..models import X3D

StepLoss = tuple[torch.Tensor, torch.Tensor, dict[str, float]]


class Objective(Protocol):
    #: The loader must also deliver every training clip at this crop (``extra_clips``), or None.
    extra_crop: int | None

    def __call__(self, model: nn.Module, clips: torch.Tensor, labels: torch.Tensor,
                 extra_clips: torch.Tensor | None = None) -> StepLoss: ...


class CrossEntropy:
    """Plain supervised objective, with optional label smoothing."""

    extra_crop: int | None = None

    def __init__(self, label_smoothing: float = 0.0):
        self.label_smoothing = label_smoothing

    def __call__(self, model: nn.Module, clips: torch.Tensor, labels: torch.Tensor,
                 extra_clips: torch.Tensor | None = None) -> StepLoss:
        logits = model(clips)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)
        return loss, logits, {"ce": loss.item()}


def build_training_objective(distill: DistillConfig | None, *, label_smoothing: float, model: X3D,
                             factors: Factors, num_classes: int, device: torch.device) -> Objective:
    """Cross-entropy, or the ResKD objective that ``distill`` describes."""
    if distill is None:
        return CrossEntropy(label_smoothing)
    return build_objective(distill, model=model, factors=factors, num_classes=num_classes, device=device,
                           label_smoothing=label_smoothing)
