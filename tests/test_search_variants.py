"""Searches that each need their own set-up: a joined Ray head with a candidate that raises and a
contraction along every axis, a node that cannot see the data, a step where every candidate fails, a
bounded space, a replayed path, and a latency target on videos with a corrupt one in each split (one
search read by two tests) (real CLI, real Ray, real fvcore, real videos).

The searches of ``make test`` join the pytest process's shared Ray head (conftest's ``shared_ray``);
the fault-injecting ones (``make test-faults``) start their own cluster, as a user's search does.

Every search that can decide does so on ``signal_dataset`` with ``decide_budget``, with X-Temporal (the
one axis that reads the two frames the classes need) among its axes, and asserts that its first step
chose it on scores (``assert_decided_on_scores``), not by the GFLOPs tie-break that ``tiny_dataset``'s
equal scores leave. The scores each test saw at seed 0 are in its docstring."""
from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from x3dsearch.complexity import complexity
from x3dsearch.factors import Factors
from x3dsearch.search.space import DEFAULT_SPACE
from x3dsearch.train import TrainingFolder

from ray_nodes import listed_nodes, ray_head, ray_worker
from search_helpers import (X3DSEARCH, assert_decided_on_scores, cli_env, decide_budget, load_log, run_cli, space_file,
                            state_trials)

pytestmark = pytest.mark.slow


