"""Validation (centre clip or K temporal x S spatial views, softmax averaged per video) and precise-BN."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterable

import torch
from torch import nn


@dataclass
class Evaluation:
    top1: float          # percent
    top5: float          # percent (top-k with k = min(5, classes))
    videos: int
    views: int
    bad: list[str] = field(default_factory=list)


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; a no-op elsewhere (CPU autocast is slower than fp32 for 3D convs)."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(clips: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    clips = clips.to(device, non_blocking=True)
    if channels_last:
        clips = clips.contiguous(memory_format=torch.channels_last_3d)
    return clips


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[dict], num_classes: int, device: torch.device, *,
             amp: bool = False, channels_last: bool = False) -> Evaluation:
    """Top-1/top-5 over videos; each video's score is the mean softmax of its views."""
    model.eval()
    scores: dict[int, torch.Tensor] = {}
    labels: dict[int, int] = {}
    views = 0
    bad: list[str] = []
    for batch in batches:
        with autocast(device, amp):
            logits = model(to_device(batch["clip"], device, channels_last))
        probs = logits.float().softmax(dim=1).cpu()
        for prob, video, label in zip(probs, batch["video"].tolist(), batch["label"].tolist()):
            scores[video] = scores[video] + prob if video in scores else prob.clone()
            labels[video] = label
        views += len(probs)
        bad.extend(batch.get("bad", []))
    if not scores:
        raise ValueError("the validation set yielded no clips")
    order = sorted(scores)
    stacked = torch.stack([scores[v] for v in order])
    target = torch.tensor([labels[v] for v in order])
    k = min(5, num_classes)
    topk = stacked.topk(k, dim=1).indices
    top1 = (topk[:, 0] == target).float().mean().item() * 100.0
    top5 = (topk == target[:, None]).any(dim=1).float().mean().item() * 100.0
    return Evaluation(top1=top1, top5=top5, videos=len(order), views=views, bad=bad)


@torch.no_grad()
def precise_bn(model: nn.Module, batches: Iterable[dict], num_batches: int, device: torch.device, *,
               amp: bool = False, channels_last: bool = False) -> tuple[int, list[str]]:
    """Replace every BN's running statistics by their true average over ``num_batches`` training batches.

    Short proxy trainings leave the exponential running averages far from the final
    weights' statistics; this makes validation judge the weights, not the averaging lag.
    Returns the batches used and the bad files met.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or num_batches < 1:
        return 0, []
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches seen
    model.train()
    used = 0
    bad: list[str] = []
    try:
        for batch in batches:
            if used >= num_batches:
                break
            with autocast(device, amp):
                model(to_device(batch["clip"], device, channels_last))
            bad.extend(batch.get("bad", []))
            used += 1
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.eval()
    return used, bad
