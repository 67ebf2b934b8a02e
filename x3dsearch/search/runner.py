"""Ray Tune execution: one experiment per step, one trial per candidate, Ray started once per search.

Each trial calls :func:`x3dsearch.train.train_and_evaluate` with a stable
``out_dir`` under the run directory. The trainer resumes from its own
``checkpoint.pt`` there and returns a stored result for a finished folder,
which is what makes a search resumable after ``kill -9``: a new experiment
simply runs the unfinished candidates again. Every epoch is also reported to
Tune with that checkpoint, and a trial retried by ``FailureConfig`` on a node
that lacks the file starts from Tune's copy. On a multi-node cluster the run
directory must be on a filesystem every node sees.
"""
from __future__ import annotations

import logging
import math
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import X3DSearchError
from ..utils.logging import get_logger

log = get_logger("search")

#: Keys the trial function adds to what it reports.
FINAL = "x3d_final"
SESSION_START = "x3d_session_start"
SESSION_END = "x3d_session_end"

# Quiet Tune's console output (our own table replaces it), and let Ctrl-C reach the search as
# KeyboardInterrupt (Tune's own handler would end the experiment as if it had finished). Must be
# set before ray.tune is imported.
_RAY_ENV = {"RAY_AIR_NEW_OUTPUT": "0", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1", "TUNE_DISABLE_SIGINT_HANDLER": "1"}


@dataclass(frozen=True)
class Job:
    name: str
    factors: dict[str, Any]
    out_dir: str  # absolute on this run


@dataclass(frozen=True)
class TrialContext:
    """What every trial of the search shares."""

    data: str
    budget: dict[str, Any]
    seed: int
    threads: int
    device: str


@dataclass
class Outcome:
    """How one trial ended, as the search records it."""

    status: str                   # ok | diverged | failed
    result: dict[str, Any] = field(default_factory=dict)  # TrainResult.to_dict() when the trainer returned
    error: str | None = None
    session: list[float] | None = None  # [start, end] wall clock of the training call


Listener = Callable[[str, str, dict[str, Any]], None]  # (event, job name, payload)


# --- the trial function (runs in a Ray worker) -------------------------------------------------
def warm_worker() -> None:
    """Setup hook of the workers of a local cluster: Ray starts them ahead of need, so the
    trainer's imports (torch, ~2 s) happen while they idle instead of when each step's trials
    start. Joined clusters are left as they are (their nodes may hold many idle workers)."""
    import x3dsearch.train  # noqa: F401



def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}".rstrip(": ")


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def train_candidate(config: dict[str, Any]) -> None:
    """Tune function trainable: train one candidate, report every epoch with its checkpoint."""
    from ray import tune

    from ..budget import Budget
    from ..factors import Factors
    from ..train import TrainResult, train_and_evaluate
    from ..train.checkpoint import CHECKPOINT_NAME

    job, ctx = config["job"], config["ctx"]
    out_dir = Path(job["out_dir"])
    started = time.time()
    restored = tune.get_checkpoint()
    if restored is not None and not (out_dir / CHECKPOINT_NAME).is_file():
        with restored.as_directory() as folder:
            if (Path(folder) / CHECKPOINT_NAME).is_file():
                out_dir.mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(folder) / CHECKPOINT_NAME, out_dir / CHECKPOINT_NAME)

    def report(metrics: dict, directory: Path) -> None:
        checkpoint_file = Path(directory) / CHECKPOINT_NAME
        # "done" would make Tune stop the trial before the final report; status/error come last.
        payload = {k: v for k, v in metrics.items() if k not in ("status", "error", "done")}
        payload[SESSION_START] = started
        if not checkpoint_file.is_file():
            tune.report(payload)
            return
        with tempfile.TemporaryDirectory(prefix="x3d-ckpt-", dir=out_dir) as tmp:
            _link_or_copy(checkpoint_file, Path(tmp) / CHECKPOINT_NAME)
            tune.report(payload, checkpoint=tune.Checkpoint.from_directory(tmp))

    try:
        result: TrainResult = train_and_evaluate(
            Factors.from_dict(job["factors"]), ctx["data"], Budget.from_dict(ctx["budget"]), ctx["seed"],
            out_dir, resume=True, report=report, threads=ctx["threads"], device=ctx["device"], progress=False)
    except Exception as exc:
        tune.report({FINAL: True, "status": "failed", "error": one_line(exc), SESSION_START: started,
                     SESSION_END: time.time()})
        raise
    tune.report({FINAL: True, **result.to_dict(), SESSION_START: started, SESSION_END: time.time()})
    if result.status == "failed":
        # Raise so FailureConfig retries it (a crash may be transient); the trainer trains a stored
        # failure again.
        raise RuntimeError(result.error or "training failed")


