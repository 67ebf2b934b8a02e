"""A search's run directory: the one place that knows its file names.

| path                  | written by the search                                       |
| --------------------- | ----------------------------------------------------------- |
| ``config.yaml``       | every setting, resolved (a resume must not change them)      |
| ``state.json``        | the whole :class:`Run`, after every trial result             |
| ``expansion_path.yaml`` | the run log read by ``show`` and ``plot``                  |
| ``final_model.yaml``  | the final model, for ``x3dsearch train --model``             |
| ``frontier.png``      | ``x3dsearch plot`` of the run (drawn by the command layer)   |
| ``report.html``       | one page for a browser, after every training and step        |
| ``search.log``        | everything shown, plus Ray's warnings                        |
| ``candidates/<name>/``| one training folder per trial                                |
| ``trials/``           | Ray Tune's storage, one experiment per step                  |
| ``.lock``             | held by the one process working on the run                   |
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import X3DSearchError
from ..model_file import save_model_file
from ..utils.logging import get_logger
from ..utils.io import atomic_write_text, atomic_write_yaml, read_yaml
from .lock import RunLock, held
from .logfile import RunLogError, dump_log, from_log
from .run import Run, RunInfo
from .statefile import load_state, save_state
from .trial import Trial

CONFIG_NAME = "config.yaml"
STATE_NAME = "state.json"
RUN_LOG_NAME = "expansion_path.yaml"
FINAL_MODEL_NAME = "final_model.yaml"
FRONTIER_NAME = "frontier.png"
REPORT_NAME = "report.html"
SEARCH_LOG_NAME = "search.log"
CANDIDATES_DIR = "candidates"
TRIALS_DIR = "trials"
log = get_logger("search")
#: What stays in ``candidates/`` of a finished trial: ``all`` (its checkpoint too), ``models`` (its
#: model.pt, results and outcomes: the default) or ``chosen`` (model.pt only for the models kept).
KEEP = ("all", "models", "chosen")


class RunDir:
    """Paths and file formats of one run directory (new, running, interrupted or finished)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # --- paths ------------------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.path / CONFIG_NAME

    @property
    def state(self) -> Path:
        return self.path / STATE_NAME

    @property
    def log(self) -> Path:
        return self.path / RUN_LOG_NAME

    @property
    def final_model(self) -> Path:
        return self.path / FINAL_MODEL_NAME

    @property
    def frontier(self) -> Path:
        return self.path / FRONTIER_NAME

    @property
    def report(self) -> Path:
        return self.path / REPORT_NAME

    @property
    def search_log(self) -> Path:
        return self.path / SEARCH_LOG_NAME

    @property
    def trials(self) -> Path:
        return self.path / TRIALS_DIR

    def trial_dir(self, name: str) -> Path:
        """The training folder of a trial (the trainer owns what is inside)."""
        return self.path / CANDIDATES_DIR / name

    def files(self) -> list[Path]:
        """What a search leaves, for its closing message."""
        names = (self.config, self.state, self.log, self.final_model, self.frontier, self.report, self.search_log,
                 self.trials)
        return [p for p in names if p.exists()]

    # --- checks ---------------------------------------------------------------------------------
    def check_new(self) -> None:
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise X3DSearchError(f"run dir {self.path} already exists and is not empty; continue it with "
                                 f"`x3dsearch resume {self.path}` or pick another --run-dir")

    # --- config.yaml ----------------------------------------------------------------------------
    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_yaml(self.config, config)

    def read_config(self) -> dict[str, Any]:
        if not self.path.is_dir():
            raise X3DSearchError(f"run dir {self.path} does not exist")
        if not self.config.is_file():
            raise X3DSearchError(f"{self.path} is not a search run (no {CONFIG_NAME})")
        data = read_yaml(self.config, error=X3DSearchError)
        if not isinstance(data, dict) or "space" not in data or "target_gflops" not in data:
            raise X3DSearchError(f"{self.config} is not a search config")
        return data

    # --- the run: state.json and the log --------------------------------------------------------
    def load(self, info: RunInfo) -> Run:
        """The search's state, to continue it."""
        return load_state(self.state, info)

    def save(self, run: Run, live_wall_s: float = 0.0, interrupted: bool = False) -> None:
        """``state.json`` and the log, each atomically; the log's cost includes the live session."""
        run.cost = run.measure_cost(live_wall_s)
        save_state(self.state, run, live_wall_s)
        atomic_write_text(self.log, dump_log(run, interrupted))

    def read_log(self, require_evaluated: bool = True) -> Run:
        """The run as its log tells it; a run with no evaluated candidate is refused as empty."""
        try:
            run = from_log(read_yaml(self.log, error=RunLogError), self.log, run_dir=self.path)
        except RunLogError as exc:
            hint = f"; `x3dsearch resume {self.path}` writes it again from {STATE_NAME}" if self.state.is_file() else ""
            raise RunLogError(f"{exc}{hint}") from None
        if require_evaluated and not run.evaluated_candidates():
            raise RunLogError(f"{self.path}: the run is empty: no candidate has been evaluated yet ({run.progress})")
        return run

    def repair_log(self, run: Run) -> bool:
        """Write ``expansion_path.yaml`` again from the state when it is missing or damaged (it is derived
        from the state, which a resume has just read); returns whether it did."""
        try:
            self.read_log(require_evaluated=False)
            return False
        except RunLogError as exc:
            log.warning("%s; writing it again from %s", str(exc).split("; `x3dsearch resume")[0], STATE_NAME)
        atomic_write_text(self.log, dump_log(run))
        return True

    def write_final_model(self, trial: Trial, num_classes: int, target: float, unit: str = "GFLOPs") -> None:
        target_key = "target_ms" if unit == "ms" else "target_gflops"
        extra = {"latency_ms": trial.latency_ms} if trial.latency_ms is not None else {}
        save_model_file(self.final_model, trial.model.factors, num_classes, gflops=trial.gflops,
                        params_m=trial.params_m, top1=trial.top1, heldout_top1=trial.heldout, **extra,
                        **{target_key: target}, source="x3dsearch expand")

    def lock(self) -> RunLock:
        return RunLock(self.path)

    def in_use(self) -> bool:
        """Whether a process holds the run's lock now (a search working on it): see :func:`.lock.held`."""
        return held(self.path)

    @classmethod
    def find(cls, path: str | Path) -> "RunDir":
        """A run directory, or its ``expansion_path.yaml`` given directly, for readers."""
        path = Path(path)
        if path.is_file() and path.name == RUN_LOG_NAME:
            return cls(path.parent)
        if not path.exists():
            raise RunLogError(f"{path}: no such directory")
        if not path.is_dir() or not (path / RUN_LOG_NAME).is_file():
            raise RunLogError(f"{path} is not a run directory (no {RUN_LOG_NAME})")
        return cls(path)


def load_run(run_dir: str | Path, require_evaluated: bool = True) -> Run:
    """Parse and validate a run's log; a run with no evaluated candidate is refused as empty."""
    return RunDir.find(run_dir).read_log(require_evaluated)
