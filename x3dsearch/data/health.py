"""Counting unreadable videos across loader workers, and stopping when there are too many.

Workers cannot share counters, so each item carries the paths that failed while
it was produced (``item["bad"]``, collated into ``batch["bad"]``); the training
loop feeds every batch to one :class:`DataHealth` in the main process, naming
the phase it read for (training, precise-BN, validation, test). Every phase
counts towards one limit: a dataset is not healthier for breaking only its
validation files.
"""
from __future__ import annotations

from typing import Any, Mapping

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


#: The phases reads are counted for, in the order summaries list them.
PHASES = ("train", "precise_bn", "val", "test")


class DataHealth:
    """Share of failed video reads; a read is one attempt to decode one video for one item.

    ``seen`` counts items delivered from a readable video; an item whose video was
    unreadable is one failed read plus, in training, the substitute's read.
    """

    def __init__(self, max_bad_fraction: float = 0.05, min_seen: int = 20):
        if not 0 <= max_bad_fraction <= 1:
            raise X3DSearchError(f"max_bad_fraction must be in [0, 1], got {max_bad_fraction}")
        self.max_bad_fraction = max_bad_fraction
        self.min_seen = min_seen
        self.seen = 0
        self.failures = 0
        self.bad_paths: list[str] = []
        self._known: set[str] = set()
        self.seen_by_phase: dict[str, int] = {}
        self.failures_by_phase: dict[str, int] = {}

    @property
    def reads(self) -> int:
        """Every item is one successful read plus its failed ones."""
        return self.seen + self.failures

    @property
    def bad_fraction(self) -> float:
        return self.failures / self.reads if self.reads else 0.0

    @property
    def bad_reads(self) -> dict[str, int]:
        """Failed reads per phase, every phase read so far included (with 0)."""
        phases = [p for p in PHASES if p in self.seen_by_phase or p in self.failures_by_phase]
        phases += sorted((set(self.seen_by_phase) | set(self.failures_by_phase)) - set(PHASES))
        return {p: self.failures_by_phase.get(p, 0) for p in phases}

    def update(self, bad: list[str], seen: int, phase: str = "train", check: bool = True) -> None:
        """Add one batch of ``phase`` (``seen`` items read, ``bad`` failed paths); raise
        :class:`DataError` past the limit (unless ``check`` is false: see :meth:`check`)."""
        self.seen += seen
        self.failures += len(bad)
        self.seen_by_phase[phase] = self.seen_by_phase.get(phase, 0) + seen
        self.failures_by_phase[phase] = self.failures_by_phase.get(phase, 0) + len(bad)
        for path in bad:
            if path not in self._known:
                self._known.add(path)
                self.bad_paths.append(path)
        if check:
            self.check()

    def check(self) -> None:
        """Raise :class:`DataError` when, after ``min_seen`` reads, too many failed.

        An evaluation checks once its split is read: its K views of one bad video fail
        together, so an early bad video would look like a broken dataset mid-way.
        """
        if self.reads >= self.min_seen and self.bad_fraction > self.max_bad_fraction:
            raise DataError(f"too many unreadable videos: {self.failures} of {self.reads} reads failed "
                            f"({self.bad_fraction:.1%} > {self.max_bad_fraction:.1%} allowed); first bad files: "
                            f"{self._first()} (list all with `x3dsearch data check ROOT`)")

    def _first(self, n: int = 3) -> str:
        more = len(self.bad_paths) - n
        return ", ".join(self.bad_paths[:n]) + (f" and {more} more" if more > 0 else "")

    def summary(self) -> str:
        """One line for the epoch summary: reads, unreadable files, and failed reads per phase."""
        if not self.failures:
            return f"videos: {self.seen} read, none unreadable"
        phases = ", ".join(f"{p} {n}" for p, n in self.bad_reads.items())
        return (f"videos: {self.seen} read, {len(self.bad_paths)} unreadable skipped "
                f"({self.failures} failed reads, {self.bad_fraction:.1%}; {phases}): {self._first()}")

    def to_dict(self) -> dict[str, Any]:
        """The counters, for a checkpoint (a resumed run counts on from them)."""
        return {"seen": dict(self.seen_by_phase), "failures": dict(self.failures_by_phase),
                "bad_paths": list(self.bad_paths)}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`to_dict`'s counters (without checking the limit again)."""
        self.seen_by_phase = {str(k): int(v) for k, v in state.get("seen", {}).items()}
        self.failures_by_phase = {str(k): int(v) for k, v in state.get("failures", {}).items()}
        self.seen = sum(self.seen_by_phase.values())
        self.failures = sum(self.failures_by_phase.values())
        self.bad_paths = [str(p) for p in state.get("bad_paths", [])]
        self._known = set(self.bad_paths)