# --- outcomes ---------------------------------------------------------------------------------
def _outcome_from(metrics: dict[str, Any] | None, error: str | None) -> Outcome:
    metrics = metrics or {}
    session = None
    if SESSION_START in metrics:
        session = [float(metrics[SESSION_START]), float(metrics.get(SESSION_END) or metrics.get("timestamp")
                                                        or time.time())]
    if metrics.get(FINAL):
        status = metrics.get("status", "failed")
        if error is not None and status == "ok":
            status = "failed"
        result = {k: v for k, v in metrics.items() if k in _RESULT_KEYS}
        return Outcome(status=status, result=result, error=metrics.get("error") or (error if status != "ok"
                                                                                     else None),
                       session=session)
    return Outcome(status="failed", error=error or "the trial ended without a result", session=session)


_RESULT_KEYS = ("status", "error", "top1", "top5", "train_loss", "wall_time_s", "train_clips_per_s",
                "peak_memory_mb", "clips_seen", "train_macs", "gflops", "params_m", "epochs_done", "bad_videos")


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
        import ray.cloudpickle as cloudpickle

        with open(path, "rb") as f:
            return _error_text(cloudpickle.load(f))
    except Exception:  # noqa: BLE001 - an unreadable error file only loses detail
        return None


# --- Ray --------------------------------------------------------------------------------------
@dataclass
class Cluster:
    """The Ray cluster a search runs on (started locally or joined)."""

    address: str | None
    cpus: float
    gpus: float
    start_s: float

    def slots(self, cpus_per_trial: float, gpus_per_trial: float) -> int:
        by_cpu = math.floor(self.cpus / cpus_per_trial + 1e-9) if cpus_per_trial > 0 else 10 ** 6
        by_gpu = math.floor(self.gpus / gpus_per_trial + 1e-9) if gpus_per_trial > 0 else 10 ** 6
        return max(1, min(by_cpu, by_gpu))


def check_reachable(address: str) -> None:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise X3DSearchError(f"--address must be HOST:PORT or auto, got '{address}'")
    try:
        with socket.create_connection((host, int(port)), timeout=3.0):
            pass
    except OSError as exc:
        raise X3DSearchError(f"cannot reach a Ray cluster at {address} ({exc.strerror or exc})") from None


def _local_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _local_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001
        return 0


def prepare_ray(address: str | None) -> None:
    """Environment Ray reads when it is first imported; call before anything imports ray.

    An explicit address is checked here, so an unreachable one fails before any work.
    """
    for key, value in _RAY_ENV.items():
        os.environ.setdefault(key, value)
    if address and address != "auto":
        check_reachable(address)
        _prefer_token_auth()


