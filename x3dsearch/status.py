"""How a trial ended or where it stands: one enum for the trainer, the search and the reports."""
from __future__ import annotations

from enum import Enum


class TrialStatus(str, Enum):
    """Where a trial stands. ``ok``, ``diverged`` and ``failed`` are final; only ``ok`` can win a step.

    ``skipped`` marks an axis that proposed nothing at a step (the reason is the trial's error).
    The values are the strings the run log has always written, so a status compares equal to them.
    """

    PENDING = "pending"
    RUNNING = "running"
    OK = "ok"
    DIVERGED = "diverged"
    FAILED = "failed"
    SKIPPED = "skipped"

    def __str__(self) -> str:
        return self.value

    @property
    def finished(self) -> bool:
        return self in (TrialStatus.OK, TrialStatus.DIVERGED, TrialStatus.FAILED)

    @classmethod
    def read(cls, value: str) -> "TrialStatus | str":
        """A known status, or the text as it is: a log may carry statuses of a newer writer."""
        try:
            return cls(value)
        except ValueError:
            return value
