"""Ray Tune execution of trials: the trainable, and one Tune experiment per batch of trials.

Each trial calls :func:`x3dsearch.train.train_and_evaluate` with a stable
``out_dir`` under the run directory. The trainer resumes from its own
checkpoint there and returns the stored result of a finished folder, which is
what makes a search resumable after ``kill -9``: a new experiment simply runs
the unfinished trials again, and a trial retried by ``FailureConfig`` resumes
from the same checkpoint. Tune hears every epoch's metrics but keeps no copy
of the checkpoint (it would double the run directory for nothing): on a
multi-node cluster the run directory, like the data, must be on a filesystem
every node sees, and a trial on a node that cannot see the data says so.
"""
from __future__ import annotations

import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Protocol

from ..budget import Budget
from ..errors import X3DSearchError
from ..factors import Factors
from ..status import TrialStatus
from ..train.result import TrainResult
from ..train.heldout import evaluate_split
from ..train.trainer import train_and_evaluate
from .cluster import one_line, this_node

#: Keys the trial function adds to what it reports.
FINAL = "x3d_final"
SESSION_START = "x3d_session_start"
SESSION_END = "x3d_session_end"
NODE = "x3d_node"


@dataclass(frozen=True)
class Job:
    """One trial to train: a Tune grid point (plain values, so Tune can store it)."""

    name: str
    factors: dict[str, Any]
    out_dir: str  # absolute
    seed: int
    home: str     # the run (or calibration) directory out_dir lies in, absolute
    init: str | None = None  # the model.pt it starts from, grown to its factors (absolute); None: scratch


@dataclass(frozen=True)
class TrialContext:
    """What every trial of an experiment shares."""

    data: str
    budget: dict[str, Any]
    threads: int
    device: str


class TrialListener(Protocol):
    """Hears a trial's life as Tune reports it (on the driver, while the experiment runs)."""

    def started(self, name: str) -> None: ...

    def progressed(self, name: str, fraction: float | None) -> None: ...

    def finished(self, name: str, result: TrainResult | None, error: str | None,
                 session: list[float] | None, node: str | None) -> None: ...


# --- the trial function (runs in a Ray worker) -------------------------------------------------
def warm_worker() -> None:
    """Setup hook of the workers of a local cluster: Ray starts them ahead of need, so the
    trainer's imports (torch, ~2 s) happen while they idle instead of when each step's trials
    start. Joined clusters are left as they are (their nodes may hold many idle workers)."""
    import x3dsearch.train.trainer  # noqa: F401


def train_trial(config: dict[str, Any]) -> None:
    """Tune function trainable: train one trial, report every epoch with its checkpoint."""
    from ray import tune  # in the worker: Ray is imported by then, and the driver sets its environment first

    job, ctx = Job(**config["job"]), TrialContext(**config["ctx"])
    out_dir = Path(job.out_dir)
    started, node = time.time(), this_node()

    def report(metrics: dict, directory: Path) -> None:
        # "done" would make Tune stop the trial before the final report; status/error come last.
        payload = {k: v for k, v in metrics.items() if k not in ("status", "error", "done")}
        tune.report({**payload, SESSION_START: started, NODE: node})

    try:
        check_visible(ctx.data, Path(job.home), node)
        result = train_and_evaluate(Factors.from_dict(job.factors), ctx.data, Budget.from_dict(ctx.budget), job.seed,
                                    out_dir, resume=True, report=report, threads=ctx.threads, device=ctx.device,
                                    init=Path(job.init) if job.init else None, progress=False)
    except Exception as exc:
        tune.report({FINAL: True, "status": str(TrialStatus.FAILED), "error": one_line(exc), SESSION_START: started,
                     SESSION_END: time.time(), NODE: node})
        raise
    tune.report({FINAL: True, **result.to_dict(), SESSION_START: started, SESSION_END: time.time(), NODE: node})
    if result.status == TrialStatus.FAILED:
        # Raise so FailureConfig retries it (a crash may be transient); the trainer trains a stored
        # failure again.
        raise RuntimeError(result.error or "training failed")


def check_visible(data: str, home: Path, node: str) -> None:
    """A trial on a node that cannot see the data or the run directory fails with one line saying so."""
    for what, path in (("data root", Path(data)), ("run directory", home)):
        if not path.is_dir():
            raise X3DSearchError(f"{what} {path} is not visible on node {node} ({socket.gethostname()}): on a Ray "
                                 f"cluster the data and the run directory must be on a filesystem every node sees")


def evaluate_heldout(out_dir: Path, data: str, placement: tuple[float, float]) -> float | None:
    """Top-1 of a finished training on the dataset's test split, scored where trials run (a Ray task with a
    trial's resources); ``test_outcomes.json`` is stored in its folder and reused."""
    import ray  # the session has started Ray

    cpus, gpus = placement
    task = ray.remote(num_cpus=cpus, num_gpus=gpus)(_heldout_top1)
    return ray.get(task.remote(str(out_dir), data, max(1, int(cpus)), "cuda" if gpus > 0 else "cpu"))


def _heldout_top1(out_dir: str, data: str, threads: int, device: str) -> float | None:
    return evaluate_split(out_dir, data, "test", threads=threads, device=device).top1


