"""A search's records and its run directory, below both the search and the reports.

:class:`Trial` is the one trial record (the trainer's result kept whole);
:class:`Run` holds a search's steps, contraction, final model and cost;
:class:`RunDir` is the only code that knows a run directory's file names. The
search writes a run through it, ``show`` and ``plot`` read it back.
"""
from .logfile import RunLogError
from .run import AXES, SEED_TRIAL, Clock, Contraction, Cost, PathPoint, Run, RunInfo, Step
from .rundir import RUN_LOG_NAME, RunDir, RunLock, load_run
from .status import RunStatus, StopReason, TrialStatus
from .trial import ModelRecord, Trial

__all__ = ["AXES", "RUN_LOG_NAME", "SEED_TRIAL", "Clock", "Contraction", "Cost", "ModelRecord", "PathPoint",
           "Run", "RunDir", "RunInfo", "RunLock", "RunLogError", "RunStatus", "Step", "StopReason", "Trial",
           "TrialStatus", "load_run"]
