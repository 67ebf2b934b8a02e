"""Faults met by whole searches (real CLI, real Ray, real fvcore, real videos; signal_dataset, the decide
budget, a two-axis space whose step is decided on scores): a damaged state.json or expansion_path.yaml,
and a run directory on a filesystem that fills up in the middle of a step."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from search_helpers import X3DSEARCH, assert_decided_on_scores, cli_env, decide_budget, load_log, run_cli, space_file

pytestmark = [pytest.mark.slow, pytest.mark.fault]  # make test-faults runs them, make test does not

TARGET = "0.04"  # one step (x-temporal 0.0393, x-spatial 0.0381 GFLOPs), no contraction: three trainings in all


@pytest.fixture(scope="module")
def args(signal_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("inputs")
    space = space_file(folder, ("x-temporal", "x-spatial"))
    return ["--target-gflops", TARGET, "--data", str(signal_dataset), "--budget", str(decide_budget(folder)),
            "--space", str(space), "--seed", "0", "--cpus-per-trial", "1"]


@pytest.fixture(scope="module")
def finished(args: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    proc = run_cli("expand", *args, "--run-dir", str(run_dir))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_decided_on_scores(load_log(run_dir)["steps"][0], {"x-temporal"})  # the 2-frame model sees the cue
    return run_dir


def _path(log: dict) -> tuple:
    return ([(s["chosen"], [(c["axis"], c["factors"], c["top1"], c["status"]) for c in s["candidates"]])
             for s in log["steps"]], log["final"])


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.count("\n") == 1, proc.stderr
    return proc.stderr


def test_a_damaged_state_json_resumes_from_its_previous_save(finished: Path, tmp_path: Path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    state = run_dir / "state.json"
    assert json.loads((run_dir / ".state.json.prev").read_text())["version"] == 2  # the save before the last
    state.write_text(state.read_text()[:500])  # cut short
    proc = run_cli("resume", str(run_dir))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "state.json is corrupt" in proc.stderr and "continuing from the state saved before it" in proc.stderr
    assert json.loads(state.read_text())["status"] == "finished"
    assert _path(load_log(run_dir)) == _path(load_log(finished))
    for folder in (run_dir / "candidates").iterdir():  # nothing was trained again
        assert (folder / "train.log").read_text() == (finished / "candidates" / folder.name / "train.log").read_text()

    state.write_bytes(b"\x00garbage" * 100)
    (run_dir / ".state.json.prev").write_text("{")
    err = _one_line_error(run_cli("resume", str(run_dir)))
    assert f"{state} is corrupt" in err and "restore the run directory from a backup" in err


def test_a_damaged_run_log_is_named_and_written_again_by_resume(finished: Path, tmp_path: Path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    log = run_dir / "expansion_path.yaml"
    log.write_text(log.read_text()[:300] + "\n  - [unclosed\n")
    err = _one_line_error(run_cli("show", str(run_dir)))
    assert str(log) in err and f"`x3dsearch resume {run_dir}` writes it again from state.json" in err
    proc = run_cli("resume", str(run_dir))
    assert proc.returncode == 0 and "had already finished" in proc.stdout, proc.stderr[-3000:]
    assert load_log(run_dir) == load_log(finished) | {"cost": load_log(run_dir)["cost"]}
    assert run_cli("show", str(run_dir)).returncode == 0


# --- a full disk --------------------------------------------------------------------------------
@pytest.fixture()
def small_disk(tmp_path: Path):
    """A 64 MiB tmpfs (mounting needs root: skipped where it is not permitted)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path) -> Path:
    """Write a file until the filesystem has no byte left."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                pass
    return filler


def test_a_disk_that_fills_up_mid_step_stops_in_one_line_and_resume_finishes(args: list[str], finished: Path,
                                                                            small_disk: Path):
    run_dir = small_disk / "run"
    proc = subprocess.Popen([str(X3DSEARCH), "expand", *args, "--run-dir", str(run_dir)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=cli_env(), start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:  # the step's candidate is running
            assert proc.poll() is None, "the search ended before the disk filled up"
            assert time.monotonic() < deadline, "step 1 never started"
            try:
                steps = json.loads((run_dir / "state.json").read_text())["steps"]
            except (FileNotFoundError, json.JSONDecodeError):
                steps = []
            if steps and steps[0]["candidates"][0]["status"] == "running":
                break
            time.sleep(0.05)
        filler = _fill(small_disk)
        _, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 2 and "Traceback" not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("x3dsearch: error: no space left on device for ") and "x3dsearch resume" in last, last
    state = json.loads((run_dir / "state.json").read_text())  # whole: the last save that fitted
    assert state["status"] == "running" and not state["steps"][0]["done"]
    assert all(c["status"] != "failed" for c in state["steps"][0]["candidates"])  # no failure recorded

    filler.unlink()
    resumed = run_cli("resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _path(load_log(run_dir)) == _path(load_log(finished))
    assert (run_dir / "final_model.yaml").read_text() == (finished / "final_model.yaml").read_text()
