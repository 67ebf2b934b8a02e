"""The embedded synthetic action dataset: real H.264 mp4 files in which every X3D axis matters.

Each class is a scene family rendered from continuous time, so a 60 fps copy
shows the same events as the 30 fps one. Classes come in groups. The group is
given away by any single frame (its background hue and object type, the way
scene context gives away a Kinetics class), so even a 2D network trained on a
few hundred clips learns something. The classes inside a group differ in
exactly one thing, chosen so that one expansion axis is needed to see it, and
global enough (the whole frame's light, a texture) that a proxy training of a
few dozen SGD steps can learn it. Cues such as the direction of a camera pan
need far longer schedules than a CPU proxy affords (README, "Budgets"):

===========  ========================  ===================================================
group        classes                   what separates them, and which axis sees it
===========  ========================  ===================================================
ramp         brightening, dimming      the light on the scene rises or falls steadily (its
                                       log by 0.5-0.7 per second); its level at the middle
                                       is random, so no single frame shows which:
                                       ``frames`` >= 2
flicker      flicker, steady           the lamp flickers at 7.5 Hz between two levels
                                       (+-35-45%), or burns at one of them; a stride that
                                       is a multiple of 4 frames (12, as X3D-XS uses)
                                       samples one phase and sees it steady, strides 6, 5
                                       and 3 see it change: frame rate
late         lights-out, lights-up     the scene goes dark or bright 0.6-0.9 s after the
                                       middle of the video; the centre window of XS (37
                                       frames at 30 fps) never sees it, S (73) always:
                                       duration
fine         striped, plain            a panel with 1-pixel luma stripes, or plain with the
                                       same mean; crop 112 resizes the 256 px short side
                                       2:1 and averages them away exactly, crop 160 (183 px)
                                       keeps a moire: spatial resolution
===========  ========================  ===================================================

Nuisances vary per video: background shade, gradient and soft blobs within the
group's hue family, object colours, sizes, positions and speeds, up to two small
bouncing distractors, video length (3-4 s) and sensor noise. No class depends on
left and right, so ``dataset.yaml`` allows horizontal flips.

Files are byte-identical for a seed: every video draws from its own generator
seeded by (seed, class, index), and x264 runs single-threaded with fixed
options and bit-exact muxing (no timestamps or encoder metadata that vary).
"""
from __future__ import annotations

import colorsys
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import ConfigError
from ..utils.io import atomic_write_text, atomic_write_yaml, cache_dir
from ..utils.logging import get_logger
from .layout import dataset_options

log = get_logger("data")

#: Bump when the rendering or the splits change, so cached copies are regenerated.
SYNTHETIC_VERSION = 5
#: Seeds every video's generator; bump when the rendering changes. v5 changed only the splits, so
#: its videos 0-17 of each class are v4's, byte for byte: the same 96 training videos.
RENDER_VERSION = 4
DEFAULT_CLASSES = 8
#: 12 train + 13 val + 13 test per class: 96 training videos (what ``quick`` was tuned on) and 104
#: videos in each judging split, so one video is under 1 point of top-1.
DEFAULT_VIDEOS_PER_CLASS = 38
#: 256 px short side (as the usual Kinetics copies): crop 112 resizes it 2:1, which cancels 1-pixel stripes.
DEFAULT_SIZE = (256, 340)
DEFAULT_FPS = 30.0
DEFAULT_SECONDS = (3.0, 4.0)
DEFAULT_VAL_FRACTION = 1 / 3  # a large validation split: it is the search's judge
#: The cached dataset and ``data synth`` hold out a test split as large as validation; ``synthesize``
#: makes none unless asked (``test_fraction``), so small datasets keep every video for train and val.
DEFAULT_TEST_FRACTION = 1 / 3
#: Keyframe every 8 frames and no B-frames, so decoding any frame touches at most 7 others.
GOP = 8
CRF = 20

Colour = np.ndarray  # float32 (3,) in [0, 255]
SDF = Callable[[np.ndarray, np.ndarray], np.ndarray]


# --- drawing primitives (signed distance fields, 1-pixel antialiased edges) ------------------------
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


def _bounce(start: float, velocity: float, t: float, low: float, high: float) -> float:
    """Position of a point moving at constant speed and reflecting between two walls."""
    span = max(high - low, 1e-6)
    u = (start - low + velocity * t) % (2 * span)
    return low + (u if u <= span else 2 * span - u)


def _ramp(t: float, start: float, length: float) -> float:
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


def _hsv(h: float, s: float, v: float) -> Colour:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32) * 255


