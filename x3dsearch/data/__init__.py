"""The video data pipeline: dataset layouts, decord clip sampling by the X3D factors, loaders,
bad-file accounting and the embedded synthetic dataset (the default everywhere)."""
from .dataset import VideoClipDataset, collate_clips
from .health import DataError, DataHealth
from .layout import VideoRecord, allows_flip, class_names, load_split, resolve_data
from .loader import EpochSampler, make_loader
from .synthetic import ensure_synthetic, synthesize

__all__ = [
    "DataError", "DataHealth", "EpochSampler", "VideoClipDataset", "VideoRecord", "allows_flip", "class_names",
    "collate_clips", "ensure_synthetic", "load_split", "make_loader", "resolve_data", "synthesize",
]
