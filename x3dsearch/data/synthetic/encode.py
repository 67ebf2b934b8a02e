"""Frames to a reproducible H.264 mp4: the same frames always give the same bytes."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from ...errors import ConfigError

#: Keyframe every 8 frames and no B-frames, so decoding any frame touches at most 7 others.
GOP = 8
CRF = 20


def encode_mp4(path: Path, frames: np.ndarray, fps: float) -> None:
    """H.264 (yuv420p, CRF 20, GOP 8, no B-frames), single-threaded and bit-exact for reproducible bytes."""
    import av  # here, not at the top: 0.1-0.2 s to import (measured), and only writing a dataset needs it

    height, width = frames.shape[1:3]
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
