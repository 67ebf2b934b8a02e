"""Training objectives: ``loss, logits = objective(model, clips, labels)``.

Every training step goes through one objective, so distillation (ResKD) plugs in
by supplying another one instead of a second training loop.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol

import torch
from torch import nn
from torch.nn import functional as F

from ..factors import Factors


class Objective(Protocol):
    def __call__(self, model: nn.Module, clips: torch.Tensor,
                 labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


class CrossEntropy:
    """Plain supervised objective, with optional label smoothing."""

    def __init__(self, label_smoothing: float = 0.0):
        self.label_smoothing = label_smoothing

    def __call__(self, model: nn.Module, clips: torch.Tensor,
                 labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(clips)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)
        return loss, logits


def build_training_objective(distill: dict[str, Any] | None, *, label_smoothing: float, model: nn.Module,
                             factors: Factors, num_classes: int, device: torch.device) -> Callable:
    """Cross-entropy, or the distillation objective that ``budget.distill`` describes."""
    if not distill:
        return CrossEntropy(label_smoothing)
    from ..distill import build_objective  # provided by the distillation module

    return build_objective(distill, model=model, factors=factors, num_classes=num_classes, device=device,
                           label_smoothing=label_smoothing)
