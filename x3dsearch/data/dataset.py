"""Clips for training and validation, sampled by the architecture's factors.

Common random numbers: every draw for a sample (window position, scale, crop
position, flip) comes from one generator seeded by (seed, epoch, video index)
and is used as a fraction, so it does not depend on the factors, on worker
count or on the order items are fetched in. Two candidates of a search step
trained with one seed see the same videos in the same order with the same
augmentations, up to their own frames, stride and crop.

Unreadable videos (missing, empty, corrupt, truncated) stop nothing here; their
path is logged once per process and listed in ``item["bad"]`` so
:class:`~x3dsearch.data.health.DataHealth` can count it. In training the item is
drawn from another video, chosen deterministically from (seed, epoch, video
index): a substitute costs nothing but a little diversity. Validation and test
never substitute, since the replacement would be scored with its own label as
if it were the requested video: the item comes back as a zero clip flagged
``excluded`` and evaluation leaves that video out.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError
from ..factors import Factors
from ..utils.logging import get_logger
from . import decode
from .health import DataError
from .layout import VideoRecord, allows_flip, class_names, load_split
from .sampling import VAL_SCALE, crop_box, spatial_positions, temporal_indices, train_scale, window_positions
from .transforms import frames_to_clip

log = get_logger("data")

#: How many other videos to try before giving up on an item.
MAX_SUBSTITUTES = 16


def sample_fractions(seed: int, epoch: int, video: int) -> np.ndarray:
    """The five augmentation fractions of one video in one epoch: window, scale, x, y, flip."""
    return np.random.default_rng([seed, epoch, video]).random(5)


def evenly_spaced(n: int, k: int) -> list[int]:
    """k indices spread over range(n): a subset that keeps every class of a class-ordered list."""
    return [i * n // k for i in range(k)]


class VideoClipDataset(Dataset):
    """Items are (video, view) pairs: ``num_videos * temporal_views * spatial_views`` of them.

    Training draws one random window and crop per video; validation takes the
    centre window (or ``temporal_views`` uniform ones) and the centre crop (or
    ``spatial_views`` crops along the long side). ``item["video"]`` is the index
    of the requested video, so views can be averaged per video even when a bad
    file was replaced; ``item["label"]`` is the label of the clip delivered.
    ``substitute`` (default: ``train``) replaces an unreadable video by another
    one; without it the item is ``excluded`` (a zero clip with the requested
    video's label, never to be scored).

    ``extra_crop``: every item also holds ``item["extra_clip"]``, the same clip (frames, crop
    box, flip) resized to this crop, for an objective that needs two resolutions (ResKD's
    teacher); ``item["clip"]`` stays exactly what it is without it.
    """

    def __init__(self, root: str | Path, split: str, factors: Factors, train: bool, seed: int = 0,
                 temporal_views: int = 1, spatial_views: int = 1, flip: bool = True,
                 max_videos: int | None = None, max_bad_fraction: float = 0.05, substitute: bool | None = None,
                 extra_crop: int | None = None):
        if temporal_views < 1 or spatial_views < 1:
            raise ConfigError("temporal_views and spatial_views must be at least 1")
        if train and temporal_views * spatial_views != 1:
            raise ConfigError("training draws one random view per video; multi-view is for validation")
        if seed < 0:
            raise ConfigError(f"seed must be non-negative, got {seed}")
        if max_videos is not None and max_videos < 1:
            raise ConfigError(f"max_videos must be positive, got {max_videos}")
        self.root = Path(root)
        self.split = split
        self.factors = factors
        self.train = train
        self.seed = seed
        self.temporal_views = temporal_views
        self.spatial_views = spatial_views
        self.flip = flip and train and allows_flip(self.root)
        self.substitute = train if substitute is None else substitute
        self.max_bad_fraction = max_bad_fraction
        self.extra_crop = extra_crop
        records = load_split(self.root, split)
        if max_videos is not None and max_videos < len(records):
            records = [records[i] for i in evenly_spaced(len(records), max_videos)]
        self.records: list[VideoRecord] = records
        self.class_names = class_names(self.root)
        self.num_classes = len(self.class_names)
        self.num_videos = len(records)
        self.epoch = 0
        self._logged: set[str] = set()

    @property
    def views(self) -> int:
        return self.temporal_views * self.spatial_views

    @property
    def keys(self) -> list[str]:
        """Each video's name in per-video outcomes (its path relative to the data root)."""
        return [r.key for r in self.records]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_videos * self.views

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        video, view = divmod(int(index), self.views)
        bad: list[str] = []
        for candidate in self._candidates(video):
            record = self.records[candidate]
            try:
                clips = self._load(record.path, candidate, view)
            except decode.VideoReadError as exc:
                path = str(record.path)
                bad.append(path)
                if path not in self._logged:
                    self._logged.add(path)
                    log.warning("unreadable video skipped: %s (%s)", path, exc)
                continue
            item = {"clip": clips[0], "label": record.label, "video": video, "view": view, "bad": bad,
                    "excluded": False}
            if self.extra_crop is not None:
                item["extra_clip"] = clips[1]
            return item
        if not self.substitute:
            f = self.factors
            item = {"clip": torch.zeros(3, f.frames, f.crop, f.crop), "label": self.records[video].label,
                    "video": video, "view": view, "bad": bad, "excluded": True}
            if self.extra_crop is not None:
                item["extra_clip"] = torch.zeros(3, f.frames, self.extra_crop, self.extra_crop)
            return item
        raise DataError(f"no readable video among {len(bad)} tried for item {index} of {self.root} "
                        f"({self.split}); first bad files: {', '.join(bad[:3])}")

    def _candidates(self, video: int):
        """The video itself, then (when substituting) up to MAX_SUBSTITUTES others in an order fixed by
        (seed, epoch, video)."""
        yield video
        if not self.substitute:
            return
        others = np.random.default_rng([self.seed, self.epoch, video, 1]).permutation(self.num_videos)
        yield from (int(v) for v in others[others != video][:MAX_SUBSTITUTES])

    def _load(self, path: Path, video: int, view: int) -> list[torch.Tensor]:
        """The clip at the factors' crop, then at ``extra_crop`` when set: one decode, one box, one flip."""
        f = self.factors
        window, scale, x, y, flip = sample_fractions(self.seed, self.epoch, video)
        reader = decode.open_video(path)
        num_frames, fps = decode.timing(reader)
        temporal, spatial = divmod(view, self.spatial_views)
        position = window if self.train else window_positions(self.temporal_views)[temporal]
        indices = temporal_indices(num_frames, fps, f.frames, f.stride, position)
        frames = torch.from_numpy(decode.read_frames(reader, indices))
        height, width = frames.shape[1:3]
        if self.train:
            short_side_scale, flip_it = train_scale(scale), self.flip and flip < 0.5
        else:
            x, y = spatial_positions(self.spatial_views, height, width)[spatial]
            short_side_scale, flip_it = VAL_SCALE, False
        box = crop_box(height, width, f.crop, short_side_scale, x, y)  # the box does not depend on the crop
        crops = [f.crop] if self.extra_crop is None else [f.crop, self.extra_crop]
        return [frames_to_clip(frames, box, crop, flip_it) for crop in crops]

    def clip_indices(self, video: int, view: int = 0) -> list[int]:
        """The source frame indices item (video, view) reads; for tests and debugging."""
        num_frames, fps = decode.timing(decode.open_video(self.records[video].path))
        if self.train:
            position = sample_fractions(self.seed, self.epoch, video)[0]
        else:
            position = window_positions(self.temporal_views)[view // self.spatial_views]
        return temporal_indices(num_frames, fps, self.factors.frames, self.factors.stride, position)


def collate_clips(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack items into a batch; ``bad`` is the flat list of every failed path in it."""
    batch = {
        "excluded": torch.tensor([bool(it.get("excluded", False)) for it in items], dtype=torch.bool),
        "clip": torch.stack([it["clip"] for it in items]),
        "label": torch.tensor([it["label"] for it in items], dtype=torch.long),
        "video": torch.tensor([it["video"] for it in items], dtype=torch.long),
        "view": torch.tensor([it["view"] for it in items], dtype=torch.long),
        "bad": [path for it in items for path in it["bad"]],
    }
    if items and "extra_clip" in items[0]:
        batch["extra_clip"] = torch.stack([it["extra_clip"] for it in items])
    return batch
