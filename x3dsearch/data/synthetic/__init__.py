"""The embedded synthetic action dataset: real H.264 mp4 files in which every X3D axis matters.

Each class is a scene family rendered from continuous time, so a 60 fps copy
shows the same events as the 30 fps one. Classes come in groups. The group is
given away by any single frame (its background hue and object type, the way
scene context gives away a Kinetics class), so even a 2D network trained on a
few hundred clips learns something. The classes inside a group differ in
exactly one thing, chosen so that one expansion axis is needed to see it, and
global enough (the whole frame's light, a texture) that a proxy training of a
few dozen SGD steps can learn it. Cues such as the direction of a camera pan
need far longer schedules than a CPU proxy affords (docs/results.md, "The quick budget"):

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

Modules, one job each: ``draw`` (canvas, shapes, colours, world, distractors), ``classes``
(the class families), ``render`` (one video's frames), ``encode`` (reproducible H.264),
``detail`` (the classes of the ``detail`` variant, ResKD's fair test), ``variants`` (what each
variant is: classes, version, splits), ``generate`` (a dataset folder, atomically) and ``cache``
(a variant's default copy, generated once).
"""
from __future__ import annotations

from .cache import ensure_synthetic, synthetic_name
from .classes import CLASS_DESIGNS, FLICKER_HZ, GROUP_HUES, ClassDesign
from .draw import Canvas, Distractors, Geometry, Scene
from .encode import CRF, GOP, encode_mp4
from .detail import DETAIL_DESIGNS
from .generate import split_sizes, synthesize
from .render import film, render_video
from .variants import (DEFAULT_CLASSES, DEFAULT_FPS, DEFAULT_SECONDS, DEFAULT_SIZE, DEFAULT_TEST_FRACTION,
                       DEFAULT_VAL_FRACTION, DEFAULT_VIDEOS_PER_CLASS, RENDER_VERSION, SYNTHETIC_VERSION, VARIANTS,
                       Variant, get_variant, variant_of)

__all__ = ["CLASS_DESIGNS", "CRF", "Canvas", "ClassDesign", "DEFAULT_CLASSES", "DEFAULT_FPS", "DEFAULT_SECONDS",
           "DEFAULT_SIZE", "DEFAULT_TEST_FRACTION", "DEFAULT_VAL_FRACTION", "DEFAULT_VIDEOS_PER_CLASS",
           "DETAIL_DESIGNS", "Distractors", "FLICKER_HZ", "GOP", "GROUP_HUES", "Geometry", "RENDER_VERSION",
           "SYNTHETIC_VERSION", "Scene", "VARIANTS", "Variant", "encode_mp4", "ensure_synthetic", "film",
           "get_variant", "render_video", "split_sizes", "synthesize", "synthetic_name", "variant_of"]
