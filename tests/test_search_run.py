"""Whole searches through the real CLI, real Ray, real fvcore and real videos (tiny dataset, smoke budget).

A session-wide reference search is run once; the kill -9 test must land on exactly its path.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from x3dsearch.budget import BUDGET_DIR
from x3dsearch.complexity import complexity
from x3dsearch.factors import Factors
from x3dsearch.model_file import load_model_file
from x3dsearch.search.space import DEFAULT_SPACE

X3DSEARCH = Path(sys.executable).parent / "x3dsearch"
TARGET = "0.06"  # 3 classes: X2D is 0.0198 GFLOPs, so two steps and a contraction

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


#: The reference run's choice rule, fixed here because its assertions spell it out (best top-1, ties to
#: the lower GFLOPs); the shipped defaults (log-prob, cheaper) are checked in test_search_proposals.
RULE = ("--criterion", "top1", "--on-tie", "best")


def run_cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([str(X3DSEARCH), *args], capture_output=True, text=True, timeout=timeout, env=_env())


@pytest.fixture(scope="module")
def budget_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke budget plus a checkpoint after every step (which changes no number), so a kill
    lands between checkpoints of a running trial."""
    data = yaml.safe_load((BUDGET_DIR / "smoke.yaml").read_text())
    data["checkpoint_every"] = 1
    path = tmp_path_factory.mktemp("budget") / "smoke-ckpt.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _space_file(folder: Path, axes: tuple[str, ...]) -> Path:
    data = yaml.safe_load(DEFAULT_SPACE.read_text())
    data["axes"] = {k: v for k, v in data["axes"].items() if k in axes}
    data["name"] = "-".join(axes)
    path = folder / "space.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def reference_run(tiny_dataset: Path, budget_file: Path, tmp_path_factory: pytest.TempPathFactory):
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    proc = run_cli("expand", "--target-gflops", TARGET, "--data", str(tiny_dataset), "--budget", str(budget_file),
                   "--run-dir", str(run_dir), "--seed", "0", *RULE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir, proc


def _load(run_dir: Path) -> dict:
    return yaml.safe_load((run_dir / "expansion_path.yaml").read_text())


def _path(log: dict) -> dict:
    """What must not depend on interruptions: choices, candidates, their metrics, the result."""
    def cand(c: dict) -> tuple:
        return (c["axis"], json.dumps(c["factors"]), c["gflops"], c["params_m"], c["top1"], c["top5"],
                c["status"], c["train_macs"])

    return {"steps": [(s["step"], s["chosen"], json.dumps(s["from"]), [cand(c) for c in s["candidates"]])
                      for s in log["steps"]],
            "contraction": log["contraction"], "final": log["final"]}


# --- a whole search --------------------------------------------------------------------------
def test_whole_search_writes_every_key(reference_run, tiny_dataset: Path):
    run_dir, proc = reference_run
    log = _load(run_dir)
    assert set(log) == {"target_gflops", "complexity", "target_ms", "path", "seed", "space", "budget", "data",
                        "status", "stop_reason", "stop_detail", "steps", "contraction", "final", "baselines", "cost"}
    assert log["baselines"] is None  # none added yet (x3dsearch baseline)
    assert (log["complexity"], log["target_ms"], log["path"]) == ("gflops", None, None)
    assert (log["target_gflops"], log["seed"], log["space"], log["budget"], log["status"]) == \
        (0.06, 0, "x3d", "smoke-ckpt", "finished")
    assert log["stop_reason"] == "target reached" and "reached the 0.06 GFLOPs target" in log["stop_detail"]
    assert log["data"] == {"root": str(tiny_dataset), "num_classes": 3, "train_videos": 9, "val_videos": 3,
                           "test_videos": None}
    assert len(log["steps"]) == 2
    previous = None
    for number, step in enumerate(log["steps"], 1):
        assert set(step) == {"step", "from", "candidates", "chosen", "decision", "time_s"} and step["step"] == number
        decision = step["decision"]
        assert set(decision) == {"criterion", "winner", "runner_up", "margin", "ci", "vs_start", "significant", "rule",
                                 "videos", "repeats", "tied"}
        assert decision["winner"] == step["chosen"] and decision["videos"] == 3 and decision["repeats"] == 1
        assert decision["ci"][0] <= decision["margin"] <= decision["ci"][1]
        assert decision["significant"] == (decision["ci"][0] > 0 or decision["ci"][1] < 0)
        assert set(decision["vs_start"]) == {"margin", "ci"}
        assert set(step["from"]) == {"factors", "gflops", "top1"}
        assert step["from"]["top1"] is not None and step["time_s"] > 0
        if previous is not None:
            assert step["from"]["factors"] == previous["factors"]
        axes = [c["axis"] for c in step["candidates"]]
        assert axes == ["x-fast", "x-temporal", "x-spatial", "x-depth", "x-width", "x-bottleneck"]
        for c in step["candidates"]:
            chosen_keys = {"heldout_top1"} if c["axis"] == step["chosen"] else set()
            assert set(c) == {"axis", "factors", "gflops", "params_m", "top1", "top5", "train_time_s", "status",
                              "error", "train_macs", "score", "score_ci", "score_videos", "top1_ci"} | chosen_keys
            assert c["score"] == pytest.approx(c["top1"]) and c["score_videos"] == 3  # top-1 on every video
            assert c["score_ci"][0] <= c["score"] <= c["score_ci"][1] and c.get("heldout_top1") is None
            assert c["status"] == "ok" and c["error"] is None and 0 <= c["top1"] <= c["top5"] <= 100
            assert c["train_time_s"] > 0 and c["train_macs"] > 0
            assert 1.5 * step["from"]["gflops"] <= c["gflops"] <= 2.0 * step["from"]["gflops"]
        best = max(step["candidates"], key=lambda c: (c["top1"], -c["gflops"]))
        assert step["chosen"] == best["axis"]  # best top-1, ties to the lower GFLOPs
        previous = best
        checked = Factors.from_dict(best["factors"])
        fv = complexity(checked, 3)
        assert best["gflops"] == pytest.approx(fv.gflops, rel=1e-9) and best["params_m"] == pytest.approx(fv.params_m)
    assert previous["gflops"] > 0.06  # the last step overshot ...
    contraction = log["contraction"]
    assert set(contraction) == {"from", "axis", "factors", "gflops", "top1", "params_m", "score", "score_ci",
                                "score_videos", "top1_ci", "heldout_top1", "decision", "vs_overshoot"}
    assert set(contraction["vs_overshoot"]) == {"margin", "ci"}
    assert contraction["from"]["factors"] == previous["factors"] and contraction["axis"] == log["steps"][-1]["chosen"]
    assert contraction["gflops"] <= 0.06 and contraction["top1"] is not None  # ... and was contracted under it
    assert complexity(Factors.from_dict(contraction["factors"]), 3).gflops <= 0.06
    final = log["final"]
    assert set(final) == {"factors", "gflops", "params_m", "top1", "heldout_top1"}
    assert final["factors"] == contraction["factors"] and final["heldout_top1"] is None  # no test split
    assert set(log["cost"]) == {"train_macs", "wall_time_s", "flop_count_s", "ray_s", "train_s"}
    cost = log["cost"]
    candidates_macs = sum(c["train_macs"] for s in log["steps"] for c in s["candidates"])
    assert candidates_macs < cost["train_macs"] < 1.5 * candidates_macs  # plus the seed and the contraction
    assert 0 < cost["train_s"] < cost["wall_time_s"] and cost["ray_s"] > 0 and cost["flop_count_s"] >= 0
    assert cost["train_s"] + cost["ray_s"] + cost["flop_count_s"] <= cost["wall_time_s"] * 1.01

    model = load_model_file(run_dir / "final_model.yaml")
    assert model.factors == Factors.from_dict(final["factors"]) and model.num_classes == 3
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["space"]["name"] == "x3d" and config["budget"]["checkpoint_every"] == 1
    assert config["seed"] == 0 and {"torch", "ray", "fvcore", "x3dsearch"} <= set(config["versions"])
    state_text = (run_dir / "state.json").read_text()
    assert json.loads(state_text)["status"] == "finished"
    assert str(run_dir) not in state_text  # relative paths only
    assert (run_dir / "frontier.png").stat().st_size > 1000
    assert (run_dir / "trials" / "step01").is_dir() and (run_dir / "trials" / "contraction").is_dir()
    assert "step 2: chose" in (run_dir / "search.log").read_text()
    # The terminal gets the live tables (stderr) and ends with the path table and the files (stdout).
    assert "search ETA" in proc.stderr and "x-bottleneck" in proc.stderr
    assert "final:" in proc.stdout and "% of the 0.06 GFLOPs target" in proc.stdout
    assert str(run_dir / "expansion_path.yaml") in proc.stdout


def test_resuming_a_finished_search_prints_it_and_refuses_changes(reference_run, tmp_path: Path):
    run_dir, _ = reference_run
    before = (run_dir / "expansion_path.yaml").read_text()
    (run_dir / "frontier.png").unlink()  # as if the process had died while drawing it
    proc = run_cli("resume", str(run_dir))
    assert proc.returncode == 0 and "had already finished" in proc.stdout and "final:" in proc.stdout
    assert (run_dir / "expansion_path.yaml").read_text() == before
    assert (run_dir / "frontier.png").stat().st_size > 1000  # redrawn from the log
    proc = run_cli("expand", "--resume", str(run_dir), "--target-gflops", "0.07")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "target 0.06" in proc.stderr
    other = _space_file(tmp_path, ("x-spatial", "x-depth"))
    proc = run_cli("expand", "--resume", str(run_dir), "--space", str(other))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "refusing to resume" in proc.stderr


# --- kill -9 in the middle of a step, then resume ---------------------------------------------
def _trial_dirs(run_dir: Path, prefix: str) -> list[Path]:
    folder = run_dir / "candidates"
    return sorted(p for p in folder.glob(f"{prefix}*")) if folder.is_dir() else []


def test_kill_9_mid_step_then_resume_lands_on_the_same_path(reference_run, tiny_dataset: Path, budget_file: Path,
                                                            tmp_path: Path):
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen([str(X3DSEARCH), "expand", "--target-gflops", TARGET, "--data", str(tiny_dataset),
                             "--budget", str(budget_file), "--run-dir", str(run_dir), "--seed", "0", *RULE],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(), start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, "the search ended before it could be interrupted"
            assert time.monotonic() < deadline, "no moment with one finished and one running trial in step 2"
            step2 = _trial_dirs(run_dir, "s02-")
            finished = [d for d in step2 if (d / "result.json").is_file()]
            running = [d for d in step2 if (d / "checkpoint.pt").is_file() and not (d / "result.json").is_file()]
            if finished and running:
                break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the search, its Ray cluster and its trial processes
        proc.wait()
    time.sleep(1.0)
    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "running" and len(state["steps"]) == 2 and not state["steps"][1]["done"]
    done_before = {d.name: (d / "train.log").read_text() for d in _trial_dirs(run_dir, "")
                   if (d / "result.json").is_file()}
    interrupted = [d.name for d in _trial_dirs(run_dir, "s02-") if (d / "checkpoint.pt").is_file()
                   and not (d / "result.json").is_file()]
    assert interrupted and any(name.startswith("s02-") for name in done_before)

    moved = tmp_path / "moved" / "run"  # a moved run directory resumes too
    moved.parent.mkdir()
    shutil.move(str(run_dir), str(moved))
    resumed = run_cli("resume", str(moved))
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    reference, _ = reference_run
    assert _path(_load(moved)) == _path(_load(reference))
    for name, text in done_before.items():  # finished trials were not trained again
        assert (moved / "candidates" / name / "train.log").read_text() == text, name
    for folder in _trial_dirs(moved, ""):
        log = (folder / "train.log").read_text()
        assert log.count("fresh start") == 1, folder.name
    for name in interrupted:  # started trials continued from their checkpoint
        assert "resuming from step" in (moved / "candidates" / name / "train.log").read_text(), name
    assert json.loads((moved / "state.json").read_text())["sessions"] == 2


# --- a Ray cluster started by the test; a candidate that raises -----------------------------
@pytest.fixture()
def ray_head(tmp_path: Path):
    """``ray start --head`` on 127.0.0.1 with one CPU (trials run one at a time, in order).

    Its temp dir is private, so the head does not become other processes' default cluster;
    teardown ends the process group this fixture started.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp_dir = tempfile.mkdtemp(prefix="x3dray", dir="/tmp")
    head = subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--head", "--port", str(port),
                             "--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--include-dashboard", "false",
                             "--disable-usage-stats", "--temp-dir", temp_dir, "--block"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(), start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert head.poll() is None and time.monotonic() < deadline, "the Ray head did not start"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(head.pid, sig)
            except ProcessLookupError:
                break
            try:
                head.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        shutil.rmtree(temp_dir, ignore_errors=True)


def _plant_when_seed_runs(proc: subprocess.Popen, run_dir: Path, names: list[str]) -> None:
    """Put a file where these candidates' output folders go while the seed trains, so their
    trainings fail for real (the folder cannot be created) when their turn comes."""
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


def test_repeats_and_ties_retrained_are_deterministic_and_a_repeat_killed_with_kill_9_resumes(
        tiny_dataset: Path, budget_file: Path, tmp_path: Path):
    """--repeats 2 --on-tie repeat: every candidate trains with 2 seeds, tied ones with a third; a run
    killed in the middle of a repeat ends, resumed, exactly as one that was not."""
    space = _space_file(tmp_path, ("x-spatial", "x-bottleneck"))
    args = ["expand", "--target-gflops", "0.03", "--data", str(tiny_dataset), "--budget", str(budget_file),
            "--space", str(space), "--repeats", "2", "--on-tie", "repeat", "--max-repeats", "3"]
    reference = tmp_path / "reference"
    done = run_cli(*args, "--run-dir", str(reference))
    assert done.returncode == 0, done.stderr[-3000:]
    log = _load(reference)
    step = log["steps"][0]
    assert all(c["repeats"] >= 2 and c["score_sd"] is not None for c in step["candidates"])
    assert step["decision"]["repeats"] >= 2 and step["decision"]["rule"] == "repeat"
    names = sorted(d.name for d in _trial_dirs(reference, "s01-"))
    assert {"s01-x-spatial-r1", "s01-x-bottleneck-r1"} <= set(names)
    if not step["decision"]["significant"]:  # 3 validation videos: a tie, trained once more (seed 3 of 3)
        assert any(n.endswith("-r2") for n in names) and "training them again" in (reference / "search.log").read_text()
    seeds = {json.loads((reference / "candidates" / n / "config.json").read_text())["seed"] for n in names}
    assert seeds >= {0, 100003}  # repeat k: seed + 100003 k, the same for every candidate

    killed = tmp_path / "killed"
    proc = subprocess.Popen([str(X3DSEARCH), *args, "--run-dir", str(killed)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=_env(), start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not [d for d in _trial_dirs(killed, "s01-") if d.name.rsplit("-", 1)[-1].startswith("r")
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

    assert _path(_load(killed)) == _path(log) and scored(_load(killed)) == scored(log)
    assert any("resuming from step" in (d / "train.log").read_text() for d in _trial_dirs(killed, "s01-"))


def test_search_joins_a_ray_head_and_records_a_raising_candidate(ray_head: str, tiny_dataset: Path,
                                                                 tmp_path: Path):
    space = _space_file(tmp_path, ("x-spatial", "x-width"))
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([str(X3DSEARCH), "expand", "--target-gflops", "0.04", "--data", str(tiny_dataset),
                             "--budget", "smoke", "--space", str(space), "--run-dir", str(run_dir),
                             "--address", ray_head], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(), start_new_session=True)
    try:
        _plant_when_seed_runs(proc, run_dir, ["s01-x-width"])
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err[-3000:]
    assert f"Ray cluster at {ray_head}: 1 CPUs" in (run_dir / "search.log").read_text()
    log = _load(run_dir)
    (step,) = log["steps"]
    by_axis = {c["axis"]: c for c in step["candidates"]}
    assert by_axis["x-width"]["status"] == "failed" and by_axis["x-width"]["top1"] is None
    assert "s01-x-width" in by_axis["x-width"]["error"] and "\n" not in by_axis["x-width"]["error"]
    errors = (run_dir / "trials" / "step01" / "s01-x-width" / "error.txt").read_text()
    assert "Failure # 2" in errors  # FailureConfig retried it once (--max-failures 1) before giving up
    assert by_axis["x-spatial"]["status"] == "ok" and step["chosen"] == "x-spatial"
    assert log["final"]["factors"] == by_axis["x-spatial"]["factors"] and log["contraction"] is None
    assert "x-width" in err and "failed" in err


def test_a_step_where_every_candidate_fails_stops_and_resume_retries(tiny_dataset: Path, tmp_path: Path):
    space = _space_file(tmp_path, ("x-spatial",))
    run_dir = tmp_path / "run"
    cpus = str(len(os.sched_getaffinity(0)))  # one trial at a time: the seed runs before the candidate
    proc = subprocess.Popen([str(X3DSEARCH), "expand", "--target-gflops", "0.04", "--data", str(tiny_dataset),
                             "--budget", "smoke", "--space", str(space), "--run-dir", str(run_dir),
                             "--cpus-per-trial", cpus], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(), start_new_session=True)
    try:
        _plant_when_seed_runs(proc, run_dir, ["s01-x-spatial"])
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("x3dsearch: error: every candidate of step 1 failed") and "x3dsearch resume" in last
    state = json.loads((run_dir / "state.json").read_text())
    assert state["seed"]["status"] == "ok" and state["steps"][0]["candidates"][0]["status"] == "failed"
    assert _load(run_dir)["status"] == "interrupted" and _load(run_dir)["stop_reason"] == "every candidate failed"

    (run_dir / "candidates" / "s01-x-spatial").unlink()  # the cause is fixed
    with open(run_dir / ".lock", "w") as held:  # as if another search process were running it
        fcntl.flock(held, fcntl.LOCK_EX)
        busy = run_cli("resume", str(run_dir))
    assert busy.returncode == 2 and busy.stderr == f"x3dsearch: error: run dir {run_dir} is in use by another " \
                                                   f"x3dsearch process\n"
    resumed = run_cli("resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = _load(run_dir)
    assert log["status"] == "finished" and log["steps"][0]["chosen"] == "x-spatial"
    assert log["steps"][0]["candidates"][0]["status"] == "ok" and log["stop_reason"] != "every candidate failed"
    seed_log = (run_dir / "candidates" / "seed" / "train.log").read_text()
    assert seed_log.count("fresh start") == 1 and "resuming" not in seed_log  # the seed was not retrained


def test_contraction_along_every_axis_with_gain_per_gflop(tiny_dataset: Path, tmp_path: Path):
    space = _space_file(tmp_path, ("x-spatial", "x-bottleneck"))
    run_dir = tmp_path / "run"
    proc = run_cli("expand", "--target-gflops", "0.03", "--data", str(tiny_dataset), "--budget", "smoke",
                   "--space", str(space), "--run-dir", str(run_dir), "--criterion", "gain-per-gflop",
                   "--contract-axes", "all")
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads((run_dir / "state.json").read_text())
    (step,) = state["steps"]
    seed = state["seed"]
    usable = [c for c in step["candidates"] if c["status"] == "ok"]

    def gain(c: dict, base: dict) -> tuple:  # state.json keeps each trial's training result whole
        return ((c["result"]["top1"] - base["result"]["top1"]) / (c["gflops"] - base["gflops"]), -c["gflops"])

    assert step["chosen"] == max(usable, key=lambda c: gain(c, seed))["axis"] and max(
        c["gflops"] for c in usable) > 0.03
    contraction = state["contraction"]
    assert contraction["axis"] == step["chosen"] and contraction["start"] == "seed"
    tried = {c["axis"]: c for c in contraction["candidates"]}
    assert set(tried) == {"x-spatial", "x-bottleneck"}  # its own axis and every other one
    for c in tried.values():
        assert c["gflops"] <= 0.03 and c["status"] == "ok"
        assert complexity(Factors.from_dict(c["factors"]), 3).gflops <= 0.03
    kept = max(tried.values(), key=lambda c: gain(c, seed))
    assert contraction["chosen"] == kept["name"]
    log = _load(run_dir)
    assert log["contraction"]["axis"] == kept["axis"] and log["final"]["factors"] == kept["factors"]
    assert log["final"]["gflops"] <= 0.03


def test_a_search_stopped_by_the_space_bounds_says_so(tiny_dataset: Path, tmp_path: Path):
    """One crop step is all the space allows (depth is at its bound from the start): after step 1 the
    search stops short of the target, and the log and show say why."""
    data = yaml.safe_load(DEFAULT_SPACE.read_text())
    seed = data["seed"]
    data["axes"] = {"x-spatial": {"factor": "crop", "step": 8, "max": 160},
                    "x-depth": {"factor": "depth", "step": 0.1, "max": seed["depth"]}}
    space = tmp_path / "bounded.yaml"
    space.write_text(yaml.safe_dump(data, sort_keys=False))
    run_dir = tmp_path / "run"
    proc = run_cli("expand", "--target-gflops", "0.06", "--data", str(tiny_dataset), "--budget", "smoke",
                   "--space", str(space), "--run-dir", str(run_dir))
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = _load(run_dir)
    assert [s["chosen"] for s in log["steps"]] == ["x-spatial"] and log["final"]["gflops"] < 0.06
    assert log["stop_reason"] == "every axis bounded" and "bounds of the space reached" in log["stop_detail"]
    assert "stopped: every axis bounded" in run_cli("show", str(run_dir)).stdout


def test_relative_data_and_run_dir_work_and_resume_from_another_directory(tiny_dataset: Path, tmp_path: Path):
    """Paths are the caller's: trials run in other directories, and a resume may start anywhere."""
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    shutil.copytree(tiny_dataset, here / "mydata")
    space = _space_file(tmp_path, ("x-spatial",))
    proc = subprocess.Popen([str(X3DSEARCH), "expand", "--target-gflops", "0.04", "--data", "./mydata",
                             "--run-dir", "rel-run", "--budget", "smoke", "--space", str(space)], cwd=here,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(), start_new_session=True)
    run_dir = here / "rel-run"
    try:
        deadline = time.monotonic() + 240
        while not [d for d in _trial_dirs(run_dir, "") if (d / "result.json").is_file()]:
            assert proc.poll() is None, "the search ended before it could be interrupted"
            assert time.monotonic() < deadline, "no trial finished"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    results = [json.loads((d / "result.json").read_text()) for d in _trial_dirs(run_dir, "")
               if (d / "result.json").is_file()]
    assert results and all(r["status"] == "ok" for r in results)  # a trial found ./mydata
    resumed = subprocess.run([str(X3DSEARCH), "resume", "../here/rel-run"], cwd=elsewhere, capture_output=True,
                             text=True, timeout=240, env=_env())
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = _load(run_dir)
    assert log["status"] == "finished" and log["data"]["root"] == str((here / "mydata").resolve())
    assert all(c["status"] == "ok" for s in log["steps"] for c in s["candidates"])


def test_a_replay_trains_only_the_paths_model_and_contracts_as_usual(tiny_dataset: Path, tmp_path: Path):
    run_dir = tmp_path / "replay"
    proc = run_cli("expand", "--path", "spatial,bottleneck,depth", "--target-gflops", "0.06", "--data",
                   str(tiny_dataset), "--budget", "smoke", "--run-dir", str(run_dir))
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = _load(run_dir)
    assert log["path"] == ["x-spatial", "x-bottleneck", "x-depth"]
    assert [[c["axis"] for c in s["candidates"]] for s in log["steps"]] == [["x-spatial"], ["x-bottleneck"]]
    assert [s["chosen"] for s in log["steps"]] == ["x-spatial", "x-bottleneck"]
    assert log["stop_reason"] == "target reached" and log["final"]["gflops"] <= 0.06
    assert log["contraction"]["axis"] == "x-bottleneck"
    plan = json.loads(run_cli("expand", "--dry-run", "--json", "--classes", "3", "--path", "spatial,bottleneck,depth",
                              "--target-gflops", "0.06").stdout)
    assert log["final"]["factors"] == plan["final"]["factors"]  # the dry run planned what the replay trained


def test_a_latency_targeted_search_records_ms_and_stays_under_its_target(tiny_dataset: Path, tmp_path: Path):
    from x3dsearch.latency import LatencyConfig, measure_latency
    from x3dsearch.search.space import load_space

    seed_ms = measure_latency(load_space().seed, 3, LatencyConfig()).median_ms
    run_dir = tmp_path / "latency"
    space = _space_file(tmp_path, ("x-spatial", "x-bottleneck"))
    proc = run_cli("expand", "--complexity", "latency", "--target-ms", f"{2.5 * seed_ms:.3f}", "--data",
                   str(tiny_dataset), "--budget", "smoke", "--space", str(space), "--run-dir", str(run_dir))
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = _load(run_dir)
    assert log["complexity"] == "latency" and log["target_ms"] == pytest.approx(2.5 * seed_ms, rel=1e-3)
    assert log["target_gflops"] is None
    for step in log["steps"]:
        assert all(c["ms"] > 0 and c["gflops"] > 0 for c in step["candidates"])
    final = yaml.safe_load((run_dir / "final_model.yaml").read_text())
    assert final["latency_ms"] <= log["target_ms"] and "target_ms" in final
    assert "ms target" in proc.stdout
    plot = run_cli("plot", str(run_dir), "-o", str(tmp_path / "ms.svg"))  # a latency run plots in ms
    assert plot.returncode == 0, plot.stderr
    assert "measured latency per clip" in (tmp_path / "ms.svg").read_text()


def test_baselines_train_under_the_runs_budget_and_are_compared_with_the_final_model(reference_run, tmp_path: Path):
    source, _ = reference_run
    run_dir = tmp_path / "with-baselines"
    shutil.copytree(source, run_dir)
    before = _load(run_dir)
    proc = run_cli("baseline", str(run_dir), "--presets", "x2d")
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = _load(run_dir)
    (entry,) = log["baselines"]
    assert entry["name"] == "x2d" and entry["status"] == "ok" and entry["score_videos"] == 3
    assert set(entry["vs_final"]) == {"margin", "ci"} and entry["vs_final"]["ci"][0] <= entry["vs_final"]["margin"]
    assert log["cost"]["train_macs"] == before["cost"]["train_macs"]  # a baseline is not the search's cost
    assert (run_dir / "candidates" / "baseline-x2d" / "result.json").is_file()
    assert "baselines (the run's data, budget and seeds" in proc.stdout and "x2d" in proc.stdout
    again = run_cli("baseline", str(run_dir), "--presets", "x2d")  # already there: nothing is trained again
    assert again.returncode == 0 and _load(run_dir)["baselines"] == log["baselines"]
