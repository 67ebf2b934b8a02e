"""The class families of the synthetic dataset (see the package docstring for what separates them)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .draw import Canvas, Geometry, Scene, any_colour, bell, box, contrast, disc, hsv, ramp, ring


def _centre(rng: np.random.Generator, g: Geometry, reach: float) -> tuple[float, float]:
    """A random point near the frame centre, so that random square crops keep the object in view."""
    spread = 0.6 * max(g.height / 2 - reach, 0.0)
    return (g.width / 2 + rng.uniform(-spread, spread), g.height / 2 + rng.uniform(-spread, spread))


def _illuminated(draw: Scene, gain: Callable[[float], float]) -> Scene:
    """The scene lit by a light whose strength changes over time: every pixel scales together."""
    def lit(canvas: Canvas, t: float) -> None:
        draw(canvas, t)
        canvas.img *= np.float32(gain(t))
    return lit


def _ramp_light(direction: int) -> Callable[[np.random.Generator, Geometry], Scene]:
    """A ball under a light that brightens (``+1``) or dims (``-1``) exponentially, by a factor of
    e^0.5 to e^0.7 per second (20-30% between X3D-XS's frames, 0.4 s apart).

    The light's level at the middle of the video is random (0.75-1.25), so no single
    frame tells the classes apart; any two frames do, everywhere in the picture, which
    X3D-XS learns within the 32 steps of the ``quick`` budget: ``frames`` >= 2.
    """
    def make(rng: np.random.Generator, g: Geometry) -> Scene:
        r = rng.uniform(0.13, 0.17) * g.height
        xc, yc = _centre(rng, g, r)
        body = any_colour(rng)
        rim = contrast(body)
        level = rng.uniform(0.75, 1.25)
        rate = direction * rng.uniform(0.5, 0.7)
        mid = g.duration / 2

        def draw(canvas: Canvas, t: float) -> None:
            canvas.stamp(xc, yc, r + 1, disc(r), body)
            canvas.stamp(xc, yc, r + 1, ring(r * 0.65, r * 0.22), rim)
        return _illuminated(draw, lambda t: level * math.exp(rate * (t - mid)))
    return make


FLICKER_HZ = 7.5


def _flicker(flickering: bool) -> Callable[[np.random.Generator, Geometry], Scene]:
    """A bell under a lamp that flickers at 7.5 Hz (period 4 frames at 30 fps) between two levels,
    35-45% above and below its mean, or burns steadily at one of those two levels.

    Any stride that is a multiple of 4 nominal frames (12, 8, 4) samples the flicker at
    one phase, so the lamp looks steady; strides 6, 5 and 3 see it change: frame rate.
    """
    def make(rng: np.random.Generator, g: Geometry) -> Scene:
        r = rng.uniform(0.14, 0.18) * g.height
        xc, yc = _centre(rng, g, r)
        colour = any_colour(rng)
        clapper = contrast(colour)
        level = rng.uniform(0.85, 1.15)
        depth = rng.uniform(0.35, 0.45)
        phase = rng.uniform(0, 1)
        held = 1 if rng.random() < 0.5 else -1  # the steady lamp's level: either of the flicker's two

        def gain(t: float) -> float:
            side = (1 if (t * FLICKER_HZ + phase) % 1.0 < 0.5 else -1) if flickering else held
            return level * (1 + depth * side)

        def draw(canvas: Canvas, t: float) -> None:
            canvas.stamp(xc, yc, r * 1.2, bell(r), colour)
            canvas.stamp(xc, yc + r * 0.75, r * 0.3, disc(r * 0.2), clapper)
        return _illuminated(draw, gain)
    return make


def _late(kind: str) -> Callable[[np.random.Generator, Geometry], Scene]:
    """A block on a stage whose lights go out (``dark``) or flare up (``bright``) late in the video.

    The event comes 0.6-0.9 s (18-27 frames) after the middle, so the centre window
    misses it for spans up to 45 nominal frames (XS: 37) and sees it from 64 (S: 73).
    """
    def make(rng: np.random.Generator, g: Geometry) -> Scene:
        half = rng.uniform(0.12, 0.16) * g.height
        xc, yc = _centre(rng, g, half * 1.4)
        angle = rng.uniform(0, math.pi / 2)
        event = g.duration / 2 + rng.uniform(0.6, 0.9)
        colour = any_colour(rng)
        edge = contrast(colour)
        target = np.float32(15.0 if kind == "dark" else 245.0)
        strength = rng.uniform(0.6, 0.8)

        def draw(canvas: Canvas, t: float) -> None:
            canvas.stamp(xc, yc, half * 1.5, box(half, half, angle, half * 0.15), edge)
            canvas.stamp(xc, yc, half * 1.5, box(half * 0.8, half * 0.8, angle, half * 0.12), colour)
            p = ramp(t, event, 0.25) * strength
            if p > 0:
                canvas.img += (target - canvas.img) * p
        return draw
    return make


def _fine(striped: bool) -> Callable[[np.random.Generator, Geometry], Scene]:
    """A panel covered in 1-pixel stripes (horizontal or vertical), or a plain panel of the same mean colour.

    At the default 256 px short side, the 2:1 antialiased resize that crop 112 uses
    (short side 128) averages each light and dark line pair to exactly the mean, so the
    two classes look identical; crop 160 (short side 183) keeps a visible moire of them.
    """
    def make(rng: np.random.Generator, g: Geometry) -> Scene:
        hw, hh = (rng.uniform(0.28, 0.36) * g.height for _ in range(2))  # large: texture energy dominates
        xc, yc = _centre(rng, g, max(hw, hh))
        # in the group's hue, so the panel does not hide what gives the group away; every channel
        # stays within 84-166, so the stripes never clip
        base = hsv(GROUP_HUES["fine"] + rng.uniform(-0.04, 0.04), rng.uniform(0.25, 0.4), rng.uniform(0.55, 0.65))
        amplitude = rng.uniform(60, 70) * striped  # drawn for both, so a plain twin differs only in stripes
        horizontal = rng.random() < 0.5
        y0, y1, x0, x1 = int(yc - hh) - 1, int(yc + hh) + 2, int(xc - hw) - 1, int(xc + hw) + 2
        dy = (np.arange(y0, y1, dtype=np.float32) + 0.5 - yc)[:, None]
        dx = (np.arange(x0, x1, dtype=np.float32) + 0.5 - xc)[None, :]
        inside = -box(hw, hh, 0.0, 0.15 * hh)(dx, dy)
        alpha = np.clip(0.5 + inside, 0, 1)[..., None]
        # The stripes fade in over 3% of the frame height from the panel's border: a hard cut
        # would leave a comb along the border that survives any resize.
        fade = np.clip(inside / (0.03 * g.height), 0, 1)
        fade = fade * fade * (3 - 2 * fade)
        # Stripes in luma only (equal on R, G, B), so 4:2:0 chroma subsampling keeps them.
        rows, cols = np.arange(y0, y1)[:, None], np.arange(x0, x1)[None, :]
        phase = np.broadcast_to((rows % 2) if horizontal else (cols % 2), fade.shape)
        texture = base + (amplitude * fade * (2.0 * phase - 1))[..., None]

        def draw(canvas: Canvas, t: float) -> None:
            region = canvas.img[y0:y1, x0:x1]
            region += (texture - region) * alpha
        return draw
    return make


@dataclass(frozen=True)
class ClassDesign:
    name: str
    group: str
    axis: str
    make: Callable[[np.random.Generator, Geometry], Scene]
    hue: float | None = None  # the world's hue family; None: GROUP_HUES[group]

    @property
    def world_hue(self) -> float:
        return GROUP_HUES[self.group] if self.hue is None else self.hue


#: Background hue family of each group: the "scene" that gives the group away in any frame.
GROUP_HUES: dict[str, float] = {"ramp": 0.55, "flicker": 0.3, "late": 0.8, "fine": 0.05}

#: In label order; ``synthesize(classes=N)`` uses the first N.
CLASS_DESIGNS: tuple[ClassDesign, ...] = (
    ClassDesign("brightening", "ramp", "frames", _ramp_light(+1)),
    ClassDesign("dimming", "ramp", "frames", _ramp_light(-1)),
    ClassDesign("flicker", "flicker", "frame rate", _flicker(True)),
    ClassDesign("steady", "flicker", "frame rate", _flicker(False)),
    ClassDesign("lights-out", "late", "duration", _late("dark")),
    ClassDesign("lights-up", "late", "duration", _late("bright")),
    ClassDesign("striped", "fine", "crop", _fine(True)),
    ClassDesign("plain", "fine", "crop", _fine(False)),
)
