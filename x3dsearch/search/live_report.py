"""The running search's ``report.html``, rewritten after every finished training and every step.

The page is drawn from the run log just saved (what ``x3dsearch report`` reads
too), plus what only the live search knows: the table of the trials in
training and the search's ETA. Drawing takes a second or so on a busy CPU, so
one background thread draws while the search goes on; requests that arrive
while it draws collapse into the latest. A page that cannot be written is
logged and skipped: a report is never worth stopping a search for.
"""
from __future__ import annotations

import threading
from pathlib import Path

from ..report.html import LiveTable, write_report
from ..utils.fmt import format_top1
from ..utils.logging import get_logger
from .trials import TrialRunner

log = get_logger("search")
#: How long the end of a session waits for its last page.
CLOSE_TIMEOUT_S = 120.0


class LiveReport:
    """Writes ``report.html`` into the run directory, with the trial runner's live table."""

    def __init__(self, run_dir: Path, trials: TrialRunner):
        self.run_dir = run_dir
        self.trials = trials
        self._wake = threading.Condition()
        self._request: tuple[LiveTable | None] | None = None  # the latest page asked for, not yet drawn
        self._closed = False
        self._warned = False
        self._thread = threading.Thread(target=self._loop, name="report.html", daemon=True)
        self._thread.start()

    def live(self) -> LiveTable | None:
        """The live table as it stands now (taken on the search's thread, drawn later)."""
        table = self.trials.live_table
        if table is None:
            return None
        header = ("axis", "model", "GFLOPs", "ratio", "status", "top-1", table.score_title)
        rows = tuple((r.axis, r.model, f"{r.gflops:.4f}", f"x{r.ratio:.2f}" if r.ratio is not None else "",
                      f"{r.status} {r.detail}".strip(), format_top1(r.top1), r.score or "-")
                     for r in table.rows.values())
        return LiveTable(table.title, header, rows, table.lines()[-1].strip())

    def write(self) -> None:
        """Ask for a page of the run as just saved; returns at once."""
        live = self.live()
        with self._wake:
            self._request = (live,)
            self._wake.notify()

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Draw the last page asked for (the run's final state), then stop the thread."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("report.html: the last page was not written within %.0f s", timeout)

    def _loop(self) -> None:
        while True:
            with self._wake:
                while self._request is None and not self._closed:
                    self._wake.wait()
                if self._request is None:
                    return
                (live,) = self._request
                self._request = None
            self._draw(live)

    def _draw(self, live: LiveTable | None) -> None:
        try:
            write_report(self.run_dir, live)
        except Exception as exc:  # noqa: BLE001 - any failure to draw a page must leave the search running
            if not self._warned:
                log.warning("report.html not written: %s: %s", type(exc).__name__, exc)
                self._warned = True
