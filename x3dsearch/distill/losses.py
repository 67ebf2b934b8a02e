"""ResKD losses (Ma et al., NeurIPS 2022): cross-resolution feature and logit distillation.

Feature maps are ``(N, C, T, H, W)``. Resizing is always per frame (bilinear over
H x W, time untouched), so a student map is compared with the teacher's at the
same frame.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def resize_frames(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Bilinear per-frame resize of ``(N, C, T, H, W)`` to ``(N, C, T, *size)``."""
    n, c, t, h, w = x.shape
    if (h, w) == tuple(size):
        return x
    frames = x.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)
    frames = F.interpolate(frames, size=size, mode="bilinear", align_corners=False)
    return frames.reshape(n, t, c, *size).permute(0, 2, 1, 3, 4)


def feature_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared error after upsampling the student's map to the teacher's spatial size.

    The teacher's size is read from its shape, so any pair of crops works.
    """
    if student.shape[:3] != teacher.shape[:3]:
        raise ValueError(f"feature maps must agree in batch, channels and time: {tuple(student.shape)} vs "
                         f"{tuple(teacher.shape)}")
    return F.mse_loss(resize_frames(student, teacher.shape[-2:]), teacher, reduction="mean")


def kl_to_teacher(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 x KL(teacher || student) of softened distributions, averaged over rows (positions or clips)."""
    classes = student_logits.shape[-1]
    s = F.log_softmax(student_logits.reshape(-1, classes) / temperature, dim=-1)
    t = F.log_softmax(teacher_logits.reshape(-1, classes) / temperature, dim=-1)
    return F.kl_div(s, t, reduction="batchmean", log_target=True) * temperature ** 2


def dense_logits(features: torch.Tensor, pointwise_head: Callable[[torch.Tensor], torch.Tensor],
                 classify: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Apply a classifier at every spatio-temporal position: ``(N, C, T, H, W) -> (N, T, H, W, classes)``.

    ``pointwise_head`` is the part of the head before pooling (1x1x1 convs, so
    position-wise), ``classify`` the part after pooling.
    """
    mapped = pointwise_head(features)
    return classify(mapped.permute(0, 2, 3, 4, 1))
