"""Where a clip comes from: source frame indices in time and the crop box in space.

Every random choice arrives here as a fraction in [0, 1] (drawn once per
video and epoch by the dataset), never as pixels or frames, so candidates with
different frames, stride or crop trained with one seed see "the same" window
position, scale, crop position and flip.

Time: a clip is ``frames`` samples taken every ``stride`` frames of a nominal
30 fps timeline. A source at another frame rate is resampled by time: nominal
frame ``j`` is shown at ``j / 30`` s, and the source frame on screen at that
instant is ``floor(j / 30 * fps)``. A video shorter than the clip's span starts
at 0 and repeats its last frame for the missing samples (pad, not loop: a loop
would put a jump cut inside the clip, and repeating the end keeps every
sample's time order and spacing honest up to the point where the video ends).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..factors import NOMINAL_FPS

#: Short-side scale jitter for training, as multiples of the crop ([182, 228] for a 160 crop).
TRAIN_SCALE = (8 / 7, 10 / 7)
#: Validation resizes the short side to crop x 8/7 before the centre crop.
VAL_SCALE = 8 / 7


def temporal_indices(num_frames: int, fps: float, frames: int, stride: int, position: float) -> list[int]:
    """Source frame indices of one clip; ``position`` 0 puts the window at the start, 1 at the end."""
    if num_frames < 1:
        raise ValueError("video has no frames")
    scale = fps / NOMINAL_FPS  # source frames per nominal frame
    length = num_frames / scale  # video length in nominal frames
    span = (frames - 1) * stride + 1  # nominal frames the clip covers
    # Windows start on the nominal frame grid, so a 60 fps copy gives exactly the frames 2j.
    start = math.floor(min(max(position, 0.0), 1.0) * max(length - span, 0.0) + 1e-9)
    return [min(int(math.floor((start + k * stride) * scale + 1e-6)), num_frames - 1) for k in range(frames)]


def window_positions(views: int) -> list[float]:
    """The centre window for one view; K windows spread uniformly from start to end for K views."""
    return [0.5] if views == 1 else [i / (views - 1) for i in range(views)]


@dataclass(frozen=True)
class CropBox:
    """A square region of the source frame, resized to ``crop`` x ``crop``."""

    top: int
    left: int
    size: int


def crop_box(height: int, width: int, crop: int, short_side_scale: float, x: float, y: float) -> CropBox:
    """The source square that becomes the crop after resizing the short side to ``crop * short_side_scale``.

    Cropping first and resizing only the box is equivalent to resize-then-crop and
    costs a fraction of it for a large source.
    """
    short = min(height, width)
    size = max(1, min(short, int(round(short / short_side_scale))))
    top = int(round(min(max(y, 0.0), 1.0) * (height - size)))
    left = int(round(min(max(x, 0.0), 1.0) * (width - size)))
    return CropBox(top, left, size)


def train_scale(fraction: float) -> float:
    lo, hi = TRAIN_SCALE
    return lo + (hi - lo) * fraction


def spatial_positions(views: int, height: int, width: int) -> list[tuple[float, float]]:
    """(x, y) fractions of the validation crops: centre for one view; along the long side for more
    (left/centre/right for landscape video, top/centre/bottom for portrait)."""
    along = window_positions(views)
    if width >= height:
        return [(a, 0.5) for a in along]
    return [(0.5, a) for a in along]
