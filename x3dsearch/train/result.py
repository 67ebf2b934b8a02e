"""The record one training leaves behind: what the search compares candidates by."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..status import TrialStatus


@dataclass
class TrainResult:
    """Outcome of :func:`~x3dsearch.train.train_and_evaluate`.

    ``top1``/``top5`` are percent on validation and ``None`` unless ``status`` is
    ``ok``; ``train_macs`` is 3 x GFLOPs x clips seen (forward + backward). The trainer fills
    every field; a run log read back keeps only what it recorded, the rest stays ``None``.
    ``peak_memory_mb`` is CUDA peak allocated memory on a GPU and the process's
    peak resident memory on CPU. ``val_videos`` is the number of validation videos
    scored and ``val_excluded`` the number left out as unreadable (never replaced by
    another video); ``bad_reads`` counts failed reads per phase (``train``,
    ``precise_bn``, ``val``). Results written before these fields existed load with
    their defaults.
    """

    status: TrialStatus
    error: str | None = None
    top1: float | None = None
    top5: float | None = None
    train_loss: float | None = None
    wall_time_s: float | None = None
    train_clips_per_s: float | None = None
    peak_memory_mb: float | None = None
    clips_seen: int = 0
    train_macs: float | None = None
    gflops: float | None = None
    params_m: float | None = None
    epochs_done: int = 0
    bad_videos: int = 0
    val_videos: int | None = None
    val_excluded: int = 0
    bad_reads: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        status = TrialStatus.read(self.status)
        if not isinstance(status, TrialStatus) or not status.finished:
            raise ValueError(f"a training ends ok, diverged or failed, not {self.status!r}")
        self.status = status

    @property
    def ok(self) -> bool:
        return self.status == TrialStatus.OK

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe values (non-finite floats become ``None``)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                value = None
            out[f.name] = str(value) if isinstance(value, TrialStatus) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainResult":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def load(cls, path: Path) -> "TrainResult":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def summary(self) -> str:
        """One line for terminals and logs."""
        if self.status == TrialStatus.OK:
            head = f"top-1 {self.top1:.2f}%  top-5 {self.top5:.2f}%  loss {_fmt(self.train_loss)}"
            if self.val_videos is not None:
                left_out = f", {self.val_excluded} unreadable left out" if self.val_excluded else ""
                head += f" (validation, {self.val_videos} videos{left_out})"
        else:
            head = f"{self.status.upper()}: {self.error}"
        tera_macs = None if self.train_macs is None else self.train_macs / 1e12
        return (f"{head}  |  {self.epochs_done} epochs, {self.clips_seen} clips, "
                f"{self.train_clips_per_s:.1f} clips/s, {self.wall_time_s:.1f} s, "
                f"{self.gflops:.3f} GFLOPs, {_fmt(tera_macs, '.2f')} T MACs, "
                f"peak {self.peak_memory_mb:.0f} MB, {self.bad_videos} bad videos{_reads(self.bad_reads)}")


def _reads(bad_reads: dict[str, int]) -> str:
    failed = {phase: n for phase, n in bad_reads.items() if n}
    return f" ({', '.join(f'{p} {n}' for p, n in failed.items())} failed reads)" if failed else ""


def _fmt(value: float | None, spec: str = ".4f") -> str:
    return "n/a" if value is None else f"{value:{spec}}"
