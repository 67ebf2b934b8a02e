"""The ``detail`` variant: class pairs that only mid-frequency detail separates (the fair test of ResKD).

Each video shows one large panel covered in a fine luma texture, on a world in its group's hue.
As in the default dataset, any frame gives the group away (hue and panel shape); inside a group
the two classes differ only in the texture's structure, a sinusoid of period 5-6.5 source pixels:

=========  ===================  ======================================================
group      classes              what separates them
=========  ===================  ======================================================
grating    horizontal,          the orientation of a grating: rows or columns
           vertical
diagonal   rising, falling      the orientation of a grating at +45 or -45 degrees
weave      woven, plaid         a checker (two diagonal gratings multiplied) or a plaid
                                (a row and a column grating added), of equal frequency
                                and contrast
=========  ===================  ======================================================

Why it is fair to a cross-resolution student. The short side is 256 px. A 160 px crop is
made from a 183 px short side (validation), so a period of 5-6.5 source px becomes 3.6-4.6
output px: plainly visible. A 112 px crop (128 px short side) gives 2.5-3.3 px; an 80 px crop
(91 px) gives 1.8-2.3 px, around the Nyquist limit of 2 px, where the antialiased resize keeps
a third to a half of the texture's contrast and folds the finest periods into a coarser moire
of the same orientation. The detail is weakened at the student's crop, never erased (unlike
the default dataset's 1-pixel stripes, which a 2:1 resize cancels exactly).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .classes import ClassDesign
from .draw import Canvas, Geometry, Scene, box, disc, hsv

#: Background hue of each group; far from each other and from nothing else (this variant stands alone).
DETAIL_HUES: dict[str, float] = {"grating": 0.08, "diagonal": 0.42, "weave": 0.72}
#: Texture period in source pixels and its luma amplitude (+-) at full contrast.
PERIOD = (5.0, 6.5)
AMPLITUDE = (30.0, 40.0)


def _panel(group: str, texture: Callable[[np.ndarray, np.ndarray, float, float], np.ndarray]
           ) -> Callable[[np.random.Generator, Geometry], Scene]:
    """A large panel in the group's hue whose luma carries ``texture(x, y, period, phase)`` (in [-1, 1])."""
    def make(rng: np.random.Generator, g: Geometry) -> Scene:
        half = rng.uniform(0.3, 0.38) * g.height
        spread = 0.5 * max(g.height / 2 - half, 0.0)
        xc = g.width / 2 + rng.uniform(-spread, spread)
        yc = g.height / 2 + rng.uniform(-spread, spread)
        base = hsv(DETAIL_HUES[group] + rng.uniform(-0.04, 0.04), rng.uniform(0.25, 0.4), rng.uniform(0.5, 0.6))
        period = rng.uniform(*PERIOD)
        phase = rng.uniform(0, 2 * math.pi)
        amplitude = rng.uniform(*AMPLITUDE)
        y0, y1 = max(int(yc - half) - 1, 0), min(int(yc + half) + 2, g.height)
        x0, x1 = max(int(xc - half) - 1, 0), min(int(xc + half) + 2, g.width)
        dy = (np.arange(y0, y1, dtype=np.float32) + 0.5 - yc)[:, None]
        dx = (np.arange(x0, x1, dtype=np.float32) + 0.5 - xc)[None, :]
        shape = disc(half) if group == "diagonal" else box(half, half, 0.0, 0.2 * half)
        inside = -shape(dx, dy)
        alpha = np.clip(0.5 + inside, 0, 1)[..., None]
        # The texture fades in over 4% of the frame height from the border, so no edge carries it.
        fade = np.clip(inside / (0.04 * g.height), 0, 1)
        fade = fade * fade * (3 - 2 * fade)
        xs = np.broadcast_to(np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5, fade.shape)
        ys = np.broadcast_to(np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5, fade.shape)
        # Luma only (equal on R, G, B), so 4:2:0 chroma subsampling keeps it.
        image = base + (amplitude * fade * texture(xs, ys, period, phase))[..., None]

        def draw(canvas: Canvas, t: float) -> None:
            region = canvas.img[y0:y1, x0:x1]
            region += (image - region) * alpha
        return draw
    return make


def _grating(angle: float) -> Callable[[np.ndarray, np.ndarray, float, float], np.ndarray]:
    """A sinusoid whose crests run at ``angle`` (0: horizontal rows)."""
    c, s = math.cos(angle), math.sin(angle)

    def texture(x: np.ndarray, y: np.ndarray, period: float, phase: float) -> np.ndarray:
        return np.sin(2 * math.pi * (y * c - x * s) / period + phase)
    return texture


def _weave(x: np.ndarray, y: np.ndarray, period: float, phase: float) -> np.ndarray:
    """A checker: the product of a row and a column grating of period ``period * sqrt(2)``, that is two
    diagonal gratings of the grating's frequency, scaled to a grating's contrast energy."""
    p = period * math.sqrt(2)
    return math.sqrt(2) * np.sin(2 * math.pi * x / p + phase) * np.sin(2 * math.pi * y / p)


def _plaid(x: np.ndarray, y: np.ndarray, period: float, phase: float) -> np.ndarray:
    """Rows plus columns of the grating's period, scaled to a grating's contrast energy."""
    return (np.sin(2 * math.pi * x / period + phase) + np.sin(2 * math.pi * y / period)) / math.sqrt(2)


#: In label order.
DETAIL_DESIGNS: tuple[ClassDesign, ...] = (
    ClassDesign("horizontal", "grating", "crop", _panel("grating", _grating(0.0)), DETAIL_HUES["grating"]),
    ClassDesign("vertical", "grating", "crop", _panel("grating", _grating(math.pi / 2)), DETAIL_HUES["grating"]),
    ClassDesign("rising", "diagonal", "crop", _panel("diagonal", _grating(math.pi / 4)), DETAIL_HUES["diagonal"]),
    ClassDesign("falling", "diagonal", "crop", _panel("diagonal", _grating(-math.pi / 4)), DETAIL_HUES["diagonal"]),
    ClassDesign("woven", "weave", "crop", _panel("weave", _weave), DETAIL_HUES["weave"]),
    ClassDesign("plaid", "weave", "crop", _panel("weave", _plaid), DETAIL_HUES["weave"]),
)