# --- what Tune says about a trial --------------------------------------------------------------
def _ending(metrics: dict[str, Any] | None, error: str | None,
            ) -> tuple[TrainResult | None, str | None, list[float] | None, str | None]:
    """The trainer's result (as it returned it), the error, the [start, end] of the training call, and the
    node it ran on (of its last report: a trial retried elsewhere names the node that ran it last)."""
    metrics = metrics or {}
    session = None
    if SESSION_START in metrics:
        session = [float(metrics[SESSION_START]), float(metrics.get(SESSION_END) or metrics.get("timestamp")
                                                        or time.time())]
    node = metrics.get(NODE) if isinstance(metrics.get(NODE), str) else None
    if not metrics.get(FINAL):
        return None, error or "the trial ended without a result", session, node
    try:
        result = TrainResult.from_dict({"status": TrialStatus.FAILED, **metrics})
    except (TypeError, ValueError) as exc:  # a report that is not a trainer's result is a failure, not a crash
        return None, error or f"the trial's final report is not a training result ({one_line(exc)})", session, node
    if error is not None and result.status == TrialStatus.OK:  # Tune saw the trial raise after its report
        result.status = TrialStatus.FAILED
    if result.status != TrialStatus.OK:
        result.error = result.error or error
    return result, result.error, session, node


def _error_text(exc: BaseException | None) -> str | None:
    if exc is None:
        return None
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return one_line(cause)
    name = type(exc).__name__
    if "ActorDied" in name or "ActorError" in name:
        return "the trial process died (killed for memory, or crashed)"
    return one_line(exc)


def _pickled_error(trial: Any) -> str | None:
    path = getattr(trial, "pickled_error_file", None)
    if not path or not Path(path).is_file():
        return None
    try:
        import ray.cloudpickle as cloudpickle  # the driver has imported Ray by now

        with open(path, "rb") as f:
            return _error_text(cloudpickle.load(f))
    except Exception:  # noqa: BLE001 - an unreadable error file only loses detail
        return None


def _trial_name(trial: Any) -> str:
    return trial.config["job"]["name"]


def _dirname(name: str) -> str:
    """Tune's folder for a trial: its name, flat (a calibration names trials ``<budget>/<model>-s<seed>``)."""
    return name.replace("/", "--")


def _trial_dirname(trial: Any) -> str:
    return _dirname(_trial_name(trial))


def _events_callback(base: type) -> type:
    """The Tune callback class that passes trial events to a listener. Tune pickles its callbacks
    with the experiment's state; the listener (the live table, its terminal stream) stays out of
    that pickle, since an experiment is never restored from it."""

    class Events(base):
        def __init__(self, listener: TrialListener):
            self.listener = listener
            self.finished: set[str] = set()

        def __getstate__(self) -> dict[str, Any]:
            return {"finished": set(self.finished)}

        def __setstate__(self, state: dict[str, Any]) -> None:
            # A copy restored from Tune's experiment state is never called back: only the driver's is.
            self.listener, self.finished = None, state["finished"]  # type: ignore[assignment]

        def finish(self, job_name: str, metrics: dict[str, Any] | None, error: str | None) -> None:
            self.finished.add(job_name)
            self.listener.finished(job_name, *_ending(metrics, error))

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.listener.started(_trial_name(trial))

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            if not result.get(FINAL):
                progress = result.get("progress")
                self.listener.progressed(_trial_name(trial), progress if isinstance(progress, float) else None)

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.finish(_trial_name(trial), trial.last_result, None)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            error = (trial.last_result or {}).get("error") or _pickled_error(trial) or \
                "the trial crashed (see search.log)"
            self.finish(_trial_name(trial), trial.last_result, error)

    return Events


def run_experiment(name: str, jobs: list[Job], ctx: TrialContext, storage: Path, cpus_per_trial: float,
                   gpus_per_trial: float, max_failures: int, listener: TrialListener) -> None:
    """Run ``jobs`` as one Tune experiment; ``listener`` hears each trial start, progress and finish."""
    from ray import tune  # the session imported Ray after setting its environment

    events = _events_callback(tune.Callback)(listener)
    trainable = tune.with_resources(train_trial, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    config = {"ctx": asdict(ctx), "job": tune.grid_search([asdict(job) for job in jobs])}
    tuner = tune.Tuner(
        trainable, param_space=config,
        tune_config=tune.TuneConfig(reuse_actors=True, trial_name_creator=_trial_name,
                                    trial_dirname_creator=_trial_dirname),
        run_config=tune.RunConfig(name=name, storage_path=str(storage), verbose=0, callbacks=[events],
                                  failure_config=tune.FailureConfig(max_failures=max_failures)))
    grid = tuner.fit()
    record_results((grid[i] for i in range(len(grid))), jobs, events)


def record_results(results: Iterable[Any], jobs: list[Job], events: Any) -> None:
    """Finish every trial the callbacks missed from Tune's results, whatever their shape.

    Tune returns a result without a config (and without metrics) for a trial that failed before
    it reported, e.g. when its worker could not start: such a trial is named from its folder in
    Tune's storage and recorded as failed, so the step goes on. A result that names no trial of
    this experiment is left out; the runner records a trial that never finished as failed.
    """
    by_dirname = {_dirname(job.name): job.name for job in jobs}
    for result in results:
        metrics = getattr(result, "metrics", None)
        metrics = metrics if isinstance(metrics, dict) else None
        name = result_job_name(metrics, getattr(result, "path", None), by_dirname)
        if name is None or name in events.finished:
            continue
        error = _error_text(getattr(result, "error", None))
        if error is None and not (metrics or {}).get(FINAL):
            error = "the trial ended without a result (Tune returned no metrics for it)"
        events.finish(name, metrics, error)


def result_job_name(metrics: dict[str, Any] | None, path: str | None, by_dirname: dict[str, str]) -> str | None:
    """The job a Tune result is about: from the config the trial reported with, else its folder's name."""
    config = (metrics or {}).get("config")
    job = config.get("job") if isinstance(config, dict) else None
    if isinstance(job, dict) and isinstance(job.get("name"), str):
        return job["name"]
    if path:
        return by_dirname.get(PurePosixPath(str(path).rstrip("/")).name)
    return None
