"""One video's frames from a class design: world, distractors, the class's scene and sensor noise."""
from __future__ import annotations

import numpy as np

from .classes import ClassDesign
from .draw import Canvas, Distractors, Geometry, Scene, background


def render_video(design: ClassDesign, rng: np.random.Generator, size: tuple[int, int], fps: float,
                 seconds: tuple[float, float]) -> np.ndarray:
    """All frames of one video as uint8 (N, H, W, 3); scene times are k / fps, so any fps shows the same motion."""
    height, width = size
    num_frames = max(2, int(round(rng.uniform(*seconds) * fps)))
    g = Geometry(height, width, fps, num_frames)
    scene = design.make(rng, g)
    world = background(rng, g, design.world_hue)
    distractors = Distractors(rng, g)
    noise_sigma = rng.uniform(0.0, 3.0)
    noise_bank = (rng.standard_normal((7, height, width, 1)) * noise_sigma).astype(np.float32)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for k in range(num_frames):
        t = k / fps
        canvas = film(scene, world, t, distractors)
        canvas.img += noise_bank[k % len(noise_bank)]
        np.clip(canvas.img, 0, 255, out=canvas.img)
        frames[k] = (canvas.img + 0.5).astype(np.uint8)
    return frames


def film(scene: Scene, world: np.ndarray, t: float, distractors: Distractors | None = None) -> Canvas:
    """The frame at time ``t``: distractors, then the class's scene, drawn over the world."""
    canvas = Canvas(world)
    if distractors is not None:
        distractors.draw(canvas, t)
    scene(canvas, t)
    return canvas
