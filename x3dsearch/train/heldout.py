"""Evaluating a finished training's ``model.pt`` on another split, typically the held-out ``test``.

The validation split selects models (a search's every choice is made on it),
so its top-1 for the chosen model is optimistic. A split nothing was chosen on
gives the unbiased number. The model is evaluated the way it was validated:
the same factors, the same temporal and spatial views, the same memory format
on CPU. The held-out split is always evaluated whole (the budget's
``eval_clips`` cut applies to validation only).
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from ..budget import Budget
from ..data import DataHealth, VideoClipDataset, make_loader, resolve_data
from ..data.layout import has_split
from ..errors import ConfigError, X3DSearchError
from ..factors import Factors
from ..models import build_model
from ..outcomes import SplitOutcomes
from ..utils.logging import get_logger
from .evaluate import evaluate
from .folder import TrainingFolder
from .runtime import cpu_threads, resolve_device, to_channels_last

log = get_logger("train")


def evaluate_split(folder: str | Path | TrainingFolder, data: str | Path, split: str = "test", *,
                   threads: int | None = None, device: str | None = None) -> SplitOutcomes:
    """Per-video outcomes of the folder's ``model.pt`` on ``split`` of ``data``, stored as
    ``<split>_outcomes.json`` in the folder; a stored one for the same videos is returned as it is.

    Unreadable videos are left out and listed in ``excluded``; past 5% failed reads it stops
    with :class:`~x3dsearch.data.DataError`. Raises :class:`X3DSearchError` (one line) for a
    folder without a finished model, a dataset without ``split`` or with another class count.
    """
    folder = folder if isinstance(folder, TrainingFolder) else TrainingFolder(folder)
    config = folder.read_config()
    if config is None:
        raise X3DSearchError(f"{folder.path} holds no training (no {folder.CONFIG})")
    result = folder.read_result()
    if result is None or not result.ok or not folder.model.is_file():
        raise X3DSearchError(f"{folder.path} has no trained model: the training did not finish with status ok")
    root = resolve_data(data)
    if not has_split(root, split):
        raise ConfigError(f"data root {root} has no {split} split")
    factors = Factors.from_dict(config["factors"])
    budget = Budget.from_dict(config["budget"])
    dataset = VideoClipDataset(root, split, factors, train=False, seed=int(config.get("seed", 0)),
                               temporal_views=budget.eval_temporal_views, spatial_views=budget.eval_spatial_views,
                               max_videos=budget.eval_clips if split == "val" else None, substitute=False)
    stored = folder.read_outcomes(split)
    if stored is not None:
        if set(stored.videos) | set(stored.excluded) == set(dataset.keys):
            return stored
        log.info("%s: the stored %s outcomes are for other videos; evaluating again", folder.path, split)
    if dataset.num_classes != config["num_classes"]:
        raise ConfigError(f"{root} has {dataset.num_classes} classes but the model in {folder.path} "
                          f"was trained on {config['num_classes']}")
    outcomes = _run(folder, dataset, budget, config, threads, device)
    folder.write_outcomes(outcomes)
    return outcomes


def _run(folder: TrainingFolder, dataset: VideoClipDataset, budget: Budget, config: dict, threads: int | None,
         device: str | None) -> SplitOutcomes:
    dev = resolve_device(device)
    weights = torch.load(folder.model, map_location="cpu", weights_only=True)
    model = build_model(dataset.factors, config["num_classes"], dropout=0.0,
                        shortcut_bn=bool(weights.get("shortcut_bn", config.get("shortcut_bn", True))))
    model.load_state_dict(weights["model_state"])
    # The trainer validates on CPU in channels_last_3d (when the budget allows it); on CUDA it times
    # both formats, which an evaluation need not repeat: the numbers agree to float rounding.
    channels_last = dev.type == "cpu" and budget.channels_last
    model = model.to(dev)
    if channels_last:
        model = to_channels_last(model)
    health = DataHealth(max_bad_fraction=0.05, min_seen=20)
    loader = make_loader(dataset, budget.batch_size, seed=dataset.seed, shuffle=False, workers=budget.workers)
    started = time.monotonic()
    with cpu_threads(threads):
        ev = evaluate(model, loader, dataset.num_classes, dev, amp=budget.amp and dev.type == "cuda",
                      channels_last=channels_last, keys=dataset.keys, split=dataset.split, health=health)
    left_out = f" ({ev.excluded} unreadable left out)" if ev.excluded else ""
    log.info("%s: %s top-1 %.2f%% on %d videos%s, %d views, %.1f s", folder.path, dataset.split, ev.top1,
             ev.videos, left_out, ev.views, time.monotonic() - started)
    return ev.outcomes
