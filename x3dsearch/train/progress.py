"""A one-line progress bar with loss, clips/s and ETA, redrawn in place on a terminal."""
from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """Draws ``[####....] step/total  loss  clips/s  ETA`` on a TTY, at most every ``interval`` s.

    Off a terminal it stays silent: the trainer logs periodic progress lines instead.
    """

    def __init__(self, total: int, enabled: bool = True, stream: TextIO | None = None, width: int = 24,
                 interval: float = 0.2):
        self.stream = stream or sys.stderr
        self.enabled = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.total = max(1, total)
        self.width = width
        self.interval = interval
        self._last_draw = 0.0
        self._drawn = False

    def update(self, step: int, text: str, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < self.interval:
            return
        self._last_draw = now
        filled = int(self.width * min(step, self.total) / self.total)
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r[{bar}] {step}/{self.total} {text}\033[K")
        self.stream.flush()
        self._drawn = True

    def clear(self) -> None:
        """Erase the bar so a log line can be printed cleanly; the next update redraws it."""
        if self.enabled and self._drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._drawn = False
