"""Counting unreadable videos across loader workers, and stopping when there are too many.

Workers cannot share counters, so each item carries the paths that failed while
it was produced (``item["bad"]``, collated into ``batch["bad"]``); the training
loop feeds every batch to one :class:`DataHealth` in the main process.
"""
from __future__ import annotations

from ..errors import X3DSearchError
from ..utils.logging import get_logger

log = get_logger("data")


class DataError(X3DSearchError):
    """Too many unreadable videos, or none readable at all.

    Raised inside a loader worker, PyTorch re-raises it in the main process with
    the worker's whole traceback as the message; only its last line is kept, so
    the CLI still prints one line.
    """

    def __init__(self, message: str = ""):
        lines = [line.strip() for line in str(message).splitlines() if line.strip()]
        if len(lines) > 1:
            last = lines[-1]
            message = last.split("DataError: ", 1)[1] if "DataError: " in last else last
        super().__init__(message)


class DataHealth:
    """Share of failed video reads; a read is one attempt to decode one video for one item."""

    def __init__(self, max_bad_fraction: float = 0.05, min_seen: int = 20):
        if not 0 <= max_bad_fraction <= 1:
            raise X3DSearchError(f"max_bad_fraction must be in [0, 1], got {max_bad_fraction}")
        self.max_bad_fraction = max_bad_fraction
        self.min_seen = min_seen
        self.seen = 0
        self.failures = 0
        self.bad_paths: list[str] = []
        self._known: set[str] = set()

    @property
    def reads(self) -> int:
        """Every item is one successful read plus its failed ones."""
        return self.seen + self.failures

    @property
    def bad_fraction(self) -> float:
        return self.failures / self.reads if self.reads else 0.0

    def update(self, bad: list[str], seen: int) -> None:
        """Add one batch (``seen`` items, ``bad`` failed paths); raise :class:`DataError` past the limit."""
        self.seen += seen
        self.failures += len(bad)
        for path in bad:
            if path not in self._known:
                self._known.add(path)
                self.bad_paths.append(path)
        if self.reads >= self.min_seen and self.bad_fraction > self.max_bad_fraction:
            raise DataError(f"too many unreadable videos: {self.failures} of {self.reads} reads failed "
                            f"({self.bad_fraction:.1%} > {self.max_bad_fraction:.1%} allowed); first bad files: "
                            f"{self._first()} (list all with `x3dsearch data check ROOT`)")

    def _first(self, n: int = 3) -> str:
        more = len(self.bad_paths) - n
        return ", ".join(self.bad_paths[:n]) + (f" and {more} more" if more > 0 else "")

    def summary(self) -> str:
        """One line for the epoch summary."""
        if not self.failures:
            return f"videos: {self.seen} read, none unreadable"
        return (f"videos: {self.seen} read, {len(self.bad_paths)} unreadable skipped "
                f"({self.failures} failed reads, {self.bad_fraction:.1%}): {self._first()}")
