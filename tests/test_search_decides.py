"""A step without signal is a tie, and a step with signal survives a Ray worker node killed mid-step
(real CLI, real Ray, real fvcore, real mp4s).

The search here is the reference search's first step (test_search_run.py, which says how its axes and
the data were sized and asserts its decision on scores): X-Temporal, X-Spatial and X-Width from X2D, of
which only X-Temporal reads the two frames ``signal_dataset``'s classes need. A second search on the same
videos with shuffled labels has no signal at all.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from x3dsearch.data.layout import load_split

from ray_nodes import kill_node, listed_nodes, ray_head, ray_worker
from search_helpers import X3DSEARCH, cli_env, decide_budget, load_log, path_of, run_cli, space_file, state_trials

pytestmark = pytest.mark.slow

AXES = ("x-temporal", "x-spatial", "x-width")
# 2 classes: X2D is 0.0198 GFLOPs; its candidates are 0.0393 (x-temporal), 0.0381 (x-spatial) and 0.0372
# (x-width), all under 0.04 and within the space's tolerance of it: one step, no contraction.
TARGET = "0.04"
SEED = "0"
RULE = ("--criterion", "top1", "--on-tie", "best")

@pytest.fixture(scope="module")
def shuffled_data(signal_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Hand-made from real videos with shuffled labels: ``signal_dataset``'s mp4 files (by absolute path), with
    labels drawn again at random (seeded) so that in every split exactly half of each true class gets each
    label. The true class then says nothing about the label in the sample itself, not only in expectation:
    the 2-frame model's sight of the ramp is worth nothing, and what else differs between videos (colour,
    place) was drawn independently of both."""
    root = tmp_path_factory.mktemp("data") / "shuffled"
    root.mkdir()
    rng = random.Random(0)
    for split in ("train", "val"):
        lines = []
        for true_label in (0, 1):
            videos = [r.path for r in load_split(signal_dataset, split) if r.label == true_label]
            labels = [0, 1] * (len(videos) // 2)
            assert len(labels) == len(videos)  # an even count per class, so the halves are exact
            rng.shuffle(labels)
            lines += [f"{path} {label}" for path, label in zip(videos, labels)]
        (root / f"{split}.csv").write_text("\n".join(lines) + "\n")
    (root / "classes.txt").write_text("heads\ntails\n")
    return root


@pytest.fixture(scope="module")
def budget_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return decide_budget(tmp_path_factory.mktemp("budget"))


def _args(data: Path, budget: Path, folder: Path) -> list[str]:
    """The search of this module: one step over AXES, one CPU (one thread) per trial."""
    return ["expand", "--target-gflops", TARGET, "--data", str(data), "--budget", str(budget),
            "--space", str(space_file(folder, AXES)), "--run-dir", str(folder / "run"), "--seed", SEED, *RULE,
            "--cpus-per-trial", "1"]


def _search(data: Path, budget: Path, tmp_path: Path, *extra: str) -> tuple[Path, dict]:
    proc = run_cli(*_args(data, budget, tmp_path), *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return _step(tmp_path / "run")


def _step(run_dir: Path) -> tuple[Path, dict]:
    log = load_log(run_dir)
    assert len(log["steps"]) == 1 and log["contraction"] is None and log["stop_reason"] == "within tolerance"
    step = log["steps"][0]
    assert [c["axis"] for c in step["candidates"]] == list(AXES)
    assert all(c["status"] == "ok" and c["score_videos"] == 24 for c in step["candidates"])
    # The noise model: this data is not the cached synthetic set the shipped seed-noise model was measured
    # on, so with one seed per candidate the intervals resample the 24 validation videos only (too narrow
    # for seed noise), and the search says so.
    assert step["decision"]["noise"] == "videos only (no seed-noise model)"
    assert "no seed-noise model for this data and budget" in (run_dir / "search.log").read_text()
    return run_dir, step


@pytest.fixture(scope="module")
def signal_run(signal_dataset: Path, budget_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The search on the data with signal, on a local Ray: what the killed-node search must reproduce."""
    return _search(signal_dataset, budget_file, tmp_path_factory.mktemp("signal"))


def test_a_step_without_signal_is_a_tie(shuffled_data: Path, budget_file: Path, shared_ray: str, tmp_path: Path):
    """The same search on the same videos with labels no model can learn.

    Without signal a step still comes out significant with probability up to 10% (the bounds' level), so
    this passes at seed 0 by measurement, not by construction: there x-width won with 54.2 against 50.0
    and 50.0, margins +4.2 with lower bounds -5.6 and -8.3. At seeds 1 and 2 the same search was a tie
    too (lower bounds -20.8 at seed 1; 0.0 at seed 2, where all three got the same videos right)."""
    _, step = _search(shuffled_data, budget_file, tmp_path, "--address", shared_ray)
    decision = step["decision"]
    assert decision["significant"] is False and decision["tied"], decision
    assert all(not decision["against"][axis]["excluded"] for axis in decision["tied"])
    # The rule resolved the tie: best keeps the best score anyway (equal scores: the lower GFLOPs).
    assert decision["rule"] == "best"
    assert step["chosen"] == max(step["candidates"], key=lambda c: (c["score"], -c["gflops"]))["axis"]


# --- the same search on a two-node Ray cluster whose worker node dies mid-step ----------------------
def _worker_name(run_dir: Path) -> str | None:
    """The worker node's name as search.log lists the cluster's nodes (the head is marked)."""
    workers = [name for name, offers in listed_nodes(run_dir).items() if not offers.startswith("head")]
    if not workers:
        return None
    (worker,) = workers
    return worker


@pytest.mark.fault  # injects a fault: make test-faults runs it, make test does not
def test_a_worker_node_killed_mid_step_fails_over_to_the_head_on_the_same_path(
        signal_run: tuple[Path, dict], signal_dataset: Path, budget_file: Path, tmp_path: Path):
    """Two Ray nodes of one CPU each (trials of one CPU: one on each at a time). Once a training has
    finished on the worker node and another runs there, the worker node is killed (every process of it,
    at once). The trial it ran fails over to the head under --max-failures 1 and resumes there; the search
    ends on the path, decision and scores of the local run, and records where each training ran."""
    run_dir = tmp_path / "run"
    with ray_head(1) as address, ray_worker(address, 1) as worker:
        search = subprocess.Popen([str(X3DSEARCH), *_args(signal_dataset, budget_file, tmp_path), "--address", address],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
                                  start_new_session=True)
        try:
            deadline, running_at_kill, worker_name = time.monotonic() + 180, None, None
            while running_at_kill is None:
                assert search.poll() is None, "the search ended before a training finished on the worker node"
                assert time.monotonic() < deadline, "no training finished on the worker node in 180 s"
                worker_name = worker_name or _worker_name(run_dir)
                trials = state_trials(run_dir)
                running = [t["name"] for t in trials if t["status"] == "running"]
                if worker_name and running and any(t["status"] == "ok" and t["node"] == worker_name for t in trials):
                    kill_node(worker)
                    running_at_kill = running
                    finished_at_kill = {t["name"] for t in trials if t["status"] == "ok"}
                time.sleep(0.05)
            _, err = search.communicate(timeout=240)
        finally:
            if search.poll() is None:
                os.killpg(search.pid, signal.SIGKILL)
    assert search.returncode == 0, err[-3000:]
    assert "Traceback" not in err

    reference, step = signal_run
    log, local = load_log(run_dir), load_log(reference)
    assert path_of(log) == path_of(local)
    assert log["steps"][0]["decision"] == step["decision"]
    assert [c["score_ci"] for c in log["steps"][0]["candidates"]] == [c["score_ci"] for c in step["candidates"]]

    # where each training ran: both nodes, and nothing on the worker after its death
    trials = state_trials(run_dir)
    head = {t["node"] for t in trials} - {worker_name}
    assert len(head) == 1 and {t["node"] for t in trials} == head | {worker_name}
    entries = [log["steps"][0]["from"], *log["steps"][0]["candidates"]]
    assert [e["node"] for e in entries] == [t["node"] for t in trials]
    # The trial the worker ran at its death (one is sure to when state.json shows two running; with one
    # shown, a trial that had started may not have said so yet) failed once for Tune, and trained again
    # on the head, resuming from its folder's checkpoint if it had written one.
    failed_once = [t for t in trials if (run_dir / "trials" / "step01" / t["name"] / "error.txt").is_file()]
    assert len(failed_once) == (1 if len(running_at_kill) == 2 else len(failed_once)) <= 1
    for victim in failed_once:
        errors = (run_dir / "trials" / "step01" / victim["name"] / "error.txt").read_text()
        assert victim["name"] not in finished_at_kill and "Failure # 1" in errors and "Failure # 2" not in errors
        assert victim["status"] == "ok" and victim["node"] in head