# --- a Ray cluster the search joins; a candidate that raises; a node that cannot see the data ---
def _expand_with_failing(args: list[str], run_dir: Path, names: list[str]) -> tuple[int, str]:
    """Run ``x3dsearch expand ARGS --run-dir RUN_DIR``; while the seed trains, put a file where these
    candidates' output folders go, so their trainings fail for real (the folder cannot be created)
    when their turn comes. Returns the exit code and stderr."""
    proc = subprocess.Popen([str(X3DSEARCH), "expand", *args, "--run-dir", str(run_dir)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=cli_env(), start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the search ended before the seed ran: {proc.stderr.read()[-2000:]}")
            assert time.monotonic() < deadline, "the seed never started"
            try:
                state = json.loads((run_dir / "state.json").read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                state = None
            if state and state["seed"]["status"] == "running":
                break
            time.sleep(0.05)
        for name in names:
            (run_dir / "candidates").mkdir(exist_ok=True)
            (run_dir / "candidates" / name).write_text("not a folder\n")
        _, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, err


@pytest.mark.fault  # injects a fault: make test-faults runs it, make test does not
def test_a_node_that_cannot_see_the_data_fails_its_trials_with_one_line(tiny_dataset: Path, tmp_path: Path):
    """A two-node cluster whose only CPUs are on a node that does not share the filesystem the data and
    the run directory are on (a tmpfs hides both there): every trial lands on it, and fails saying so.

    No trial scores, so there is nothing to decide on: the tiny data and one axis suffice."""
    run_dir = tmp_path / "run"
    hidden = (tiny_dataset.parent, tmp_path)
    with ray_head(0) as address, ray_worker(address, 1, hide=hidden):
        proc = run_cli("expand", "--target-gflops", "0.04", "--data", str(tiny_dataset), "--budget", "smoke",
                       "--space", str(space_file(tmp_path, ("x-spatial",))), "--run-dir", str(run_dir),
                       "--address", address, "--max-failures", "0")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    # after the live table (progress goes to stderr), one error line
    error = proc.stderr.splitlines()[-1]
    assert error.startswith("x3dsearch: error: ") and proc.stderr.count("x3dsearch: error") == 1, proc.stderr
    assert f"data root {tiny_dataset} is not visible on node " in error
    assert "must be on a filesystem every node sees" in error
    nodes = listed_nodes(run_dir)
    assert sorted(nodes.values()) == ["1 CPUs", "head, 0 CPUs"], (run_dir / "search.log").read_text()[:2000]
    worker = next(name for name, offers in nodes.items() if offers == "1 CPUs")
    head = next(name for name in nodes if name != worker)
    trials = state_trials(run_dir)
    assert {t["status"] for t in trials} == {"failed"} and {t["node"] for t in trials} == {worker} != {head}
    assert all(f"is not visible on node {worker} " in t["error"] for t in trials)


@pytest.mark.fault  # injects a fault: make test-faults runs it, make test does not
def test_a_step_where_every_candidate_fails_stops_and_resume_retries(signal_dataset: Path, tmp_path: Path):
    """Both candidates fail (their folders cannot be created): the search stops and says how to resume.
    Once the cause is fixed, the resumed search trains them and chooses X-Temporal on scores. Measured at
    seed 0: x-temporal 100.0, x-spatial 62.5 on 24 videos (margin +37.5, simultaneous 90% lower bound +25.0)."""
    space = space_file(tmp_path, ("x-temporal", "x-spatial"))
    run_dir = tmp_path / "run"
    cpus = str(len(os.sched_getaffinity(0)))  # one trial at a time: the seed runs before the candidates
    args = ["--target-gflops", "0.04", "--data", str(signal_dataset), "--budget", str(decide_budget(tmp_path)),
            "--space", str(space), "--cpus-per-trial", cpus]
    names = ["s01-x-temporal", "s01-x-spatial"]
    returncode, err = _expand_with_failing(args, run_dir, names)
    assert returncode == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("x3dsearch: error: every candidate of step 1 failed") and "x3dsearch resume" in last
    state = json.loads((run_dir / "state.json").read_text())
    assert state["seed"]["status"] == "ok" and [c["status"] for c in state["steps"][0]["candidates"]] == ["failed"] * 2
    assert load_log(run_dir)["status"] == "interrupted" and load_log(run_dir)["stop_reason"] == "every candidate failed"

    for name in names:  # the cause is fixed
        (run_dir / "candidates" / name).unlink()
    with open(run_dir / ".lock", "w") as held:  # as if another search process were running it
        fcntl.flock(held, fcntl.LOCK_EX)
        busy = run_cli("resume", str(run_dir))
    assert busy.returncode == 2 and busy.stderr == f"x3dsearch: error: run dir {run_dir} is in use by another " \
                                                   f"x3dsearch process; wait for it to end, or stop it\n"
    resumed = run_cli("resume", str(run_dir), "--cpus-per-trial", "1")  # both candidates at once
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = load_log(run_dir)
    (step,) = log["steps"]
    assert log["status"] == "finished" and step["chosen"] == "x-temporal"
    assert [c["status"] for c in step["candidates"]] == ["ok", "ok"] and log["stop_reason"] != "every candidate failed"
    assert_decided_on_scores(step, {"x-temporal"})
    seed_log = (run_dir / "candidates" / "seed" / "train.log").read_text()
    assert seed_log.count("fresh start") == 1 and "resuming" not in seed_log  # the seed was not retrained


def test_a_search_on_a_joined_head_contracts_along_every_axis_past_a_candidate_that_raises(
        signal_dataset: Path, shared_ray: str, tmp_path: Path):
    """The search joins a running Ray head (one CPU: trials run one at a time, in order), and X-Width's step-1
    training raises (its folder cannot be created) and is retried once; it has no score to compare.

    Step 1 chooses X-Temporal by top-1 gained over X2D per added GFLOP, significantly, over the two other
    candidates that trained; every candidate overshoots 0.03 GFLOPs, so the step is contracted along every
    axis from X2D. X-Temporal's own axis has nothing under the target (2 frames is its least), so the
    contraction trains the other axes' settings (X-Width's too: its folder there is another) and keeps the
    one with the best gain per GFLOP. Those read one frame each, like X2D: nothing tells them apart, and the
    kept one is the best score (a tie under the bounds, resolved by --on-tie best).
    Measured at seed 0 (points of top-1 per GFLOP over X2D's 58.3): x-temporal 2144.2, x-spatial 228.0,
    x-bottleneck -512.6 (margin over x-spatial +1916.2, simultaneous 90% lower bound +1031.3); in the
    contraction x-spatial 0.0 (1x30@128, 58.3), x-bottleneck -512.2 and x-width -978.3, a tie (lower bounds
    -1911.2 and -1550.0).

    One search in place of two (a joined head with a raising candidate; a contraction along every axis):
    its setup and Ray's were most of each one's 22-28 s on a pinned core."""
    space = space_file(tmp_path, ("x-temporal", "x-spatial", "x-bottleneck", "x-width"))
    run_dir = tmp_path / "run"
    returncode, err = _expand_with_failing(["--target-gflops", "0.03", "--data", str(signal_dataset), "--budget",
                                            str(decide_budget(tmp_path)), "--space", str(space), "--criterion",
                                            "gain-per-gflop", "--on-tie", "best", "--contract-axes", "all",
                                            "--address", shared_ray], run_dir, ["s01-x-width"])
    assert returncode == 0, err[-3000:]
    assert f"Ray cluster at {shared_ray}: 1 CPUs" in (run_dir / "search.log").read_text()
    state = json.loads((run_dir / "state.json").read_text())
    (step,) = state["steps"]
    seed = state["seed"]
    log = load_log(run_dir)

    # the candidate that raised: failed after its retry, one line of error, left out of the decision
    by_axis = {c["axis"]: c for c in log["steps"][0]["candidates"]}
    assert by_axis["x-width"]["status"] == "failed" and by_axis["x-width"]["top1"] is None
    assert "s01-x-width" in by_axis["x-width"]["error"] and "\n" not in by_axis["x-width"]["error"]
    errors = (run_dir / "trials" / "step01" / "s01-x-width" / "error.txt").read_text()
    assert "Failure # 2" in errors  # FailureConfig retried it once (--max-failures 1) before giving up
    assert "x-width" not in log["steps"][0]["decision"]["against"]
    assert "x-width" in err and "failed" in err

    usable = [c for c in step["candidates"] if c["status"] == "ok"]

    def gain(c: dict, base: dict) -> tuple:  # state.json keeps each trial's training result whole
        return ((c["result"]["top1"] - base["result"]["top1"]) / (c["gflops"] - base["gflops"]), -c["gflops"])

    assert step["chosen"] == max(usable, key=lambda c: gain(c, seed))["axis"] == "x-temporal"
    assert min(c["gflops"] for c in usable) > 0.03
    # the decision is made on gain per GFLOP: its margins and bounds are in points per GFLOP
    decision = log["steps"][0]["decision"]
    assert decision["criterion"] == "gain-per-gflop" and len(usable) == 3
    assert_decided_on_scores(log["steps"][0], {"x-temporal"})
    contraction = state["contraction"]
    assert contraction["axis"] == step["chosen"] and contraction["start"] == "seed"
    by_axis = {c["axis"]: c for c in contraction["candidates"]}
    assert set(by_axis) == {"x-temporal", "x-spatial", "x-bottleneck", "x-width"}  # its own axis and every other
    own = by_axis.pop("x-temporal")
    assert own["status"] == "skipped" and "already exceeds the target" in own["error"]
    for c in by_axis.values():
        assert c["gflops"] <= 0.03 and c["status"] == "ok"
        assert complexity(Factors.from_dict(c["factors"]), 2).gflops <= 0.03
    kept = max(by_axis.values(), key=lambda c: gain(c, seed))
    assert contraction["chosen"] == kept["name"]
    assert log["contraction"]["axis"] == kept["axis"] and log["final"]["factors"] == kept["factors"]
    assert log["final"]["gflops"] <= 0.03


def test_a_search_stopped_by_the_space_bounds_says_so(signal_dataset: Path, shared_ray: str, tmp_path: Path):
    """Two frames and crop 160 are all the space allows (depth is at its bound from the start): step 1
    chooses X-Temporal over X-Spatial on scores, step 2 can only grow the crop, and then the search stops
    short of the target; the log and show say why. Measured at seed 0: x-temporal 100.0, x-spatial 62.5 on
    24 videos (margin +37.5, simultaneous 90% lower bound +25.0). A step 1 that chose x-spatial would
    also end bounded, after x-temporal: the order of the choices says the step decided."""
    data = yaml.safe_load(DEFAULT_SPACE.read_text())
    seed = data["seed"]
    data["axes"] = {"x-temporal": {**data["axes"]["x-temporal"], "max": 2},
                    "x-spatial": {"factor": "crop", "step": 8, "max": 160},
                    "x-depth": {"factor": "depth", "step": 0.1, "max": seed["depth"]}}
    space = tmp_path / "bounded.yaml"
    space.write_text(yaml.safe_dump(data, sort_keys=False))
    run_dir = tmp_path / "run"
    # 2 classes: step 1 ends at 2x24@112 (0.0393 GFLOPs), step 2 at 2x24@160 (0.0758), both under 0.71 x 0.15
    proc = run_cli("expand", "--target-gflops", "0.15", "--data", str(signal_dataset), "--budget",
                   str(decide_budget(tmp_path)), "--space", str(space), "--run-dir", str(run_dir),
                   "--cpus-per-trial", "1", "--address", shared_ray)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = load_log(run_dir)
    assert [s["chosen"] for s in log["steps"]] == ["x-temporal", "x-spatial"] and log["final"]["gflops"] < 0.15
    first = log["steps"][0]
    assert {c["axis"]: c["status"] for c in first["candidates"]} == {"x-temporal": "ok", "x-spatial": "ok",
                                                                     "x-depth": "skipped"}
    assert_decided_on_scores(first, {"x-temporal"})
    assert [c["axis"] for c in log["steps"][1]["candidates"] if c["status"] == "ok"] == ["x-spatial"]
    assert log["stop_reason"] == "every axis bounded" and "bounds of the space reached" in log["stop_detail"]
    assert "stopped: every axis bounded" in run_cli("show", str(run_dir)).stdout


def test_a_replay_trains_only_the_paths_model_and_contracts_as_usual(tiny_dataset: Path, shared_ray: str,
                                                                    tmp_path: Path):
    # A replay trains one candidate per step (and one per contraction, along its own axis): nothing is
    # decided on scores by design, so the tiny data and the smoke budget suffice.
    run_dir = tmp_path / "replay"
    proc = run_cli("expand", "--path", "spatial,bottleneck,depth", "--target-gflops", "0.06", "--data",
                   str(tiny_dataset), "--budget", "smoke", "--run-dir", str(run_dir), "--address", shared_ray)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = load_log(run_dir)
    assert log["path"] == ["x-spatial", "x-bottleneck", "x-depth"]
    assert [[c["axis"] for c in s["candidates"]] for s in log["steps"]] == [["x-spatial"], ["x-bottleneck"]]
    assert [s["chosen"] for s in log["steps"]] == ["x-spatial", "x-bottleneck"]
    assert log["stop_reason"] == "target reached" and log["final"]["gflops"] <= 0.06
    assert log["contraction"]["axis"] == "x-bottleneck"
    plan = json.loads(run_cli("expand", "--dry-run", "--json", "--classes", "3", "--path", "spatial,bottleneck,depth",
                              "--target-gflops", "0.06").stdout)
    assert log["final"]["factors"] == plan["final"]["factors"]  # the dry run planned what the replay trained


@pytest.fixture(scope="module")
def latency_run(broken_signal: dict, shared_ray: str, tmp_path_factory: pytest.TempPathFactory,
                ) -> tuple[Path, subprocess.CompletedProcess, float]:
    """One latency-targeted search on ``broken_signal`` (the signal data plus a test split, one corrupt
    video in each split), read by the two tests below; returns its run directory, the process and X2D's
    measured ms."""
    from x3dsearch.latency import LatencyConfig, measure_latency
    from x3dsearch.search.space import load_space

    folder = tmp_path_factory.mktemp("latency")
    seed_ms = measure_latency(load_space().seed, 2, LatencyConfig()).median_ms
    run_dir = folder / "latency"
    space = space_file(folder, ("x-temporal", "x-spatial"), proposal="nearest", tolerance=0.6)
    proc = run_cli("expand", "--complexity", "latency", "--target-ms", f"{4 * seed_ms:.3f}", "--data",
                   str(broken_signal["root"]), "--budget", str(decide_budget(folder)), "--space", str(space),
                   "--run-dir", str(run_dir), "--cpus-per-trial", "1", "--address", shared_ray)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir, proc, seed_ms


def test_a_latency_targeted_search_records_ms_and_stays_under_its_target(latency_run, tmp_path: Path):
    """Proposals aim at twice the current model's measured ms, which a tiny model spends mostly on fixed
    costs, so they move with the machine's timings: from X2D at 5.2 ms X-Temporal proposed 4x19@112 and
    X-Spatial 1x30@224, at 8.2 ms (a busier machine) 4x19@112 and 1x30@288. X-Temporal's reads 2 frames or
    more wherever they land. Measured at seed 0 on ``broken_signal``'s 23 readable validation videos (X2D
at 7.0 ms; X-Temporal proposed 7x16@112): x-temporal 95.7, x-spatial 60.9 (margin +34.8, simultaneous 90%
lower bound +21.7); one step, within tolerance. (On ``signal_dataset``'s 24 at 5.2 ms: 95.8 against 50.0.)

    The space proposes the nearest setting, not the largest at most 2x: on a loaded machine (a fresh
    clone's make test, 2026-12-03) 2 frames timed over 2x the seed, so at-most skipped X-Temporal and
    left no decision to make. Nearest always proposes both axes.

    One step, whatever the timings: the target is 4x the seed's ms and the space's tolerance 0.6, so the
    search stops at any model from 1.6x to 4x the seed; step 1's candidates aim at 2x, and the seed, at
    1x, is far from stopping it on a noisy measurement. Under the shipped 0.29 and a 2.5x target, a busy
    machine (7.6 ms, each pytest process pinned to a core) chose 7x16@112 at only 68% of its target and
    trained a second step of 15x13@112 and 7x16@168: 84 s instead of 27. Bounding the axes instead (4
    frames, crop 224) failed under heavier load, where both largest settings timed under sqrt(2) x the
    seed and were skipped."""
    run_dir, proc, seed_ms = latency_run
    log = load_log(run_dir)
    assert log["complexity"] == "latency" and log["target_ms"] == pytest.approx(4 * seed_ms, rel=1e-3)
    assert log["target_gflops"] is None
    for step in log["steps"]:  # an axis its bound skipped (by measured ms, which vary) has no model to time
        trained = [c for c in step["candidates"] if c["status"] != "skipped"]
        assert trained and all(c["ms"] > 0 and c["gflops"] > 0 for c in trained)
    assert_decided_on_scores(log["steps"][0], {"x-temporal"})
    final = yaml.safe_load((run_dir / "final_model.yaml").read_text())
    assert final["latency_ms"] <= log["target_ms"] and "target_ms" in final
    assert "ms target" in proc.stdout
    shown = run_cli("show", str(run_dir)).stdout  # show follows the criterion: the target and each model in ms
    assert f"target {log['target_ms']:g} ms" in shown and re.search(r"GFLOPs\s+ms\s+params", shown)
    assert f"{final['latency_ms']:.1f} ms = " in shown
    plot = run_cli("plot", str(run_dir), "-o", str(tmp_path / "ms.svg"))  # a latency run plots in ms
    assert plot.returncode == 0, plot.stderr
    assert "measured latency per clip" in (tmp_path / "ms.svg").read_text()


def test_a_search_leaves_bad_videos_out_and_compares_on_the_videos_all_candidates_read(latency_run,
                                                                                        broken_signal: dict):
    """The same search: one corrupt video in each split. Trials train (train substitutes), validation and
    test leave theirs out and count it, and the step's decision is taken on the videos every candidate
    read, on scores: X-Temporal reads the two frames the classes need, X-Spatial one (the scores are in the
    test above). A search of its own (GFLOPs-targeted: 2x24@112 against 1x30@160) scored 100.0 against 47.8
    on the same 23 videos; sharing the latency search saves that search's 17-21 s in make test."""
    run_dir, _, _ = latency_run
    state = json.loads((run_dir / "state.json").read_text())
    candidates = [c for step in state["steps"] for c in step["candidates"]]
    assert len(candidates) == 2 and all(c["result"]["val_excluded"] == 1 and c["result"]["val_videos"] == 23
                                        for c in candidates + [state["seed"]])
    (step,) = load_log(run_dir)["steps"]
    assert step["decision"]["videos"] == 23 and all(c["score_videos"] == 23 for c in step["candidates"])
    assert_decided_on_scores(step, {"x-temporal"})
    bad_val = broken_signal["bad"]["val"].key
    for name in ("seed", f"s01-{step['chosen']}"):
        folder = TrainingFolder(run_dir / "candidates" / name)
        assert folder.read_outcomes("val").excluded == [bad_val] and bad_val not in folder.read_outcomes("val").videos
    chosen_test = TrainingFolder(run_dir / "candidates" / f"s01-{step['chosen']}").read_outcomes("test")
    assert len(chosen_test.videos) == 11 and chosen_test.excluded == [broken_signal["bad"]["test"].key]
    assert step["candidates"][[c["axis"] for c in step["candidates"]].index(step["chosen"])]["heldout_top1"] == \
        pytest.approx(chosen_test.top1)
