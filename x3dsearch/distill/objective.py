"""The ResKD training objective: a frozen high-resolution teacher guides a low-resolution student.

The loader yields clips at the teacher's crop; the student sees the same
augmented clip downsampled bilinearly inside the step, so both get identical
augmentation from one decode. Only the student runs at test time.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from ..factors import Factors
from .losses import dense_logits, feature_mse, kl_to_teacher, resize_frames

KINDS = ("auto", "feature-mse", "dense-kl", "clip-kl")
DEFAULT_WEIGHTS = {"feature-mse": 100.0, "dense-kl": 200.0, "clip-kl": 1.0}


@dataclass(frozen=True)
class DistillConfig:
    """How to distil; the ``distill:`` mapping of a budget, or the options of ``x3dsearch distill``.

    ``kind``: ``feature-mse`` (same final-stage channels; pixel-level MSE),
    ``dense-kl`` (different channels; classifier at every position, KL),
    ``clip-kl`` (plain logit distillation, the paper's weaker baseline) or
    ``auto`` (``feature-mse`` when channels match, else ``dense-kl``).
    """

    teacher: str
    kind: str = "auto"
    weight: float | None = None
    temperature: float = 2.0
    teacher_crop: int | None = None
    teacher_bn: str = "train"

    def __post_init__(self) -> None:
        if not self.teacher or not isinstance(self.teacher, str):
            raise ConfigError("distill: 'teacher' must name a checkpoint written by `x3dsearch train`")
        if self.kind not in KINDS:
            raise ConfigError(f"distill: 'kind' must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.weight is not None and (not isinstance(self.weight, (int, float)) or self.weight < 0):
            raise ConfigError(f"distill: 'weight' must be a non-negative number, got {self.weight!r}")
        if not isinstance(self.temperature, (int, float)) or self.temperature <= 0:
            raise ConfigError(f"distill: 'temperature' must be positive, got {self.temperature!r}")
        if self.teacher_bn not in ("train", "eval"):
            raise ConfigError(f"distill: 'teacher_bn' must be 'train' or 'eval', got {self.teacher_bn!r}")
        if self.teacher_crop is not None and (not isinstance(self.teacher_crop, int) or self.teacher_crop < 32):
            raise ConfigError(f"distill: 'teacher_crop' must be an integer >= 32, got {self.teacher_crop!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DistillConfig":
        if not isinstance(data, Mapping):
            raise ConfigError("distill must be a mapping")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"distill: unknown key '{unknown[0]}'")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Teacher:
    model: nn.Module
    factors: Factors
    num_classes: int
    path: Path


def load_teacher(path: str | Path, device: torch.device | str = "cpu") -> Teacher:
    """A ``model.pt`` written by ``x3dsearch train`` (or the out dir holding it)."""
    from ..models import build_model

    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise ConfigError(f"teacher checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"teacher {path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(data, dict) or "model_state" not in data or "factors" not in data:
        raise ConfigError(f"teacher {path}: not a model.pt written by `x3dsearch train` "
                          "(needs 'model_state' and 'factors')")
    factors = Factors.from_dict(data["factors"])
    num_classes = int(data.get("num_classes", 400))
    model = build_model(factors, num_classes=num_classes, shortcut_bn=bool(data.get("shortcut_bn", True)))
    model.load_state_dict(data["model_state"], strict=True)
    model.requires_grad_(False)
    return Teacher(model.to(device), factors, num_classes, path)


class ResKDObjective(nn.Module):
    """``loss, logits = objective(student, clips, labels)`` for clips at the teacher's crop.

    The teacher is a submodule only for device placement; its parameters are
    frozen and never handed to the optimiser (which takes the student's).
    """

    def __init__(self, config: DistillConfig, teacher: Teacher, student_factors: Factors, student_channels: int,
                 label_smoothing: float = 0.0):
        super().__init__()
        self.config = config
        self.teacher = teacher.model
        self.teacher_crop = config.teacher_crop or teacher.factors.crop
        self.student_crop = student_factors.crop
        kind = config.kind
        if kind == "auto":
            kind = "feature-mse" if teacher.model.feature_dim == student_channels else "dense-kl"
        if kind == "feature-mse" and teacher.model.feature_dim != student_channels:
            raise ConfigError(f"distill: feature-mse needs equal final-stage channels (teacher "
                              f"{teacher.model.feature_dim}, student {student_channels}); use kind dense-kl")
        self.kind = kind
        self.weight = DEFAULT_WEIGHTS[kind] if config.weight is None else float(config.weight)
        self.label_smoothing = label_smoothing

    def train_factors(self, factors: Factors) -> Factors:
        """The factors the training loader must use: the student's clip at the teacher's crop."""
        return factors.replace(crop=self.teacher_crop)

    def student_input(self, clips: torch.Tensor) -> torch.Tensor:
        return resize_frames(clips, (self.student_crop, self.student_crop))

    def _teacher_forward(self, clips: torch.Tensor) -> torch.Tensor:
        self.teacher.eval()  # no dropout in the teacher, whatever its BN mode
        if self.config.teacher_bn == "train":  # the official code leaves teacher BN in train mode
            for m in self.teacher.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.train()
        with torch.no_grad():
            return self.teacher.forward_features(clips)

    def forward(self, model: nn.Module, clips: torch.Tensor,
                labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = model.forward_features(self.student_input(clips))
        logits = model.forward_head(features)
        ce = F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)
        teacher_features = self._teacher_forward(clips)
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
        return ce + self.weight * kd, logits


def build_objective(distill: Mapping[str, Any], *, model: nn.Module, factors: Factors, num_classes: int,
                    device: torch.device | str, label_smoothing: float = 0.0) -> ResKDObjective:
    """The objective a budget's ``distill:`` mapping asks for (called by the trainer)."""
    config = DistillConfig.from_dict(distill)
    teacher = load_teacher(config.teacher, device)
    if teacher.num_classes != num_classes:
        raise ConfigError(f"distill: the teacher predicts {teacher.num_classes} classes, the data has {num_classes}")
    return ResKDObjective(config, teacher, factors, model.feature_dim, label_smoothing).to(device)