def start_ray(address: str | None) -> Cluster:
    """``ray.init`` once per search: local by default, or join ``HOST:PORT`` / ``auto``."""
    prepare_ray(address)
    started = time.monotonic()
    import ray

    kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                  configure_logging=True)
    # Trials share cores; OpenMP threads that spin while they wait make a multi-threaded trial
    # several times slower than a single-threaded one once cores are oversubscribed.
    env_vars = {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    try:
        if address:
            ray.init(address=address, runtime_env={"env_vars": env_vars}, **kwargs)
        else:
            # "local" always starts a private cluster: with no address Ray would join whatever
            # RAY_ADDRESS or the last `ray start` on this machine points to.
            ray.init(address="local", num_cpus=_local_cpus(), num_gpus=_local_gpus(),
                     runtime_env={"env_vars": env_vars,
                                  "worker_process_setup_hook": "x3dsearch.search.runner.warm_worker"}, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"at {address}" if address else "locally"
        raise X3DSearchError(f"cannot start or join a Ray cluster {where} ({one_line(exc)})") from None
    route_ray_logs(None)
    resources = ray.cluster_resources()
    return Cluster(address=address, cpus=float(resources.get("CPU", 0.0)), gpus=float(resources.get("GPU", 0.0)),
                   start_s=time.monotonic() - started)


def _has_auth_token() -> bool:
    return bool(os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
                or (Path.home() / ".ray" / "auth_token").is_file())


def _prefer_token_auth() -> None:
    """Clusters made by ``ray start`` use token authentication by default, but Ray sends the
    token for an explicit address only when RAY_AUTH_MODE=token, read when ray is first
    imported; a local token turns it on (a cluster without authentication accepts it too)."""
    if "RAY_AUTH_MODE" not in os.environ and _has_auth_token():
        os.environ["RAY_AUTH_MODE"] = "token"


def route_ray_logs(log_file: Path | None) -> None:
    """Ray's and Tune's own messages go to search.log, not the terminal."""
    for name in ("ray", "ray.tune", "ray.train"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                handler.setLevel(logging.CRITICAL + 1)
    if log_file is not None:
        ray_logger = logging.getLogger("ray")
        if not any(isinstance(h, logging.FileHandler) and Path(h.baseFilename) == Path(log_file).resolve()
                   for h in ray_logger.handlers):
            handler = logging.FileHandler(log_file, encoding="utf-8")
            handler.setLevel(logging.WARNING)
            handler.setFormatter(logging.Formatter("%(asctime)s RAY %(levelname)s %(name)s: %(message)s",
                                                   "%Y-%m-%d %H:%M:%S"))
            ray_logger.addHandler(handler)


def stop_ray(cluster: Cluster | None) -> None:
    if cluster is None:
        return
    import ray

    if ray.is_initialized():
        ray.shutdown()
    for handler in list(logging.getLogger("ray").handlers):
        if isinstance(handler, logging.FileHandler):
            logging.getLogger("ray").removeHandler(handler)
            handler.close()


def place_trials(cluster: Cluster, cpus_per_trial: float | None, gpus_per_trial: float | None,
                 ) -> tuple[float, float]:
    """Resources of one trial: one GPU each when the cluster has GPUs (and its CPUs shared among
    them), else one CPU each so trials run side by side. A trial that can never be scheduled
    would hang Tune forever, so it is refused here."""
    gpus = gpus_per_trial if gpus_per_trial is not None else (1.0 if cluster.gpus >= 1 else 0.0)
    cpus = cpus_per_trial
    if cpus is None:
        cpus = max(1.0, math.floor(cluster.cpus / max(cluster.gpus, 1.0))) if gpus > 0 else 1.0
    if cpus > cluster.cpus:
        raise X3DSearchError(f"--cpus-per-trial {cpus:g} is more than the cluster's {cluster.cpus:g} CPUs")
    if gpus > cluster.gpus:
        raise X3DSearchError(f"--gpus-per-trial {gpus:g} is more than the cluster's {cluster.gpus:g} GPUs")
    return cpus, gpus


def run_experiment(name: str, jobs: list[Job], ctx: TrialContext, storage: Path, cpus_per_trial: float,
                   gpus_per_trial: float, max_failures: int, listener: Listener) -> dict[str, Outcome]:
    """Run ``jobs`` as one Tune experiment; ``listener`` hears start/epoch/done events as they happen."""
    from ray import tune

    outcomes: dict[str, Outcome] = {}

    class _Events(tune.Callback):
        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            listener("start", trial.config["job"]["name"], {})

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            if not result.get(FINAL):
                listener("epoch", trial.config["job"]["name"], result)

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            job_name = trial.config["job"]["name"]
            outcomes[job_name] = _outcome_from(trial.last_result, None)
            listener("done", job_name, {"outcome": outcomes[job_name]})

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            job_name = trial.config["job"]["name"]
            error = (trial.last_result or {}).get("error") or _pickled_error(trial) or \
                "the trial crashed (see search.log)"
            outcomes[job_name] = _outcome_from(trial.last_result, error)
            listener("done", job_name, {"outcome": outcomes[job_name]})

    trainable = tune.with_resources(train_candidate, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    config = {"ctx": ctx.__dict__, "job": tune.grid_search([job.__dict__ for job in jobs])}
    tuner = tune.Tuner(
        trainable, param_space=config,
        tune_config=tune.TuneConfig(reuse_actors=True, trial_name_creator=_trial_name,
                                    trial_dirname_creator=_trial_name),
        run_config=tune.RunConfig(name=name, storage_path=str(storage), verbose=0, callbacks=[_Events()],
                                  failure_config=tune.FailureConfig(max_failures=max_failures),
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=1)))
    grid = tuner.fit()
    for result in grid:  # anything the callbacks missed
        job_name = result.config["job"]["name"]
        if job_name not in outcomes:
            outcomes[job_name] = _outcome_from(result.metrics, _error_text(result.error))
            listener("done", job_name, {"outcome": outcomes[job_name]})
    return outcomes


def _trial_name(trial: Any) -> str:
    return trial.config["job"]["name"]
