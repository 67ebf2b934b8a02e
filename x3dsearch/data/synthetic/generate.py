"""Writing a synthetic dataset: every video rendered from its own generator, encoded, split into
train.csv / val.csv, with classes.txt and the parameters in dataset.yaml; atomically."""
from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from ...errors import ConfigError
from ...utils.io import atomic_write_text, atomic_write_yaml
from ...utils.logging import get_logger
from .classes import CLASS_DESIGNS
from .encode import encode_mp4
from .render import render_video

log = get_logger("data")

#: Bump when the rendering changes, so cached copies are regenerated.
SYNTHETIC_VERSION = 4
DEFAULT_CLASSES = 8
DEFAULT_VIDEOS_PER_CLASS = 18
#: 256 px short side (as the usual Kinetics copies): crop 112 resizes it 2:1, which cancels 1-pixel stripes.
DEFAULT_SIZE = (256, 340)
DEFAULT_FPS = 30.0
DEFAULT_SECONDS = (3.0, 4.0)
DEFAULT_VAL_FRACTION = 1 / 3  # a large validation split: it is the search's judge


def _video_rng(seed: int, label: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, label, index, SYNTHETIC_VERSION])


def _write_one(job: tuple) -> None:
    out, rel, label, index, seed, size, fps, seconds = job
    frames = render_video(CLASS_DESIGNS[label], _video_rng(seed, label, index), size, fps, seconds)
    path = Path(out) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    encode_mp4(path, frames, fps)


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    if len(size) != 2 or any(int(s) != s or s < 16 or s % 2 for s in size):
        raise ConfigError(f"synthetic frame size must be two even integers >= 16 (height, width), got {size}")
    return int(size[0]), int(size[1])


def synthesize(out: str | Path, classes: int = DEFAULT_CLASSES, videos_per_class: int = DEFAULT_VIDEOS_PER_CLASS,
               seed: int = 0, *, size: Sequence[int] = DEFAULT_SIZE, fps: float = DEFAULT_FPS,
               seconds: tuple[float, float] = DEFAULT_SECONDS, val_fraction: float = DEFAULT_VAL_FRACTION,
               workers: int = 1, progress: bool = False) -> Path:
    """Write the dataset to ``out`` (which must not exist or be empty), atomically; returns ``out``.

    Everything is generated into a sibling temporary folder that is renamed into place at the end,
    so an interrupted run never leaves a half dataset.
    """
    out = Path(out)
    if not 2 <= classes <= len(CLASS_DESIGNS):
        raise ConfigError(f"--classes must be between 2 and {len(CLASS_DESIGNS)}, got {classes}")
    if videos_per_class < 2:
        raise ConfigError(f"--videos-per-class must be at least 2 (one train, one val), got {videos_per_class}")
    if not 0 < val_fraction < 1:
        raise ConfigError(f"val fraction must be in (0, 1), got {val_fraction}")
    if not 1 <= fps <= 240:
        raise ConfigError(f"fps must be between 1 and 240, got {fps}")
    if not 0.5 <= seconds[0] <= seconds[1] <= 60:
        raise ConfigError(f"video length range must satisfy 0.5 <= min <= max <= 60 s, got {seconds}")
    size = _check_size(size)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"output folder {out} already exists and is not empty")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        _generate(tmp, classes, videos_per_class, seed, size, fps, seconds, val_fraction, workers, progress)
        try:
            os.rename(tmp, out)  # replaces an empty folder; fails if another writer got there first
        except OSError:
            raise ConfigError(f"output folder {out} already exists and is not empty") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out



def _generate(root: Path, classes: int, per_class: int, seed: int, size: tuple[int, int], fps: float,
              seconds: tuple[float, float], val_fraction: float, workers: int, progress: bool) -> None:
    n_val = min(per_class - 1, max(1, int(round(per_class * val_fraction))))
    splits: dict[str, list[str]] = {"train": [], "val": []}
    jobs = []
    for label, design in enumerate(CLASS_DESIGNS[:classes]):
        for index in range(per_class):
            rel = f"videos/{design.name}/{design.name}_{index:03d}.mp4"
            splits["val" if index >= per_class - n_val else "train"].append(f"{rel} {label}")
            jobs.append((str(root), rel, label, index, seed, size, fps, seconds))
    start = time.monotonic()
    report_every = max(1, len(jobs) // 10)

    def tick(done: int) -> None:
        if progress and (done % report_every == 0 or done == len(jobs)):
            elapsed = time.monotonic() - start
            eta = elapsed / done * (len(jobs) - done)
            log.info("synthetic: %d/%d videos, %.0f s elapsed, ETA %.0f s", done, len(jobs), elapsed, eta)

    if workers > 1 and len(jobs) >= 16 * workers:  # a process pool costs seconds to start
        with mp.get_context("spawn").Pool(workers) as pool:
            for done, _ in enumerate(pool.imap_unordered(_write_one, jobs), 1):
                tick(done)
    else:
        for done, job in enumerate(jobs, 1):
            _write_one(job)
            tick(done)
    for split, lines in splits.items():
        atomic_write_text(root / f"{split}.csv", "\n".join(lines) + "\n")
    atomic_write_text(root / "classes.txt", "\n".join(d.name for d in CLASS_DESIGNS[:classes]) + "\n")
    atomic_write_yaml(root / "dataset.yaml", {
        "name": "x3dsearch-synthetic",
        "version": SYNTHETIC_VERSION,
        "seed": seed,
        "classes": classes,
        "videos_per_class": per_class,
        "val_per_class": n_val,
        "size": list(size),
        "fps": fps,
        "seconds": list(seconds),
        "flip": True,
        "class_design": [{"name": d.name, "group": d.group, "axis": d.axis} for d in CLASS_DESIGNS[:classes]],
    })
