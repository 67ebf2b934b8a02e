"""How durations and accuracies read on a terminal, the same everywhere."""
from __future__ import annotations


def format_duration(seconds: float | None) -> str:
    """``1h02m`` past an hour, ``2m03s`` past a minute, else ``12.3s``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{max(0.0, float(seconds)):.1f}s"
    minutes, secs = divmod(max(0, int(round(seconds))), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def format_top1(value: float | None) -> str:
    """A top-1 in percent, ``-`` before it is measured."""
    return "-" if value is None else f"{value:.1f}%"


def score_spec(criterion: str | None) -> str:
    """The format of a score (and of margins in its unit): points to 0.1, a mean log-probability to 0.001
    (a step's candidates differ by a few hundredths of it)."""
    return ".3f" if criterion == "log-prob" else ".1f"
