"""A search with repeats (--repeats 2 --on-tie repeat) through the real CLI, real Ray and real videos
(signal_dataset), killed with kill -9 in the middle of a repeat and resumed: fault injection, which
`make test-faults` runs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from search_helpers import (X3DSEARCH, assert_decided_on_scores, cli_env, decide_budget, load_log, path_of, run_cli,
                            space_file, trial_dirs)

pytestmark = pytest.mark.slow


@pytest.fixture()
def budget_file(tmp_path: Path) -> Path:
    """The decide budget plus a checkpoint after every step, so a kill lands between checkpoints."""
    return decide_budget(tmp_path, checkpoint_every=1)


@pytest.mark.fault  # injects a fault: make test-faults runs it, make test does not
def test_repeats_and_ties_retrained_are_deterministic_and_a_repeat_killed_with_kill_9_resumes(
        signal_dataset: Path, budget_file: Path, tmp_path: Path):
    """--repeats 2 --on-tie repeat: every candidate trains with 2 seeds, tied ones with a third; a run
    killed in the middle of a repeat ends, resumed, exactly as one that was not. On signal_dataset X-Fast
    and X-Temporal both read two frames and see the cue (a tie, trained again), X-Spatial reads one and
    cannot (beaten on scores)."""
    space = space_file(tmp_path, ("x-fast", "x-temporal", "x-spatial"))
    # 0.04: every candidate (0.0393, 0.0393, 0.0381 GFLOPs) lands within tolerance: one step, no contraction
    args = ["expand", "--target-gflops", "0.04", "--data", str(signal_dataset), "--budget", str(budget_file),
            "--space", str(space), "--repeats", "2", "--on-tie", "repeat", "--max-repeats", "3"]
    reference = tmp_path / "reference"
    done = run_cli(*args, "--run-dir", str(reference))
    assert done.returncode == 0, done.stderr[-3000:]
    log = load_log(reference)
    step = log["steps"][0]
    assert all(c["repeats"] >= 2 and c["score_sd"] is not None for c in step["candidates"])
    assert step["decision"]["repeats"] >= 2 and step["decision"]["rule"] == "repeat"
    names = sorted(d.name for d in trial_dirs(reference, "s01-"))
    assert {"s01-x-fast-r1", "s01-x-temporal-r1", "s01-x-spatial-r1"} <= set(names)
    assert_decided_on_scores(step)  # x-spatial is out on scores ...
    if not step["decision"]["significant"]:  # ... and a tie between the 2-frame ones is trained once more
        assert any(n.endswith("-r2") for n in names) and "training them again" in (reference / "search.log").read_text()
    seeds = {json.loads((reference / "candidates" / n / "config.json").read_text())["seed"] for n in names}
    assert seeds >= {0, 100003}  # repeat k: seed + 100003 k, the same for every candidate

    killed = tmp_path / "killed"
    proc = subprocess.Popen([str(X3DSEARCH), *args, "--run-dir", str(killed)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=cli_env(), start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not [d for d in trial_dirs(killed, "s01-") if d.name.rsplit("-", 1)[-1].startswith("r")
                   and (d / "checkpoint.pt").is_file() and not (d / "result.json").is_file()]:
            assert proc.poll() is None, "the search ended before a repeat could be interrupted"
            assert time.monotonic() < deadline, "no running repeat seen"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    time.sleep(1.0)
    resumed = run_cli("resume", str(killed))
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    def scored(log: dict) -> list:
        return [[(c["axis"], c["score"], c["score_sd"], c["repeats"]) for c in s["candidates"]] for s in log["steps"]]

    assert path_of(load_log(killed)) == path_of(log) and scored(load_log(killed)) == scored(log)
    assert any("resuming from step" in (d / "train.log").read_text() for d in trial_dirs(killed, "s01-"))