def _any_colour(rng: np.random.Generator) -> Colour:
    return _hsv(rng.random(), rng.uniform(0.5, 1.0), rng.uniform(0.45, 1.0))


def _contrast(colour: Colour) -> Colour:
    """Dark on light colours, light on dark ones, so outlines stay visible on any background."""
    return np.full(3, 30.0 if colour.mean() > 128 else 230.0, dtype=np.float32)


def _background(rng: np.random.Generator, g: Geometry, hue: float) -> np.ndarray:
    """A soft gradient plus blobs in the group's hue family: its "scene".

    Every class of a group shares the same scene distribution, so the scene gives away the
    group and nothing inside it.
    """
    yy, xx = np.mgrid[0:g.height, 0:g.width].astype(np.float32)
    a = rng.uniform(0, 2 * math.pi)
    ramp = xx * math.cos(a) + yy * math.sin(a)
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)

    def scene_colour() -> Colour:
        return _hsv(hue + rng.uniform(-0.05, 0.05), rng.uniform(0.3, 0.55), rng.uniform(0.35, 0.8))

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
                               speed * math.cos(heading), speed * math.sin(heading), _any_colour(rng)))
        self.g = g

    def draw(self, canvas: Canvas, t: float) -> None:
        for shape, r, x0, y0, vx, vy, colour in self.items:
            x = _bounce(x0, vx, t, r, self.g.width - r)
            y = _bounce(y0, vy, t, r, self.g.height - r)
            canvas.stamp(x, y, r * 1.5, shape, colour)


#: Draws a class's content onto a canvas at time t (seconds).
Scene = Callable[[Canvas, float], None]


# --- the class families -----------------------------------------------------------------------------
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
        body = _any_colour(rng)
        rim = _contrast(body)
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
        colour = _any_colour(rng)
        clapper = _contrast(colour)
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
        colour = _any_colour(rng)
        edge = _contrast(colour)
        target = np.float32(15.0 if kind == "dark" else 245.0)
        strength = rng.uniform(0.6, 0.8)

        def draw(canvas: Canvas, t: float) -> None:
            canvas.stamp(xc, yc, half * 1.5, box(half, half, angle, half * 0.15), edge)
            canvas.stamp(xc, yc, half * 1.5, box(half * 0.8, half * 0.8, angle, half * 0.12), colour)
            p = _ramp(t, event, 0.25) * strength
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
        base = _hsv(GROUP_HUES["fine"] + rng.uniform(-0.04, 0.04), rng.uniform(0.25, 0.4), rng.uniform(0.55, 0.65))
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


# --- rendering and encoding -------------------------------------------------------------------------
def render_video(design: ClassDesign, rng: np.random.Generator, size: tuple[int, int], fps: float,
                 seconds: tuple[float, float]) -> np.ndarray:
    """All frames of one video as uint8 (N, H, W, 3); scene times are k / fps, so any fps shows the same motion."""
    height, width = size
    num_frames = max(2, int(round(rng.uniform(*seconds) * fps)))
    g = Geometry(height, width, fps, num_frames)
    scene = design.make(rng, g)
    world = _background(rng, g, GROUP_HUES[design.group])
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


