"""The reference recipe's optimiser and schedule (SGD + Nesterov, per-iteration cosine with linear warm-up),
and the optional moving average of the weights a budget's ``ema_decay`` asks for."""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..budget import Budget


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on conv and linear weights only; none on BN parameters or biases (all 1-D tensors)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for param in model.parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim <= 1 else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(model: nn.Module, budget: Budget) -> torch.optim.SGD:
    return torch.optim.SGD(parameter_groups(model, budget.weight_decay), lr=budget.scaled_lr,
                           momentum=budget.momentum, nesterov=budget.nesterov and budget.momentum > 0)


def build_weight_average(model: nn.Module, budget: Budget) -> AveragedModel | None:
    """torch's ``AveragedModel`` as an exponential moving average of ``model`` at ``budget.ema_decay``, or
    None. It averages the buffers too, so its BN statistics follow its weights (precise-BN, when the budget
    asks for it, then recomputes them for the averaged weights)."""
    if budget.ema_decay is None:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(budget.ema_decay), use_buffers=True)


class WarmupCosine:
    """Learning rate per iteration: cosine from the base rate to 0 over ``total`` steps, with
    a linear ramp from ``start_factor`` x base over the first ``warmup`` steps that meets the
    cosine curve where the ramp ends (the reference recipe's shape).

    It keeps only its step, so checkpoints restore it exactly.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, base_lr: float, total: int, warmup: int = 0,
                 start_factor: float = 0.1):
        if total < 1:
            raise ValueError("the schedule needs at least one step")
        self.optimizer = optimizer
        self.base_lr = base_lr
        self.total = total
        self.warmup = max(0, min(warmup, total))
        self.start_factor = start_factor
        self.step_count = 0
        self._apply()

    def _cosine(self, step: int) -> float:
        return self.base_lr * 0.5 * (1.0 + math.cos(math.pi * min(step, self.total) / self.total))

    def lr_at(self, step: int) -> float:
        if step < self.warmup:
            start = self.base_lr * self.start_factor
            return start + (self._cosine(self.warmup) - start) * step / self.warmup
        return self._cosine(step)

    @property
    def lr(self) -> float:
        return self.lr_at(self.step_count)

    def _apply(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr

    def step(self) -> None:
        self.step_count += 1
        self._apply()

    def state_dict(self) -> dict[str, Any]:
        return {"step_count": self.step_count, "base_lr": self.base_lr, "total": self.total,
                "warmup": self.warmup, "start_factor": self.start_factor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The schedule where the checkpoint left it, at the peak rate it was made with (a resumed grown
        training gets no ``init`` weights to scale by: its rate comes from here)."""
        self.step_count = int(state["step_count"])
        self.base_lr = float(state.get("base_lr", self.base_lr))
        self._apply()
