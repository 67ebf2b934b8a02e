"""The running search's ``report.html``, rewritten after every finished training and every step.

The page is drawn from the run log just saved (what ``x3dsearch report`` reads
too), plus what only the live search knows: the table of the trials in
training and the search's ETA. A page that cannot be written is logged and
skipped: a report is never worth stopping a search for.
"""
from __future__ import annotations

from pathlib import Path

from ..report.html import LiveTable, write_report
from ..utils.fmt import format_top1
from ..utils.logging import get_logger
from .trials import TrialRunner

log = get_logger("search")


class LiveReport:
    """Writes ``report.html`` into the run directory, with the trial runner's live table."""

    def __init__(self, run_dir: Path, trials: TrialRunner):
        self.run_dir = run_dir
        self.trials = trials
        self._warned = False

    def live(self) -> LiveTable | None:
        table = self.trials.live_table
        if table is None:
            return None
        header = ("axis", "model", "GFLOPs", "ratio", "status", "top-1", table.score_title)
        rows = tuple((r.axis, r.model, f"{r.gflops:.4f}", f"x{r.ratio:.2f}" if r.ratio is not None else "",
                      f"{r.status} {r.detail}".strip(), format_top1(r.top1), r.score or "-")
                     for r in table.rows.values())
        return LiveTable(table.title, header, rows, table.lines()[-1].strip())

    def write(self) -> None:
        try:
            write_report(self.run_dir, self.live())
        except Exception as exc:  # noqa: BLE001 - any failure to draw a page must leave the search running
            if not self._warned:
                log.warning("report.html not written: %s: %s", type(exc).__name__, exc)
                self._warned = True
