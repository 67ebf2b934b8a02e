"""Reports on search runs: read ``expansion_path.yaml``, draw the frontier, summarise the path and cost."""
from .plot import find_artists, pareto_frontier, plot_runs
from .runlog import RUN_LOG_NAME, RunLog, RunLogError, load_run
from .table import format_summary, summarize

__all__ = ["RUN_LOG_NAME", "RunLog", "RunLogError", "find_artists", "format_summary", "load_run",
           "pareto_frontier", "plot_runs", "summarize"]
