"""X3D (Feichtenhofer, CVPR 2020, Table 1) parameterised by :class:`~x3dsearch.factors.Factors`.

The layout follows the paper as the reference implementations build it:
a 1x3x3 stem conv plus a 5-tap channel-wise temporal conv, four residual
stages of inverted-bottleneck blocks with a channel-wise 3x3x3 conv,
squeeze-excitation on every other block, SiLU, and a conv5 + fc head.
The head pools adaptively, so any clip length and crop run through it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..factors import Factors

#: Paper-unit widths (gamma_w = 1) of the stem and the four stages.
BASE_STEM_WIDTH = 24
BASE_STAGE_WIDTHS = (24, 48, 96, 192)
BASE_STAGE_DEPTHS = (1, 2, 5, 3)
HEAD_FC_WIDTH = 2048
SE_RATIO = 0.0625


def round_width(width: float, multiplier: float = 1.0, divisor: int = 8, min_width: int = 8) -> int:
    """Round ``width * multiplier`` to a multiple of ``divisor`` without losing over 10%.

    Divisor 8 reproduces the published FLOPs of X3D-XL; divisor 1 does not.
    """
    target = width * multiplier
    rounded = max(min_width, int(target + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * target:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, multiplier: float) -> int:
    """Blocks per stage: always rounded up, so 2.2 x (1, 2, 5, 3) = (3, 5, 11, 7)."""
    return int(math.ceil(multiplier * repeats))


@dataclass(frozen=True)
class StagePlan:
    width: int
    inner: int
    depth: int


def stage_plan(factors: Factors) -> tuple[int, list[StagePlan], int]:
    """Stem width, per-stage (width, inner width, depth) and head inner width."""
    stem = round_width(BASE_STEM_WIDTH, factors.width)
    stages = []
    for base_width, base_depth in zip(BASE_STAGE_WIDTHS, BASE_STAGE_DEPTHS):
        width = round_width(base_width, factors.width)
        stages.append(StagePlan(width, int(factors.bottleneck * width), round_repeats(base_depth, factors.depth)))
    head_inner = int(factors.bottleneck * stages[-1].width)
    return stem, stages, head_inner


def _conv_bn(in_ch: int, out_ch: int, kernel: tuple[int, int, int], stride: tuple[int, int, int] = (1, 1, 1),
             groups: int = 1) -> tuple[nn.Conv3d, nn.BatchNorm3d]:
    padding = (kernel[0] // 2, kernel[1] // 2, kernel[2] // 2)
    return (nn.Conv3d(in_ch, out_ch, kernel, stride=stride, padding=padding, groups=groups, bias=False),
            nn.BatchNorm3d(out_ch))


class Stem(nn.Module):
    """1x3x3 spatial conv (stride 2) then a 5x1x1 channel-wise temporal conv."""

    def __init__(self, out_ch: int, in_ch: int = 3, temporal_kernel: int = 5):
        super().__init__()
        self.conv_xy = nn.Conv3d(in_ch, out_ch, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), bias=False)
        self.conv_t = nn.Conv3d(out_ch, out_ch, (temporal_kernel, 1, 1), padding=(temporal_kernel // 2, 0, 0),
                                groups=out_ch, bias=False)
        self.bn = nn.BatchNorm3d(out_ch)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv_t(self.conv_xy(x))))


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, ratio: float = SE_RATIO):
        super().__init__()
        reduced = round_width(channels, ratio)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.fc1 = nn.Conv3d(channels, reduced, 1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv3d(reduced, channels, 1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))


class XBlock(nn.Module):
    """Inverted bottleneck: 1x1x1 expand, 3x3x3 channel-wise (+SE), SiLU, 1x1x1 project.

    ``shortcut_bn=False`` reproduces pytorchvideo checkpoints: their projection
    shortcut has a BN only where channels change (so none in the first block of
    stage 1, which only downsamples). ``True`` (SlowFast, the paper) always has one.
    """

    def __init__(self, in_ch: int, out_ch: int, inner: int, spatial_stride: int, use_se: bool,
                 shortcut_bn: bool = True):
        super().__init__()
        self.conv_a, self.bn_a = _conv_bn(in_ch, inner, (1, 1, 1))
        self.act_a = nn.ReLU(inplace=True)
        self.conv_b, self.bn_b = _conv_bn(inner, inner, (3, 3, 3), stride=(1, spatial_stride, spatial_stride),
                                          groups=inner)
        self.se = SqueezeExcite(inner) if use_se else nn.Identity()
        self.act_b = nn.SiLU()
        self.conv_c, self.bn_c = _conv_bn(inner, out_ch, (1, 1, 1))
        # A marker attribute, not a tensor (hence the ignore): zero-initialised so every block starts as identity.
        self.bn_c.is_block_last = True  # type: ignore[assignment]
        self.shortcut: nn.Conv3d | None
        self.shortcut_bn: nn.Module | None
        if in_ch != out_ch or spatial_stride != 1:
            self.shortcut = nn.Conv3d(in_ch, out_ch, 1, stride=(1, spatial_stride, spatial_stride), bias=False)
            self.shortcut_bn = nn.BatchNorm3d(out_ch) if shortcut_bn or in_ch != out_ch else nn.Identity()
        else:
            self.shortcut = None
            self.shortcut_bn = None
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act_a(self.bn_a(self.conv_a(x)))
        y = self.act_b(self.se(self.bn_b(self.conv_b(y))))
        y = self.bn_c(self.conv_c(y))
        identity = x if self.shortcut is None or self.shortcut_bn is None else self.shortcut_bn(self.shortcut(x))
        return self.act(y + identity)


class Head(nn.Module):
    """conv5 (1x1x1, BN, ReLU), adaptive global pool, fc 2048 (no BN), ReLU, dropout, fc."""

    def __init__(self, in_ch: int, inner: int, num_classes: int, dropout: float = 0.5,
                 fc_width: int = HEAD_FC_WIDTH):
        super().__init__()
        self.conv5, self.bn5 = _conv_bn(in_ch, inner, (1, 1, 1))
        self.act5 = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.fc1 = nn.Linear(inner, fc_width, bias=False)
        self.act = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc2 = nn.Linear(fc_width, num_classes)

    def pre_pool(self, features: torch.Tensor) -> torch.Tensor:
        return self.act5(self.bn5(self.conv5(features)))

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """Classifier after pooling, for any leading shape ``(..., inner)``."""
        return self.fc2(self.dropout(self.act(self.fc1(pooled))))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classify(self.pool(self.pre_pool(features)).flatten(1))


class X3D(nn.Module):
    """X3D network. Input ``(N, 3, T, H, W)``; output logits ``(N, num_classes)``.

    ``forward_features`` returns the final-stage map ``(N, C, T, H/32, W/32)`` that
    distillation needs, and ``forward_head`` turns it into logits, so both come
    from one pass.
    """

    def __init__(self, factors: Factors, num_classes: int = 400, dropout: float = 0.5,
                 shortcut_bn: bool = True):
        super().__init__()
        self.factors = factors
        self.num_classes = num_classes
        self.shortcut_bn = shortcut_bn
        stem_width, plans, head_inner = stage_plan(factors)
        self.stem = Stem(stem_width)
        stages = []
        in_ch = stem_width
        for plan in plans:
            blocks = [XBlock(in_ch if i == 0 else plan.width, plan.width, plan.inner,
                             spatial_stride=2 if i == 0 else 1, use_se=(i % 2 == 0), shortcut_bn=shortcut_bn)
                      for i in range(plan.depth)]
            stages.append(nn.Sequential(*blocks))
            in_ch = plan.width
        self.stages = nn.Sequential(*stages)
        self.feature_dim = in_ch
        self.head = Head(in_ch, head_inner, num_classes, dropout)
        self._init_weights()

    def _init_weights(self) -> None:
        if self.head.fc2.weight.is_meta:  # built to count (no values to draw): drawing on meta is slow
            return
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.constant_(m.weight, 0.0 if getattr(m, "is_block_last", False) else 1.0)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def build_model(factors: Factors, num_classes: int = 400, dropout: float = 0.5,
                shortcut_bn: bool = True) -> X3D:
    """Build the X3D network that ``factors`` describe, e.g. ``build_model(preset("x3d-xs"), 400)``."""
    return X3D(factors, num_classes=num_classes, dropout=dropout, shortcut_bn=shortcut_bn)


@torch.no_grad()
def fuse_bn(model: nn.Module) -> nn.Module:
    """Fold every eval-mode BN that directly follows a conv into that conv, for inference.

    Returns the same model, modified in place; it must be in eval mode.
    """
    if model.training:
        raise ValueError("fuse_bn needs an eval-mode model: BN statistics must be frozen")
    pairs = []
    for module in model.modules():
        names = dict(module.named_children())
        for conv_name, bn_name in (("conv_t", "bn"), ("conv_a", "bn_a"), ("conv_b", "bn_b"),
                                   ("conv_c", "bn_c"), ("shortcut", "shortcut_bn"), ("conv5", "bn5")):
            if isinstance(names.get(conv_name), nn.Conv3d) and isinstance(names.get(bn_name),
                                                                                      nn.BatchNorm3d):
                pairs.append((module, conv_name, bn_name))
    for module, conv_name, bn_name in pairs:
        conv, bn = getattr(module, conv_name), getattr(module, bn_name)
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        fused = nn.Conv3d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                          conv.dilation, conv.groups, bias=True).to(conv.weight.device, conv.weight.dtype)
        fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        assert fused.bias is not None  # built with bias=True
        fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
        setattr(module, conv_name, fused)
        setattr(module, bn_name, nn.Identity())
    return model
