"""Validation (centre clip or K temporal x S spatial views, softmax averaged per video) and precise-BN.

A video whose file could not be read (any of its views flagged ``excluded`` by
the dataset) is left out of every number and listed in the outcomes' ``excluded``.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Sequence

import torch
from torch import nn

from ..data.health import DataError
from ..outcomes import SplitOutcomes, VideoOutcome

if TYPE_CHECKING:
    from ..data.health import DataHealth


@dataclass
class Evaluation:
    top1: float          # percent of scored videos; equals outcomes.top1
    top5: float          # percent (top-k with k = min(5, classes))
    videos: int          # scored
    views: int           # clips scored
    outcomes: SplitOutcomes
    bad: list[str] = field(default_factory=list)

    @property
    def excluded(self) -> int:
        return len(self.outcomes.excluded)


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
             amp: bool = False, channels_last: bool = False, keys: Sequence[str] | None = None,
             split: str = "val", health: "DataHealth | None" = None) -> Evaluation:
    """Top-1/top-5 over the readable videos; each video's score is the mean softmax of its views.

    ``keys[i]`` names video ``i`` in the outcomes (default: its index). ``health``, when
    given, counts every batch's reads under ``split`` and stops past its limit once the split is read.
    """
    model.eval()
    scores: dict[int, torch.Tensor] = {}
    counts: dict[int, int] = {}
    labels: dict[int, int] = {}
    unreadable: set[int] = set()
    bad: list[str] = []
    for batch in batches:
        excluded = batch.get("excluded")
        flags = excluded.tolist() if excluded is not None else [False] * len(batch["label"])
        if health is not None:
            health.update(batch.get("bad", []), len(flags) - sum(flags), split, check=False)
        bad.extend(batch.get("bad", []))
        with autocast(device, amp):
            logits = model(to_device(batch["clip"], device, channels_last))
        probs = logits.float().softmax(dim=1).cpu()
        for prob, video, label, flag in zip(probs, batch["video"].tolist(), batch["label"].tolist(), flags):
            labels[video] = label
            if flag:
                unreadable.add(video)
                continue
            scores[video] = scores[video] + prob if video in scores else prob.clone()
            counts[video] = counts.get(video, 0) + 1
    if not labels:
        raise ValueError(f"the {split} set yielded no clips")
    if health is not None:
        health.check()
    name = (lambda v: keys[v]) if keys is not None else str
    order = sorted(v for v in scores if v not in unreadable)
    outcomes = SplitOutcomes(split, excluded=[name(v) for v in sorted(unreadable)])
    if not order:
        raise DataError(f"no {split} video could be read ({len(unreadable)} unreadable)")
    mean = torch.stack([scores[v] / counts[v] for v in order])
    target = torch.tensor([labels[v] for v in order])
    k = min(5, num_classes)
    topk = mean.topk(k, dim=1).indices
    p_true = mean.gather(1, target[:, None])[:, 0].tolist()
    for v, p, right in zip(order, p_true, (topk[:, 0] == target).tolist()):
        outcomes.videos[name(v)] = VideoOutcome(labels[v], float(p), bool(right))
    top5 = (topk == target[:, None]).any(dim=1).float().mean().item() * 100.0
    top1 = outcomes.top1
    assert top1 is not None  # at least one video was scored (checked above)
    return Evaluation(top1=top1, top5=top5, videos=len(order), views=sum(counts[v] for v in order),
                      bad=bad, outcomes=outcomes)


@torch.no_grad()
def precise_bn(model: nn.Module, batches: Iterable[dict], num_batches: int, device: torch.device, *,
               amp: bool = False, channels_last: bool = False,
               health: "DataHealth | None" = None) -> tuple[int, list[str]]:
    """Replace every BN's running statistics by their true average over ``num_batches`` training batches.

    Short proxy trainings leave the exponential running averages far from the final
    weights' statistics; this makes validation judge the weights, not the averaging lag.
    Returns the batches used and the bad files met; ``health`` counts their reads as ``precise_bn``.
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
            if health is not None:
                health.update(batch.get("bad", []), len(batch["label"]), "precise_bn")
            with autocast(device, amp):
                model(to_device(batch["clip"], device, channels_last))
            bad.extend(batch.get("bad", []))
            used += 1
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.eval()
    return used, bad
