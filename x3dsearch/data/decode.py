"""Reading frames with decord: only the frames a clip needs, one reader per call.

A ``VideoReader`` holds FFmpeg state that must not cross a fork, so readers are
opened inside the call that uses them (that is, inside the loader worker) and
never stored on the dataset.

decord can also resize while decoding (``VideoReader(width=, height=)``), but it
scales after a full-size decode: on this machine a 480x640 source read at 184 or
128 px costs the same as at full size (see ``experiments/benchmarks/loader_speed.py``),
and cropping before the resize (``transforms.frames_to_clip``) already keeps the
torch side cheap. So frames are decoded at full size, which also spares a second
open to learn the source size first.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import decord
import numpy as np

from ..factors import NOMINAL_FPS

decord.logging.set_level(decord.logging.QUIET)  # bad files are reported by us, not FFmpeg


class VideoReadError(Exception):
    """A video that cannot be opened or decoded (missing, empty, corrupt, truncated)."""


@dataclass(frozen=True)
class VideoInfo:
    num_frames: int
    fps: float
    height: int
    width: int


def open_video(path: str | Path):
    """A decord VideoReader, or :class:`VideoReadError` with a short reason."""
    path = Path(path)
    if not path.is_file():
        raise VideoReadError("missing file")
    if path.stat().st_size == 0:
        raise VideoReadError("empty file (0 bytes)")
    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    except Exception as exc:  # noqa: BLE001 - decord raises RuntimeError or DECORDError for anything FFmpeg rejects
        raise VideoReadError(f"cannot open: {_reason(exc)}") from None
    if len(reader) < 1:
        raise VideoReadError("no video frames")
    return reader


def timing(reader) -> tuple[int, float]:
    """(frame count, frames per second) from the container, without decoding anything."""
    fps = float(reader.get_avg_fps())
    if not math.isfinite(fps) or fps <= 0:
        fps = NOMINAL_FPS  # some containers store no rate; the nominal one is the best guess
    return len(reader), fps


def video_info(reader) -> VideoInfo:
    """Frame count, rate and size; decord only knows the size after decoding a frame."""
    num_frames, fps = timing(reader)
    height, width = read_frames(reader, [0]).shape[1:3]
    return VideoInfo(num_frames, fps, int(height), int(width))


def read_frames(reader, indices: list[int]) -> np.ndarray:
    """uint8 (T, H, W, 3) for the given source indices (repeats allowed)."""
    unique = sorted(set(indices))
    try:
        batch = reader.get_batch(unique).asnumpy()
    except Exception as exc:  # noqa: BLE001 - truncated data surfaces here, at the first missing frame
        raise VideoReadError(f"cannot decode frames {unique[0]}-{unique[-1]}: {_reason(exc)}") from None
    if batch.shape[0] != len(unique) or batch.ndim != 4 or batch.shape[-1] != 3:
        raise VideoReadError(f"decoder returned shape {tuple(batch.shape)} for {len(unique)} frames")
    if len(unique) == len(indices) and unique == list(indices):
        return batch
    where = {idx: i for i, idx in enumerate(unique)}
    return batch[[where[i] for i in indices]]


def decode_all(path: str | Path, chunk: int = 32) -> VideoInfo:
    """Decode every frame (for ``x3dsearch data check``); raises :class:`VideoReadError`."""
    reader = open_video(path)
    info = video_info(reader)
    for start in range(0, info.num_frames, chunk):
        read_frames(reader, list(range(start, min(start + chunk, info.num_frames))))
    return info


def probe_frames(path: str | Path) -> VideoInfo:
    """Open and decode the first, middle and last frame: a fast check that still catches truncation."""
    reader = open_video(path)
    info = video_info(reader)
    read_frames(reader, sorted({0, info.num_frames // 2, info.num_frames - 1}))
    return info


def _reason(exc: BaseException) -> str:
    """The useful tail of a decord error (its messages start with a C++ source location)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    for marker in ("ERROR opening: ", "Error: ", "Check failed: "):
        if marker in text:
            text = text.split(marker)[-1]
    return text[:160]
