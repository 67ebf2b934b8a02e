"""``x3dsearch data check``: decode every video of a dataset and list the unreadable ones."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ..utils.logging import get_logger
from . import decode
from .layout import load_split, present_splits

log = get_logger("data")


@dataclass
class CheckReport:
    checked: int = 0
    frames: int = 0
    bad: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    @property
    def ok(self) -> bool:
        return not self.bad


def check_dataset(root: str | Path, splits: tuple[str, ...] | None = None, full: bool = True,
                  progress: bool = True) -> CheckReport:
    """Decode every frame (``full``) or the first, middle and last frame of each listed video
    of ``splits`` (default: every split the dataset has, the held-out test split included)."""
    splits = present_splits(root) if splits is None else splits
    paths = list(dict.fromkeys(r.path for s in splits for r in load_split(root, s)))
    report = CheckReport()
    start = time.monotonic()
    every = max(1, len(paths) // 20)
    for i, path in enumerate(paths, 1):
        try:
            info = decode.decode_all(path) if full else decode.probe_frames(path)
            report.frames += info.num_frames
        except decode.VideoReadError as exc:
            report.bad.append((str(path), str(exc)))
        report.checked += 1
        if progress and (i % every == 0 or i == len(paths)):
            elapsed = time.monotonic() - start
            log.info("checked %d/%d videos, %d bad, ETA %.0f s", i, len(paths), len(report.bad),
                     elapsed / i * (len(paths) - i))
    return report
