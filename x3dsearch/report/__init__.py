"""Reports on search runs: draw the frontier, summarise the path and cost (runs are read by
:mod:`x3dsearch.runlog`)."""
from .plot import find_artists, pareto_frontier, plot_runs
from .table import format_summary, summarize

__all__ = ["find_artists", "format_summary", "pareto_frontier", "plot_runs", "summarize"]
