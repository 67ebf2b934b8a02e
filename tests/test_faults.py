"""Faults a search meets on a real cluster, each made to happen for certain (no sleep-and-hope): Tune
results of any shape, two processes on one run directory, torn or corrupt state files, a full disk."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ray import tune

from x3dsearch.factors import preset
from x3dsearch.runlog import Clock, RunDir, Trial, TrialStatus
from x3dsearch.search import trainable
from x3dsearch.search.cluster import Cluster
from x3dsearch.search.trainable import FINAL, Job, TrialContext, _events_callback, record_results
from x3dsearch.search.trials import TrialRunner

from search_helpers import cli_env, run_cli


# --- Tune's results, whatever their shape ------------------------------------------------------
def _trial(name: str) -> Trial:
    return Trial(name=name, axis=name.split("-", 1)[1], factors=preset("x2d"), gflops=0.0198, seed=0)


def _finished_metrics(job: dict, top1: float) -> dict:
    """What a trial that trained reports last (hand-written, in the trainable's format)."""
    return {"config": {"job": job}, FINAL: True, "status": "ok", "error": None, "top1": top1, "top5": 100.0,
            "wall_time_s": 1.0, "train_macs": 1e9, "gflops": 0.0198, "params_m": 0.1, "epochs_done": 1}


def test_tune_results_without_config_metrics_or_with_an_error_become_failed_trials(tmp_path: Path, monkeypatch):
    """Tune returns a result whose config is None for a trial that failed before it reported (the
    crash of issue 25): it is named from its folder in Tune's storage and recorded as failed, like
    one whose result carries only an error; the step goes on with the trial that trained."""
    folder = RunDir(tmp_path / "run")
    folder.path.mkdir()
    trials = [_trial("s01-x-spatial"), _trial("s01-x-width"), _trial("s01-x-depth"), _trial("s01-x-fast")]
    seen: list[list[tune.Result]] = []  # real ray.tune.Result objects, as Tuner.fit returns them

    def fit_returns_odd_results(name, jobs, ctx, storage, cpus, gpus, max_failures, listener):
        events = _events_callback(tune.Callback)(listener)
        by_name = {job.name: job for job in jobs}
        storage = Path(storage) / name
        results = [
            # trained: metrics and config
            tune.Result(metrics=_finished_metrics(vars(by_name["s01-x-spatial"]), 66.7), checkpoint=None, error=None,
                        path=str(storage / "s01-x-spatial")),
            # failed before it started: no metrics, hence no config (result.config is None)
            tune.Result(metrics=None, checkpoint=None, error=RuntimeError("worker could not start"),
                        path=str(storage / "s01-x-width")),
            # metrics without a final report and without an error
            tune.Result(metrics={"config": {"job": vars(by_name["s01-x-depth"])}, "progress": 0.5},
                        checkpoint=None, error=None, path=str(storage / "s01-x-depth")),
            # nothing to name it by: left to the runner, which records it as never reported
            tune.Result(metrics={}, checkpoint=None, error=None, path=str(storage / "somebody-else")),
        ]
        assert results[1].config is None  # the shape that crashed run_experiment
        seen.append(results)
        record_results(results, jobs, events)

    monkeypatch.setattr("x3dsearch.search.trials.run_experiment", fit_returns_odd_results)
    saves: list[float] = []
    runner = TrialRunner(folder, Cluster(None, 2.0, 0.0, 0.0), (1.0, 0.0), explicit_cpus=False, max_failures=1,
                         ctx=TrialContext("data", {}, 1, "cpu"), clock=Clock(), save=lambda: saves.append(time.time()),
                         history=[])
    runner.run("step01", "step 1", trials, None)
    assert seen, "the experiment did not run"
    spatial, width, depth, fast = trials
    assert spatial.status == TrialStatus.OK and spatial.top1 == 66.7
    assert width.status == TrialStatus.FAILED and width.error == "RuntimeError: worker could not start"
    assert depth.status == TrialStatus.FAILED and "ended without a result" in depth.error
    assert fast.status == TrialStatus.FAILED and fast.error == "the trial never reported"
    assert saves  # recorded in the run's state


def test_a_tune_result_is_named_by_its_config_else_by_its_folder():
    by_dirname = {"cal--x2d-s0": "cal/x2d-s0", "s01-x-fast": "s01-x-fast"}
    job = {"name": "cal/x2d-s0"}
    assert trainable.result_job_name({"config": {"job": job}}, None, by_dirname) == "cal/x2d-s0"
    assert trainable.result_job_name(None, "/runs/r/trials/step01/cal--x2d-s0", by_dirname) == "cal/x2d-s0"
    assert trainable.result_job_name({"config": None}, "/x/s01-x-fast/", by_dirname) == "s01-x-fast"
    assert trainable.result_job_name({"config": "odd"}, None, by_dirname) is None
    assert trainable.result_job_name(None, "/x/unknown", by_dirname) is None


def test_a_final_report_that_is_not_a_training_result_is_a_failure():
    result, error, _, node = trainable._ending({FINAL: True, "status": "garbage", trainable.NODE: "10.0.0.5/1a2b3c4d"},
                                               None)
    assert result is None and "not a training result" in error and node == "10.0.0.5/1a2b3c4d"
    job = Job("s01-x-fast", {}, "/tmp/x", 0, "/tmp")
    assert trainable.result_job_name({"config": {"job": vars(job)}}, None, {}) == "s01-x-fast"


# --- two processes, one run directory -----------------------------------------------------------
HOLD = ("import sys; from pathlib import Path; from x3dsearch.runlog import RunLock; "
        "lock = RunLock(Path(sys.argv[1])); print('locked', flush=True); sys.stdin.read()")


def _holder(folder: Path) -> subprocess.Popen:
    """Another process holding ``folder``'s lock (through the lock class every command takes it with)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=cli_env())
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _hand_written_run(folder: Path) -> Path:
    """A run directory as far as the commands read before they take the lock (hand-written, not a real run)."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("space: {name: x3d}\ntarget_gflops: 0.06\n")
    (folder / "state.json").write_text('{"version": 2, "status": "running"}\n')
    return folder


@pytest.mark.slow  # a real search holds the run directory
@pytest.mark.fault  # injects a fault: make test-faults runs it, make test does not
def test_a_second_process_on_a_run_directory_is_refused_naming_the_running_pid(tiny_dataset: Path, tmp_path: Path):
    run_dir = _hand_written_run(tmp_path / "run")
    calibration = tmp_path / "calibration"
    calibration.mkdir()
    holders = [_holder(run_dir), _holder(calibration)]
    try:
        before = _snapshot(run_dir), _snapshot(calibration)
        commands = [("resume", str(run_dir)), ("expand", "--resume", str(run_dir)),
                    ("baseline", str(run_dir), "--presets", "x2d"),
                    ("calibrate", "--out", str(calibration), "--data", str(tiny_dataset), "--budget", "smoke",
                     "--models", "x2d,x3d-xs,x3d-s", "--seeds", "2")]
        for args, holder in zip(commands, [holders[0]] * 3 + [holders[1]]):
            proc = run_cli(*args, timeout=120)
            assert proc.returncode == 2, (args, proc.stderr)
            assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
            assert f"in use by x3dsearch pid {holder.pid} on {socket.gethostname()}" in proc.stderr, proc.stderr
        assert (_snapshot(run_dir), _snapshot(calibration)) == before  # nothing touched
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()


def test_a_lock_left_by_a_killed_process_is_taken_over_and_the_log_says_so(tmp_path: Path):
    from x3dsearch.search.session import locked

    folder = RunDir(tmp_path)
    holder = _holder(tmp_path)
    holder.send_signal(signal.SIGKILL)  # dies holding it: the OS frees the flock, its pid stays in .lock
    holder.wait()
    assert (tmp_path / ".lock").read_text().split()[0] == str(holder.pid)
    with locked(folder, console=False):
        assert (tmp_path / ".lock").read_text().split()[0] == str(os.getpid())
    text = (tmp_path / "search.log").read_text()
    assert f"took over the lock of {tmp_path} from x3dsearch pid {holder.pid}" in text
    assert (tmp_path / ".lock").read_text() == ""  # a clean release leaves no pid, so the next one takes no note
    with locked(folder, console=False):
        pass
    assert (tmp_path / "search.log").read_text().count("took over") == 1


# --- torn and corrupt training records ------------------------------------------------------------
def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "cut":  # as a copy interrupted half-way leaves it
        path.write_bytes(data[: len(data) // 2])
    else:  # the same length, garbage in the middle (a disk error)
        middle = len(data) // 2
        path.write_bytes(data[:middle] + b"\x00garbage\xff" * 4 + data[middle + 40:])


@pytest.mark.parametrize("how", ["cut", "garbage"])
def test_a_damaged_result_or_checkpoint_is_refused_naming_the_file_and_the_way_out(tmp_path: Path, how: str):
    import torch

    from x3dsearch.errors import X3DSearchError
    from x3dsearch.train.checkpoint import save_checkpoint
    from x3dsearch.train.folder import TrainingFolder
    from x3dsearch.train.result import TrainResult

    folder = TrainingFolder(tmp_path)
    folder.write_result(TrainResult(status="ok", top1=50.0, top5=100.0, error=None))
    save_checkpoint(folder.checkpoint, {"model": {"w": torch.arange(4096.0)}, "progress": {"step": 3}})
    assert folder.read_result().top1 == 50.0 and folder.check_checkpoint() is None  # whole: read as they are
    _damage(folder.result, how)
    with pytest.raises(X3DSearchError, match=r"result.json is corrupt .*delete it and run again: the training is "
                                             r"redone from its checkpoint$"):
        folder.read_result()
    _damage(folder.checkpoint, how)
    with pytest.raises(X3DSearchError, match=r"checkpoint.pt is corrupt .*delete it and run again: the training "
                                             r"starts again from its beginning$"):
        folder.check_checkpoint()


def test_a_step_with_a_damaged_training_record_stops_before_any_trial_trains(tmp_path: Path, monkeypatch):
    from x3dsearch.errors import X3DSearchError

    folder = RunDir(tmp_path / "run")
    trials = [_trial("s01-x-spatial"), _trial("s01-x-width")]
    damaged = folder.trial_dir("s01-x-width")
    damaged.mkdir(parents=True)
    (damaged / "result.json").write_text('{"status": "ok", "top1": 5')  # cut short (hand-written)
    monkeypatch.setattr("x3dsearch.search.trials.run_experiment",
                        lambda *a, **k: pytest.fail("a trial was started on a damaged record"))
    runner = TrialRunner(folder, Cluster(None, 2.0, 0.0, 0.0), (1.0, 0.0), explicit_cpus=False, max_failures=1,
                         ctx=TrialContext("data", {}, 1, "cpu"), clock=Clock(), save=lambda: None, history=[])
    with pytest.raises(X3DSearchError, match=r"s01-x-width/result\.json is corrupt"):
        runner.run("step01", "step 1", trials, None)


# --- a full disk, injected (the tmpfs test in test_faults_run.py needs root) ----------------------
def test_a_write_that_finds_the_disk_full_raises_one_line_and_keeps_the_old_file(tmp_path: Path, monkeypatch):
    import errno

    from x3dsearch.utils import io

    path = tmp_path / "state.json"
    io.atomic_write_text(path, "old\n")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io.os, "fsync", full)
    with pytest.raises(io.DiskFull, match=rf"^no space left on device for {path}: free some space there"):
        io.atomic_write_text(path, "new\n")
    assert path.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_a_training_that_found_the_disk_full_is_not_recorded_as_failed_and_the_step_stops(tmp_path: Path,
                                                                                         monkeypatch):
    from x3dsearch.utils.io import DiskFull

    folder = RunDir(tmp_path / "run")
    trials = [_trial("s01-x-spatial"), _trial("s01-x-width")]

    def one_trains_one_finds_the_disk_full(name, jobs, ctx, storage, cpus, gpus, max_failures, listener):
        events = _events_callback(tune.Callback)(listener)
        by_name = {job.name: job for job in jobs}
        record_results([tune.Result(metrics=_finished_metrics(vars(by_name["s01-x-spatial"]), 66.7), checkpoint=None,
                                    error=None, path=str(storage / name / "s01-x-spatial")),
                        tune.Result(metrics=None, checkpoint=None, path=str(storage / name / "s01-x-width"),
                                    error=OSError(28, "No space left on device"))], jobs, events)

    monkeypatch.setattr("x3dsearch.search.trials.run_experiment", one_trains_one_finds_the_disk_full)
    saved: list[list[str]] = []
    runner = TrialRunner(folder, Cluster(None, 2.0, 0.0, 0.0), (1.0, 0.0), explicit_cpus=False, max_failures=1,
                         ctx=TrialContext("data", {}, 1, "cpu"), clock=Clock(),
                         save=lambda: saved.append([str(t.status) for t in trials]), history=[])
    with pytest.raises(DiskFull, match=r"no space left on device for .*first s01-x-width\): free some space"):
        runner.run("step01", "step 1", trials, None)
    assert [str(t.status) for t in trials] == ["ok", "pending"] and trials[1].error is None
    assert saved[-1] == ["ok", "pending"]  # the state kept says: train it again
