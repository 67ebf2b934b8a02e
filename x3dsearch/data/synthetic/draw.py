"""Drawing primitives of the synthetic scenes: a float canvas, signed distance fields with 1-pixel
antialiased edges, colours, the group's background "world" and the bouncing distractors."""
from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

Colour = np.ndarray  # float32 (3,) in [0, 255]
SDF = Callable[[np.ndarray, np.ndarray], np.ndarray]


class Canvas:
    """A float RGB frame; shapes are stamped inside their bounding box only, for speed."""

    def __init__(self, background: np.ndarray):
        self.img = background.copy()
        self.h, self.w = background.shape[:2]

    def stamp(self, cx: float, cy: float, reach: float, sdf: SDF, colour: Colour, opacity: float = 1.0) -> None:
        if opacity <= 0:
            return
        y0, y1 = max(int(cy - reach) - 1, 0), min(int(cy + reach) + 2, self.h)
        x0, x1 = max(int(cx - reach) - 1, 0), min(int(cx + reach) + 2, self.w)
        if y0 >= y1 or x0 >= x1:
            return
        dy = (np.arange(y0, y1, dtype=np.float32) + 0.5 - cy)[:, None]
        dx = (np.arange(x0, x1, dtype=np.float32) + 0.5 - cx)[None, :]
        alpha = np.clip(0.5 - sdf(dx, dy), 0.0, 1.0) * opacity
        region = self.img[y0:y1, x0:x1]
        region += (colour - region) * alpha[..., None]


def _rotate(dx: np.ndarray, dy: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    c, s = math.cos(angle), math.sin(angle)
    return dx * c + dy * s, -dx * s + dy * c


def disc(radius: float) -> SDF:
    return lambda dx, dy: np.sqrt(dx * dx + dy * dy) - radius


def ring(radius: float, thickness: float) -> SDF:
    return lambda dx, dy: np.abs(np.sqrt(dx * dx + dy * dy) - radius) - thickness / 2


def box(half_w: float, half_h: float, angle: float = 0.0, rounding: float = 0.0) -> SDF:
    def sdf(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
        qx, qy = _rotate(dx, dy, angle)
        ax, ay = np.abs(qx) - (half_w - rounding), np.abs(qy) - (half_h - rounding)
        outside = np.sqrt(np.maximum(ax, 0) ** 2 + np.maximum(ay, 0) ** 2)
        return outside + np.minimum(np.maximum(ax, ay), 0) - rounding
    return sdf


def bell(radius: float) -> SDF:
    """A dome over a wide rim: a shape no other class uses."""
    dome, rim = disc(radius * 0.8), box(radius, radius * 0.18, 0.0, radius * 0.08)

    def sdf(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
        upper = np.maximum(dome(dx, dy + radius * 0.1), dy - radius * 0.55)
        return np.minimum(upper, rim(dx, dy - radius * 0.55))
    return sdf


def bounce(start: float, velocity: float, t: float, low: float, high: float) -> float:
    """Position of a point moving at constant speed and reflecting between two walls."""
    span = max(high - low, 1e-6)
    u = (start - low + velocity * t) % (2 * span)
    return low + (u if u <= span else 2 * span - u)


def ramp(t: float, start: float, length: float) -> float:
    return min(max((t - start) / length, 0.0), 1.0)


# --- per-video randomness ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Geometry:
    height: int
    width: int
    fps: float
    num_frames: int

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps


def hsv(h: float, s: float, v: float) -> Colour:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32) * 255


def any_colour(rng: np.random.Generator) -> Colour:
    return hsv(rng.random(), rng.uniform(0.5, 1.0), rng.uniform(0.45, 1.0))


def contrast(colour: Colour) -> Colour:
    """Dark on light colours, light on dark ones, so outlines stay visible on any background."""
    return np.full(3, 30.0 if colour.mean() > 128 else 230.0, dtype=np.float32)


def background(rng: np.random.Generator, g: Geometry, hue: float) -> np.ndarray:
    """A soft gradient plus blobs in the group's hue family: its "scene".

    Every class of a group shares the same scene distribution, so the scene gives away the
    group and nothing inside it.
    """
    yy, xx = np.mgrid[0:g.height, 0:g.width].astype(np.float32)
    a = rng.uniform(0, 2 * math.pi)
    ramp = xx * math.cos(a) + yy * math.sin(a)
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)

    def scene_colour() -> Colour:
        return hsv(hue + rng.uniform(-0.05, 0.05), rng.uniform(0.3, 0.55), rng.uniform(0.35, 0.8))

    c1, c2 = scene_colour(), scene_colour()
    img = c1 + (c2 - c1) * ramp[..., None]
    for _ in range(int(rng.integers(4, 9))):
        cy, cx = rng.uniform(0, g.height), rng.uniform(0, g.width)
        sigma = rng.uniform(0.05, 0.2) * g.height
        weight = rng.uniform(0.3, 0.7) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma * sigma))
        img += (scene_colour() - img) * weight[..., None]
    return img


class Distractors:
    """One to three small shapes bouncing around; the same distribution in every class."""

    def __init__(self, rng: np.random.Generator, g: Geometry):
        self.items = []
        for _ in range(int(rng.integers(0, 3))):
            r = rng.uniform(0.02, 0.035) * g.height
            speed = rng.uniform(0.03, 0.15) * g.height
            heading = rng.uniform(0, 2 * math.pi)
            shape = disc(r) if rng.random() < 0.5 else box(r, r, rng.uniform(0, math.pi), r * 0.3)
            self.items.append((shape, r, rng.uniform(r, g.width - r), rng.uniform(r, g.height - r),
                               speed * math.cos(heading), speed * math.sin(heading), any_colour(rng)))
        self.g = g

    def draw(self, canvas: Canvas, t: float) -> None:
        for shape, r, x0, y0, vx, vy, colour in self.items:
            x = bounce(x0, vx, t, r, self.g.width - r)
            y = bounce(y0, vy, t, r, self.g.height - r)
            canvas.stamp(x, y, r * 1.5, shape, colour)


#: Draws a class's content onto a canvas at time t (seconds).
Scene = Callable[[Canvas, float], None]
