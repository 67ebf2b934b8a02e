"""Deterministic epoch order and the DataLoader around a clip dataset.

The order of an epoch is a permutation fixed by (seed, epoch), and every item's
augmentation is fixed by (seed, epoch, video) inside the dataset, so a run is
reproducible with any number of workers and can resume mid-epoch by skipping
the items it already consumed (``start``).
"""
from __future__ import annotations

import math
import random
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from ..errors import ConfigError
from .dataset import collate_clips


class EpochSampler(Sampler[int]):
    """A (seed, epoch) permutation, cut to ``fraction`` of the items, minus the first ``start``."""

    def __init__(self, num_items: int, seed: int, epoch: int = 0, fraction: float = 1.0, shuffle: bool = True,
                 start: int = 0):
        if num_items < 1:
            raise ConfigError("cannot sample from an empty dataset")
        if not 0 < fraction <= 1:
            raise ConfigError(f"fraction must be in (0, 1], got {fraction}")
        if seed < 0:
            raise ConfigError(f"seed must be non-negative, got {seed}")
        self.num_items = num_items
        self.seed = seed
        self.epoch = epoch
        self.fraction = fraction
        self.shuffle = shuffle
        self.count = max(1, int(math.ceil(fraction * num_items - 1e-9)))
        if not 0 <= start <= self.count:
            raise ConfigError(f"start must be in [0, {self.count}], got {start}")
        self.start = start

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self) -> list[int]:
        """The full epoch order, before skipping ``start``."""
        if self.shuffle:
            perm = np.random.default_rng([self.seed, self.epoch, 2]).permutation(self.num_items)
        else:
            perm = np.arange(self.num_items)
        return [int(i) for i in perm[:self.count]]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.start:])

    def __len__(self) -> int:
        return self.count - self.start


def _seed_worker(worker_id: int) -> None:
    """One thread per worker (the machine's cores belong to the model) and seeded library RNGs."""
    torch.set_num_threads(1)
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


class ClipLoader(DataLoader):
    """A DataLoader that remembers, in the main process, which files turned out unreadable.

    Workers are forked afresh every epoch from the main process's dataset, so
    telling it the bad paths seen so far keeps later epochs' workers from logging
    them again.
    """

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]  # a generator over the base's iterator
        logged = getattr(self.dataset, "_logged", None)
        for batch in super().__iter__():
            if logged is not None and isinstance(batch, dict):
                logged.update(batch.get("bad", ()))
            yield batch


def make_loader(dataset, batch_size: int, *, seed: int, epoch: int = 0, start: int = 0, shuffle: bool,
                fraction: float = 1.0, workers: int = 0, drop_last: bool = False) -> DataLoader:
    """A reproducible loader for one epoch; sets the dataset's epoch. ``start`` counts items, not batches."""
    if batch_size < 1:
        raise ConfigError(f"batch size must be positive, got {batch_size}")
    if workers < 0:
        raise ConfigError(f"workers must be non-negative, got {workers}")
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    sampler = EpochSampler(len(dataset), seed, epoch, fraction, shuffle, start)
    return ClipLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_clips,
        pin_memory=torch.cuda.is_available(),
        drop_last=drop_last,
        worker_init_fn=_seed_worker if workers else None,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=False,
    )
