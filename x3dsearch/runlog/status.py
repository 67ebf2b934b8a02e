"""The states a search can be in and why it stopped, spelled once (a trial's are :class:`TrialStatus`)."""
from __future__ import annotations

from enum import Enum

from ..status import TrialStatus

__all__ = ["RunStatus", "StopReason", "TrialStatus"]


class RunStatus(str, Enum):
    RUNNING = "running"
    INTERRUPTED = "interrupted"
    FINISHED = "finished"

    def __str__(self) -> str:
        return self.value


class StopReason(str, Enum):
    """Why the expansion stopped; the log and ``show`` print the value."""

    TARGET_REACHED = "target reached"
    WITHIN_TOLERANCE = "within tolerance"
    BOUNDED = "every axis bounded"
    ALL_FAILED = "every candidate failed"
    INTERRUPTED = "interrupted"
    PATH_ENDED = "the path ended"

    def __str__(self) -> str:
        return self.value
