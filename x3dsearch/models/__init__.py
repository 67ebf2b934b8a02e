"""X3D model family built from expansion factors."""
from .grow import grow, grow_model
from .x3d import X3D, build_model, fuse_bn, round_repeats, round_width, stage_plan

__all__ = ["X3D", "build_model", "fuse_bn", "grow", "grow_model", "round_repeats", "round_width", "stage_plan"]
