"""Closed-form multiply-add count of the X3D layout, for scanning many settings cheaply.

The proposal solver has to look at dozens of discrete settings per axis and
step; an fvcore trace costs seconds each. This count walks the same
``stage_plan`` the model is built from and takes microseconds. It counts what
the paper's convention counts (conv and linear multiply-adds), and
``tests/test_search_proposals.py`` checks that it equals fvcore; fvcore
(:mod:`x3dsearch.complexity`) stays the number of record for every candidate.
"""
from __future__ import annotations

from functools import lru_cache

import torch

from ..factors import Factors
from ..models.x3d import HEAD_FC_WIDTH, SE_RATIO, build_model, round_width, stage_plan

STEM_TEMPORAL_KERNEL = 5


def _down(size: int) -> int:
    """Output size of a 3-tap, padding-1, stride-2 conv."""
    return (size - 1) // 2 + 1


@lru_cache(maxsize=65536)
def estimate_gflops(factors: Factors, num_classes: int = 400) -> float:
    t = factors.frames
    size = _down(factors.crop)
    stem, stages, head_inner = stage_plan(factors)
    macs = t * size * size * stem * (3 * 9 + STEM_TEMPORAL_KERNEL)
    in_ch = stem
    for plan in stages:
        for index in range(plan.depth):
            out_size = _down(size) if index == 0 else size
            area = t * out_size * out_size
            macs += t * size * size * in_ch * plan.inner          # 1x1x1 expand, before the stride
            macs += area * plan.inner * 27                          # 3x3x3 channel-wise
            if index % 2 == 0:                                      # squeeze-excitation
                macs += 2 * plan.inner * round_width(plan.inner, SE_RATIO)
            macs += area * plan.inner * plan.width                  # 1x1x1 project
            if in_ch != plan.width or index == 0:                   # projection shortcut
                macs += area * in_ch * plan.width
            in_ch, size = plan.width, out_size
    macs += t * size * size * in_ch * head_inner + head_inner * HEAD_FC_WIDTH + HEAD_FC_WIDTH * num_classes
    return macs / 1e9


@lru_cache(maxsize=4096)
def count_params_m(factors: Factors, num_classes: int = 400) -> float:
    """Parameters (millions), counted on a model built on the meta device (no memory, no trace)."""
    with torch.device("meta"):
        model = build_model(factors, num_classes=num_classes)
    return sum(p.numel() for p in model.parameters()) / 1e6
