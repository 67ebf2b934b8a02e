"""What a running search shows: a live table per step and an ETA for the whole search.

On a terminal the table is redrawn in place; elsewhere (CI logs, pipes) each
finished trial prints one line and the full table follows at the end of the
step. Everything shown also goes to ``search.log``.
"""
from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from typing import Callable, TextIO

from ..status import TrialStatus
from ..utils.fmt import format_duration, format_top1
from ..utils.logging import LOGGER_NAME, get_logger

log = get_logger("search")
FINISHED = tuple(s for s in TrialStatus if s.finished)


def file_log(text: str, level: int = logging.INFO) -> None:
    """Log to search.log only (the terminal shows the same thing in the live table)."""
    logger = logging.getLogger(LOGGER_NAME)
    record = logger.makeRecord(logger.name, level, __file__, 0, text, (), None)
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


@dataclass
class Row:
    name: str
    axis: str
    model: str
    gflops: float
    ratio: float | None
    status: str = str(TrialStatus.PENDING)
    top1: float | None = None
    detail: str = ""
    score: str = ""  # the criterion's value [90% interval] once the trial is validated


class LiveTable:
    """One experiment's trials: axis, model, GFLOPs, status, top-1, score, and the search ETA."""

    def __init__(self, title: str, rows: list[Row], eta: Callable[[], float | None], stream: TextIO | None = None,
                 live: bool | None = None, min_interval: float = 0.5, score_title: str = "score [90% CI]"):
        self.title = title
        self.score_title = score_title
        self.rows = {row.name: row for row in rows}
        self.eta = eta
        self.stream = stream or sys.stderr
        self.live = (hasattr(self.stream, "isatty") and self.stream.isatty()) if live is None else live
        self.min_interval = min_interval
        self._drawn_lines = 0
        self._last_draw = 0.0
        self.started = time.monotonic()
        self._emit(self.title)
        if self.live:
            self._draw(force=True)

    # --- rendering -----------------------------------------------------------------------
    def _eta_text(self) -> str:
        seconds = self.eta()
        return "ETA --" if seconds is None else f"search ETA {format_duration(seconds)}"

    def lines(self) -> list[str]:
        out = [f"  {'axis':<12} {'model':<28} {'GFLOPs':>8} {'ratio':>6}  {'status':<16} {'top-1':>6}  "
               f"{self.score_title}"]
        for row in self.rows.values():
            ratio = f"x{row.ratio:.2f}" if row.ratio is not None else ""
            status = f"{row.status} {row.detail}".strip()
            out.append(f"  {row.axis:<12} {row.model:<28} {row.gflops:>8.4f} {ratio:>6}  {status:<16.16} "
                       f"{format_top1(row.top1):>6}  {row.score}".rstrip())
        done = sum(TrialStatus.read(r.status) in FINISHED for r in self.rows.values())
        out.append(f"  {done}/{len(self.rows)} done, {format_duration(time.monotonic() - self.started)} "
                   f"elapsed, {self._eta_text()}")
        return out

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < self.min_interval:
            return
        self._last_draw = now
        lines = self.lines()
        if self._drawn_lines:
            self.stream.write(f"\033[{self._drawn_lines}F")
        self.stream.write("".join(f"{line}\033[K\n" for line in lines))
        self.stream.flush()
        self._drawn_lines = len(lines)

    def _emit(self, text: str) -> None:
        log.info("%s", text)

    # --- events --------------------------------------------------------------------------
    def update(self, name: str, status: str, top1: float | None = None, detail: str = "",
               error: str | None = None, score: str | None = None) -> None:
        row = self.rows.get(name)
        if row is None:
            return
        row.status, row.top1, row.detail, row.score = status, top1, detail, score or ""
        if TrialStatus.read(status) in FINISHED:
            what = f"top-1 {format_top1(top1)}" if status == TrialStatus.OK else (error or status)
            criterion = self.score_title.split(" ")[0]
            if score and criterion == "top1":  # the score is top-1 itself: show its interval once
                what = f"top-1 {score}"
            elif score:
                what += f", {criterion} {score}"
            text = (f"  {row.axis} {row.model} ({row.gflops:.4f} GFLOPs): {status}, {what}; "
                    f"{self._eta_text()}")
            if self.live:
                file_log(text)
                self._draw(force=True)
            else:
                log.info("%s", text)
        elif self.live:
            self._draw()

    def close(self, footer: str | None = None) -> None:
        if self.live:
            self._draw(force=True)
            for line in self.lines():
                file_log(line)
        else:
            for line in self.lines():
                log.info("%s", line)
        if footer:
            log.info("%s", footer)


class EtaModel:
    """Trial time as a + b x GFLOPs, fitted on finished trials of this search.

    Tiny models are dominated by decoding and evaluation (a), larger ones by
    compute (b x GFLOPs, i.e. measured clips/s x GFLOPs); the search ETA sums the
    predicted remaining trials and divides by the trials that run at once.
    """

    def __init__(self, slots: int):
        self.slots = max(1, slots)
        self.points: list[tuple[float, float]] = []

    def add(self, gflops: float, seconds: float | None) -> None:
        if seconds is not None and seconds > 0:
            self.points.append((gflops, seconds))

    def trial_seconds(self, gflops: float) -> float | None:
        if not self.points:
            return None
        xs = [p[0] for p in self.points]
        ys = [p[1] for p in self.points]
        n = len(xs)
        mean_x, mean_y = sum(xs) / n, sum(ys) / n
        var = sum((x - mean_x) ** 2 for x in xs)
        if n < 2 or var <= 1e-12 * max(mean_x, 1e-9) ** 2:
            return mean_y * max(gflops / mean_x, 1.0) if mean_x > 0 else mean_y
        b = max(0.0, sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / var)
        a = max(0.0, mean_y - b * mean_x)
        return a + b * gflops

    def eta(self, pending: list[float], running: list[tuple[float, float]]) -> float | None:
        """``pending``: GFLOPs of trials not started; ``running``: (GFLOPs, seconds elapsed)."""
        if not self.points:
            return None
        work = sum(self.trial_seconds(g) or 0.0 for g in pending)
        work += sum(max(0.0, (self.trial_seconds(g) or 0.0) - elapsed) for g, elapsed in running)
        return work / self.slots


def future_trials(current: float, target: float, rate: float, axes: int, tolerance: float,
                  gflops: float | None = None) -> list[float]:
    """GFLOPs of the trials the remaining steps will probably train (the plan for the ETA).

    ``current`` and ``target`` are in the search's complexity unit, which decides how many steps
    remain; ``gflops`` is the GFLOPs at ``current`` (``current`` itself when the unit is GFLOPs).
    The trial-time model is in GFLOPs, so the plan scales GFLOPs by the same growth per step.
    """
    out: list[float] = []
    scale = (gflops if gflops is not None else current) / current if current > 0 else 1.0
    value = current
    while value < target * (1 - tolerance) and len(out) < 1000:
        value *= rate * 0.97
        out.extend([value * scale] * axes)
    if value > target:
        out.append(target * scale)  # the contraction
    return out
