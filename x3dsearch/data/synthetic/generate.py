"""Writing a synthetic dataset: every video rendered from its own generator, encoded, split into
train.csv / val.csv (and test.csv for variants that hold one out), with classes.txt and the parameters
in dataset.yaml; atomically."""
from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Sequence


from ...errors import ConfigError
from ...utils.io import atomic_write_text, atomic_write_yaml
from ...utils.logging import get_logger
from .encode import encode_mp4
from .render import render_video
from .variants import DEFAULT_FPS, DEFAULT_SIZE, DEFAULT_VAL_FRACTION, Variant, get_variant

log = get_logger("data")


def _write_one(job: tuple) -> None:
    out, rel, variant, label, index, seed, size, fps, seconds = job
    v = get_variant(variant)
    frames = render_video(v.designs[label], v.video_rng(seed, label, index), size, fps, seconds)
    path = Path(out) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    encode_mp4(path, frames, fps)


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    if len(size) != 2 or any(int(s) != s or s < 16 or s % 2 for s in size):
        raise ConfigError(f"synthetic frame size must be two even integers >= 16 (height, width), got {size}")
    return int(size[0]), int(size[1])


def synthesize(out: str | Path, classes: int | None = None, videos_per_class: int | None = None, seed: int = 0, *,
               variant: str = "default", size: Sequence[int] = DEFAULT_SIZE, fps: float = DEFAULT_FPS,
               seconds: tuple[float, float] | None = None, val_fraction: float | None = None,
               test_fraction: float = 0.0, workers: int = 1, progress: bool = False) -> Path:
    """Write the dataset to ``out`` (which must not exist or be empty), atomically; returns ``out``.

    ``classes``, ``videos_per_class``, ``seconds`` and ``val_fraction`` default to the variant's.
    Per class, ``round(videos_per_class x val_fraction)`` videos go to val (at least one) and
    ``round(videos_per_class x test_fraction)`` to a held-out test split, as far as that leaves
    one training video; ``test.csv`` is written only when the test split is not empty (the cached
    copies and ``data synth`` ask for the variant's ``test_fraction``).
    Everything is generated into a sibling temporary folder that is renamed into place at the end,
    so an interrupted run never leaves a half dataset.
    """
    out = Path(out)
    v = get_variant(variant)
    classes = v.classes if classes is None else classes
    videos_per_class = v.videos_per_class if videos_per_class is None else videos_per_class
    seconds = v.seconds if seconds is None else seconds
    val_fraction = v.val_fraction if val_fraction is None else val_fraction
    if not 2 <= classes <= len(v.designs):
        raise ConfigError(f"--num-classes must be between 2 and {len(v.designs)}, got {classes}")
    if videos_per_class < 2:
        raise ConfigError(f"--videos-per-class must be at least 2 (one train, one val), got {videos_per_class}")
    if not 0 < val_fraction < 1:
        raise ConfigError(f"val fraction must be in (0, 1), got {val_fraction}")
    if not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ConfigError(f"test fraction must be in [0, 1 - val fraction), got {test_fraction}")
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
        _generate(tmp, v, classes, videos_per_class, seed, size, fps, seconds, val_fraction, test_fraction,
                  workers, progress)
        try:
            os.rename(tmp, out)  # replaces an empty folder; fails if another writer got there first
        except OSError:
            raise ConfigError(f"output folder {out} already exists and is not empty") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out



def split_sizes(per_class: int, val_fraction: float = DEFAULT_VAL_FRACTION,
                test_fraction: float = 0.0) -> tuple[int, int, int]:
    """(train, val, test) videos per class: val at least one, train at least one, test what remains."""
    n_val = min(per_class - 1, max(1, int(round(per_class * val_fraction))))
    n_test = min(per_class - 1 - n_val, int(round(per_class * test_fraction)))
    return per_class - n_val - n_test, n_val, n_test


def _generate(root: Path, v: Variant, classes: int, per_class: int, seed: int, size: tuple[int, int], fps: float,
              seconds: tuple[float, float], val_fraction: float, test_fraction: float, workers: int,
              progress: bool) -> None:
    n_train, n_val, n_test = split_sizes(per_class, val_fraction, test_fraction)
    designs = v.designs[:classes]
    splits: dict[str, list[str]] = {"train": [], "val": []}
    if n_test:
        splits["test"] = []
    jobs = []
    for label, design in enumerate(designs):
        for index in range(per_class):
            rel = f"videos/{design.name}/{design.name}_{index:03d}.mp4"
            split = "train" if index < n_train else "val" if index < n_train + n_val else "test"
            splits[split].append(f"{rel} {label}")
            jobs.append((str(root), rel, v.name, label, index, seed, size, fps, seconds))
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
    atomic_write_text(root / "classes.txt", "\n".join(d.name for d in designs) + "\n")
    record = {
        "name": "x3dsearch-synthetic",
        "version": v.version,
        "seed": seed,
        "classes": classes,
        "videos_per_class": per_class,
        "val_per_class": n_val,
        "test_per_class": n_test,
        "size": list(size),
        "fps": fps,
        "seconds": list(seconds),
        "flip": True,
        "class_design": [{"name": d.name, "group": d.group, "axis": d.axis} for d in designs],
    }
    if v.name != "default":
        record["variant"] = v.name
    atomic_write_yaml(root / "dataset.yaml", record)
