"""``train_and_evaluate``: the one code path for proxy trainings (search candidates) and full trainings.

The search judges candidates by the numbers this returns, so a run is a pure
function of (factors, data, budget, seed): the same inputs give the same top-1
on CPU, candidates with the same seed see the same clips in the same order,
and a run killed at any point and resumed from ``checkpoint.pt`` ends with the
same metrics as one that was never interrupted.

Files in ``out_dir`` (named by :class:`~x3dsearch.train.folder.TrainingFolder`):
``config.json`` (what was trained), ``checkpoint.pt`` (latest state, atomic),
``metrics.jsonl`` (one line per epoch), ``train.log``, ``model.pt`` (final
weights, readable by ``--init``), ``val_outcomes.json`` (per-video outcomes of
the validation) and ``result.json``. The session itself (set-up, the step loop, the finish) is
:class:`~x3dsearch.train.session.TrainingSession`.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch

from ..budget import Budget, load_budget
from ..data import VideoClipDataset, resolve_data
from ..distill.config import DistillConfig
from ..errors import ConfigError, X3DSearchError
from ..factors import Factors
from ..status import TrialStatus
from ..utils.logging import get_logger
from .checkpoint import load_checkpoint
from .folder import TrainingFolder
from .init_weights import read_init
from .result import TrainResult
from .runtime import cpu_threads, resolve_device
from .session import Report, TrainingSession
from .trainlog import file_only, log_to

log = get_logger("train")

#: Budget fields that change neither the numbers nor the schedule, so they may differ on resume.
_RESULT_NEUTRAL = ("name", "notes", "workers", "checkpoint_every")

def train_and_evaluate(factors: Factors, data: str | Path, budget: Budget | str, seed: int, out_dir: Path, *,
                       resume: bool = True, report: Report | None = None, threads: int | None = None,
                       device: str | None = None, init: Path | None = None, progress: bool = True,
                       distill: DistillConfig | None = None) -> TrainResult:
    """Train ``factors`` on ``data`` under ``budget`` and validate it.

    ``distill`` trains with the ResKD objective instead of plain cross-entropy (a budget's own
    ``distill:`` does the same for every training under it; giving both is an error unless they
    agree). It is recorded with the budget in ``config.json``.

    Bad input (unknown budget, unreadable data, an ``--init`` that does not fit, an
    ``out_dir`` holding another training) raises :class:`X3DSearchError` before any
    training. Once training starts nothing is raised for a NaN loss (status
    ``diverged``) or an error (status ``failed``); the result is returned and stored.
    A finished ``out_dir`` returns its stored result. Unreadable validation videos are
    left out and counted (``val_excluded``), never replaced by another video. ``report(metrics, out_dir)``
    is called after every checkpoint with flat metrics; ``out_dir`` then holds that
    checkpoint. The last report has ``final: True`` plus the result's fields (the key is
    not ``done``, which Ray Tune reserves to stop a trial).
    """
    session_start = time.monotonic()
    out_dir = Path(out_dir)
    folder = TrainingFolder(out_dir)
    dev = resolve_device(device)
    budget = load_budget(budget, cuda=dev.type == "cuda")
    if distill is not None:
        if budget.distill is not None and budget.distill != distill:
            raise ConfigError(f"budget '{budget.name}' asks for its own distillation; pass distill= or use "
                              f"the budget's, not both")
        budget = budget.replace(distill=distill)
    root = resolve_data(data)
    out_dir.mkdir(parents=True, exist_ok=True)

    train_set = VideoClipDataset(root, "train", factors, train=True, seed=seed)
    val_set = VideoClipDataset(root, "val", factors, train=False, seed=seed,
                               temporal_views=budget.eval_temporal_views,
                               spatial_views=budget.eval_spatial_views, max_videos=budget.eval_clips,
                               substitute=False)
    num_classes = train_set.num_classes
    init_path = Path(init).resolve() if init is not None else None
    config = {"factors": factors.to_dict(), "num_classes": num_classes, "seed": int(seed),
              "budget": _budget_record(budget, grown=init_path is not None),
              "train_videos": train_set.num_videos, "val_videos": val_set.num_videos,
              "init": _recorded_init(init_path, out_dir)}
    _check_config(folder, config)

    ckpt_path = folder.checkpoint
    stored = folder.read_result()
    if stored is not None:
        if stored.status != TrialStatus.FAILED:
            log.info("%s already finished: %s", out_dir, stored.summary())
            return stored
        log.info("%s: the stored result failed (%s); training again", out_dir, stored.error)
    if resume:
        folder.check_checkpoint()
    checkpoint = load_checkpoint(ckpt_path) if resume and ckpt_path.is_file() else None
    if checkpoint is not None and checkpoint.get("config") != config:
        raise X3DSearchError(f"{ckpt_path} belongs to another training; use another output folder")
    shortcut_bn = True
    init_weights = None
    if checkpoint is not None:
        shortcut_bn = checkpoint["shortcut_bn"]
    elif init_path is not None:
        init_weights = read_init(init_path)
        shortcut_bn = init_weights.shortcut_bn
    if checkpoint is None:
        for stale in folder.stale_files():
            stale.unlink(missing_ok=True)
    record = None  # config.json is written once set-up succeeded, so bad input leaves no claim on out_dir
    if checkpoint is None or not folder.config.is_file():
        record = {**config, "data": str(root), "budget_name": budget.name, "shortcut_bn": shortcut_bn}

    with log_to(folder.log), cpu_threads(threads):
        log.info("train %s on %s (%d classes) | budget %s | seed %d | %s, %d threads | %s",
                 factors.short(), root, num_classes, budget.name, seed, dev, torch.get_num_threads(),
                 "resuming from step %d" % checkpoint["progress"]["step"] if checkpoint else "fresh start")
        run = TrainingSession(factors, budget, seed, out_dir, dev, root, train_set, val_set, num_classes, shortcut_bn,
                   config, report, progress, session_start)
        result = run.execute(checkpoint, init_weights, record)
        if result.status == TrialStatus.FAILED and run.traceback:
            log.error("training failed:\n%s", run.traceback)
        folder.write_result(result)
        file_only(f"result: {result.summary()}")
        return result


def _recorded_init(init: Path | None, out_dir: Path) -> str | None:
    """The init as the training's config records it: relative to ``out_dir`` when it lies in the same
    folder of trainings (a search's parent model beside its candidates), so a moved run directory
    resumes its trainings; absolute otherwise."""
    if init is None:
        return None
    home = out_dir.resolve().parent
    return os.path.relpath(init, out_dir.resolve()) if init.is_relative_to(home) else str(init)


def _budget_record(budget: Budget, grown: bool) -> dict[str, Any]:
    """The budget's numbers a training's result depends on. ``init_lr_scale`` counts only in a grown training
    whose rate it changes, ``init_epochs`` only in a grown training that sets it, and ``ema_decay`` only when
    set, so every training recorded before they existed still matches."""
    record = {k: v for k, v in budget.to_dict().items() if k not in _RESULT_NEUTRAL}
    if not grown or record.get("init_lr_scale") == 1.0:
        record.pop("init_lr_scale", None)
    if not grown or record.get("init_epochs") is None:
        record.pop("init_epochs", None)
    if record.get("ema_decay") is None:
        record.pop("ema_decay", None)
    return record


def _check_config(folder: TrainingFolder, config: dict) -> None:
    stored = folder.read_config()
    if stored is None:
        return
    mismatched = [k for k in config if stored.get(k) != config[k]]
    if mismatched:
        raise X3DSearchError(f"{folder.path} holds a training with a different {mismatched[0]}; "
                             f"use another output folder")