def encode_mp4(path: Path, frames: np.ndarray, fps: float) -> None:
    """H.264 (yuv420p, CRF 20, GOP 8, no B-frames), single-threaded and bit-exact for reproducible bytes."""
    import av
    from fractions import Fraction

    n, height, width = frames.shape[:3]
    if height % 2 or width % 2:
        raise ConfigError(f"frame size must be even for H.264 4:2:0, got {height}x{width}")
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w", format="mp4", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        ctx = stream.codec_context
        ctx.gop_size = GOP
        ctx.max_b_frames = 0
        ctx.thread_count = 1
        ctx.options = {"crf": str(CRF), "preset": "veryfast",
                       "x264-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0:bframes=0:threads=1"}
        ctx.flags |= av.codec.context.Flags.bitexact
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _video_rng(seed: int, label: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, label, index, RENDER_VERSION])


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
               test_fraction: float = 0.0, workers: int = 1, progress: bool = False) -> Path:
    """Write the dataset to ``out`` (which must not exist or be empty), atomically; returns ``out``.

    Per class, ``round(videos_per_class x val_fraction)`` videos go to val (at least one) and
    ``round(videos_per_class x test_fraction)`` to a held-out test split, as far as that leaves
    one training video; ``test.csv`` is written only when the test split is not empty.

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
        _generate(tmp, classes, videos_per_class, seed, size, fps, seconds, val_fraction, test_fraction, workers,
                  progress)
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


def _generate(root: Path, classes: int, per_class: int, seed: int, size: tuple[int, int], fps: float,
              seconds: tuple[float, float], val_fraction: float, test_fraction: float, workers: int,
              progress: bool) -> None:
    import time

    n_train, n_val, n_test = split_sizes(per_class, val_fraction, test_fraction)
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    jobs = []
    for label, design in enumerate(CLASS_DESIGNS[:classes]):
        for index in range(per_class):
            rel = f"videos/{design.name}/{design.name}_{index:03d}.mp4"
            split = "train" if index < n_train else "val" if index < n_train + n_val else "test"
            splits[split].append(f"{rel} {label}")
            jobs.append((str(root), rel, label, index, seed, size, fps, seconds))
    start = time.monotonic()
    report_every = max(1, len(jobs) // 10)

    def tick(done: int) -> None:
        if progress and (done % report_every == 0 or done == len(jobs)):
            elapsed = time.monotonic() - start
            eta = elapsed / done * (len(jobs) - done)
            log.info("synthetic: %d/%d videos, %.0f s elapsed, ETA %.0f s", done, len(jobs), elapsed, eta)

    if workers > 1 and len(jobs) >= 16 * workers:  # a process pool costs seconds to start
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            for done, _ in enumerate(pool.imap_unordered(_write_one, jobs), 1):
                tick(done)
    else:
        for done, job in enumerate(jobs, 1):
            _write_one(job)
            tick(done)
    for split, lines in splits.items():
        if lines:
            atomic_write_text(root / f"{split}.csv", "\n".join(lines) + "\n")
    atomic_write_text(root / "classes.txt", "\n".join(d.name for d in CLASS_DESIGNS[:classes]) + "\n")
    atomic_write_yaml(root / "dataset.yaml", {
        "name": "x3dsearch-synthetic",
        "version": SYNTHETIC_VERSION,
        "seed": seed,
        "classes": classes,
        "videos_per_class": per_class,
        "val_per_class": n_val,
        "test_per_class": n_test,
        "size": list(size),
        "fps": fps,
        "seconds": list(seconds),
        "flip": True,
        "class_design": [{"name": d.name, "group": d.group, "axis": d.axis} for d in CLASS_DESIGNS[:classes]],
    })


def synthetic_name(classes: int, videos_per_class: int, seed: int) -> str:
    default = (classes, videos_per_class, seed) == (DEFAULT_CLASSES, DEFAULT_VIDEOS_PER_CLASS, 0)
    suffix = "" if default else f"-c{classes}-k{videos_per_class}-s{seed}"
    return f"synthetic-v{SYNTHETIC_VERSION}{suffix}"


def ensure_synthetic(classes: int = DEFAULT_CLASSES, videos_per_class: int = DEFAULT_VIDEOS_PER_CLASS,
                     seed: int = 0) -> Path:
    """The cached synthetic dataset, generated on first use into ``cache_dir()/synthetic-v<SYNTHETIC_VERSION>``.

    A lock file makes concurrent first uses (several search trials starting at once)
    wait for one generation instead of each running their own; leftovers of a killed
    generation are removed under the lock.
    """
    import fcntl

    name = synthetic_name(classes, videos_per_class, seed)
    root = cache_dir() / name
    if _is_current(root, classes, videos_per_class, seed):
        return root
    with open(cache_dir() / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_current(root, classes, videos_per_class, seed):  # another process generated it while we waited
            return root
        for stale in cache_dir().glob(f".{name}.*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)
        if root.exists():  # made with other parameters under the same name (e.g. by an older commit)
            log.info("the cached %s was generated with other parameters; regenerating it", root)
            retired = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=cache_dir()))
            os.replace(root, retired / "old")
            shutil.rmtree(retired, ignore_errors=True)
        log.info("generating the synthetic dataset into %s (once; reused afterwards)", root)
        synthesize(root, classes, videos_per_class, seed, test_fraction=DEFAULT_TEST_FRACTION,
                   workers=min(2, os.cpu_count() or 1), progress=True)
    return root


def _is_current(root: Path, classes: int, videos_per_class: int, seed: int) -> bool:
    """A complete cached copy generated by this version with these parameters."""
    if not (root / "val.csv").is_file():
        return False
    try:
        stored = dataset_options(root)
    except ConfigError:
        return False
    expected = {"version": SYNTHETIC_VERSION, "classes": classes, "videos_per_class": videos_per_class,
                "seed": seed, "size": list(DEFAULT_SIZE), "fps": DEFAULT_FPS,
                "test_per_class": split_sizes(videos_per_class, DEFAULT_VAL_FRACTION, DEFAULT_TEST_FRACTION)[2]}
    return all(stored.get(key) == value for key, value in expected.items())
