"""Decoded frames to a normalised clip tensor, with torch ops only (torchvision does not import here)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .sampling import CropBox

MEAN = 0.45
STD = 0.225


def frames_to_clip(frames: torch.Tensor, box: CropBox, crop: int, flip: bool) -> torch.Tensor:
    """uint8 (T, H, W, 3) frames -> float32 (3, T, crop, crop), normalised with mean 0.45 and std 0.225.

    The box is cut out first and resized in uint8 with antialiasing (PyTorch's fast path),
    so detail finer than the output grid is filtered away as in any proper downscale
    instead of aliasing into fake texture.
    """
    region = frames[:, box.top:box.top + box.size, box.left:box.left + box.size, :].permute(0, 3, 1, 2)
    if box.size != crop:
        region = F.interpolate(region, size=(crop, crop), mode="bilinear", antialias=True, align_corners=False)
    if flip:
        region = region.flip(-1)
    clip = region.permute(1, 0, 2, 3).to(torch.float32)
    return clip.sub_(MEAN * 255.0).div_(STD * 255.0)
