"""The ResKD training objective: a frozen high-resolution teacher guides a low-resolution student.

The loader yields every clip twice from one decode, with one window, one crop box and
one flip: at the student's crop, exactly as a training without distillation gets it
(same resize, same antialiasing), and at the teacher's crop. So the distilled and the
undistilled student see identical pixels. Only the student runs at test time.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from ..factors import Factors
from ..models import X3D, build_model
from .config import DEFAULT_WEIGHTS, DistillConfig
from .losses import dense_logits, feature_mse, kl_to_teacher, resize_frames


@dataclass(frozen=True)
class Teacher:
    model: X3D
    factors: Factors
    num_classes: int
    path: Path


def load_teacher(path: str | Path, device: torch.device | str = "cpu", expected: Factors | None = None) -> Teacher:
    """A ``model.pt`` written by ``x3dsearch train`` (or the out dir holding it).

    ``expected``: the architecture the caller asked for; a checkpoint of another one is refused.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise ConfigError(f"teacher checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for foreign or corrupt files
        raise ConfigError(f"teacher {path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(data, dict) or "model_state" not in data or "factors" not in data:
        raise ConfigError(f"teacher {path}: not a model.pt written by `x3dsearch train` "
                          "(needs 'model_state' and 'factors')")
    factors = Factors.from_dict(data["factors"])
    if expected is not None and factors != expected:
        differ = [k for k, v in expected.to_dict().items() if factors.to_dict().get(k) != v]
        raise ConfigError(f"teacher {path} was trained as {factors.short()}, not the {expected.short()} asked for "
                          f"({', '.join(differ)} differ)")
    num_classes = int(data.get("num_classes", 400))
    model = build_model(factors, num_classes=num_classes, shortcut_bn=bool(data.get("shortcut_bn", True)))
    try:
        model.load_state_dict(data["model_state"], strict=True)
    except RuntimeError:
        raise ConfigError(f"teacher {path}: its weights do not fit the architecture it names "
                          f"({factors.short()})") from None
    model.requires_grad_(False)
    return Teacher(model.to(device), factors, num_classes, path)


class ResKDObjective(nn.Module):
    """``loss, logits, terms = objective(student, clips, labels, teacher_clips)``.

    ``clips`` are at the student's crop, ``teacher_clips`` the same clips at the teacher's.
    ``terms`` holds the cross-entropy (``ce``) and the weighted distillation term (``kd``),
    which add up to the loss. The teacher is a submodule only for device placement; its
    parameters are frozen and never handed to the optimiser (which takes the student's).
    """

    def __init__(self, config: DistillConfig, teacher: Teacher, student_factors: Factors, student_channels: int,
                 label_smoothing: float = 0.0):
        super().__init__()
        self.config = config
        self.teacher = teacher.model
        self.teacher_crop = config.teacher_crop or teacher.factors.crop
        self.extra_crop: int | None = self.teacher_crop  # the loader delivers every clip at this crop too
        self.student_crop = student_factors.crop
        if self.student_crop >= self.teacher_crop:
            raise ConfigError(f"distill: the student's crop ({self.student_crop}) must be below the teacher's "
                              f"({self.teacher_crop}): ResKD teaches a low-resolution student")
        kind = config.kind
        if kind == "auto":
            kind = "feature-mse" if teacher.model.feature_dim == student_channels else "dense-kl"
        if kind == "feature-mse" and teacher.model.feature_dim != student_channels:
            raise ConfigError(f"distill: feature-mse needs equal final-stage channels (teacher "
                              f"{teacher.model.feature_dim}, student {student_channels}); use kind dense-kl")
        self.kind = kind
        self.weight = DEFAULT_WEIGHTS[kind] if config.weight is None else float(config.weight)
        self.label_smoothing = label_smoothing

    def _teacher_forward(self, clips: torch.Tensor) -> torch.Tensor:
        self.teacher.eval()  # no dropout in the teacher, whatever its BN mode
        if self.config.teacher_bn == "train":  # the official code leaves teacher BN in train mode
            for m in self.teacher.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.train()
        with torch.no_grad():
            return self.teacher.forward_features(clips)

    def forward(self, model: X3D, clips: torch.Tensor, labels: torch.Tensor,
                teacher_clips: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        if teacher_clips is None:
            raise ValueError("ResKD needs the clips at the teacher's crop too (the loader's extra_clip)")
        if clips.shape[-1] != self.student_crop or teacher_clips.shape[-1] != self.teacher_crop:
            raise ValueError(f"clips must be at the student's crop ({self.student_crop}) and teacher clips at the "
                             f"teacher's ({self.teacher_crop}), got {clips.shape[-1]} and {teacher_clips.shape[-1]}")
        features = model.forward_features(clips)
        logits = model.forward_head(features)
        ce = F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)
        teacher_features = self._teacher_forward(teacher_clips)
        if self.kind == "feature-mse":
            kd = feature_mse(features.float(), teacher_features.float())
        elif self.kind == "dense-kl":
            upsampled = resize_frames(features, teacher_features.shape[-2:])
            student_dense = dense_logits(upsampled, model.head.pre_pool, model.head.classify)
            with torch.no_grad():
                teacher_dense = dense_logits(teacher_features, self.teacher.head.pre_pool,
                                             self.teacher.head.classify)
            kd = kl_to_teacher(student_dense.float(), teacher_dense.float(), self.config.temperature)
        else:
            with torch.no_grad():
                teacher_logits = self.teacher.forward_head(teacher_features)
            kd = kl_to_teacher(logits.float(), teacher_logits.float(), self.config.temperature)
        weighted = self.weight * kd
        return ce + weighted, logits, {"ce": ce.item(), "kd": weighted.item()}


def build_objective(config: DistillConfig, *, model: X3D, factors: Factors, num_classes: int,
                    device: torch.device | str, label_smoothing: float = 0.0) -> ResKDObjective:
    """The objective ``config`` asks for (called by the trainer)."""
    teacher = load_teacher(config.teacher, device)
    if teacher.num_classes != num_classes:
        raise ConfigError(f"distill: the teacher predicts {teacher.num_classes} classes, the data has {num_classes}")
    return ResKDObjective(config, teacher, factors, model.feature_dim, label_smoothing).to(device)
