"""Cross-resolution knowledge distillation (ResKD, Ma et al. NeurIPS 2022)."""
from .losses import dense_logits, feature_mse, kl_to_teacher, resize_frames
from .objective import DistillConfig, ResKDObjective, Teacher, build_objective, load_teacher

__all__ = ["DistillConfig", "ResKDObjective", "Teacher", "build_objective", "dense_logits", "feature_mse",
           "kl_to_teacher", "load_teacher", "resize_frames"]
