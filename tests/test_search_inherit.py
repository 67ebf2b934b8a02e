"""``expand --proxy-init inherit --keep chosen`` through the real CLI, real Ray and real videos
(``signal_dataset``, decide budget): every candidate starts from its step start's trained weights, grown;
step 1 is decided on scores; and a ``kill -9`` in step 2 resumes onto the uninterrupted run's path."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from x3dsearch.factors import Factors

from search_helpers import (X3DSEARCH, assert_decided_on_scores, cli_env, decide_budget, load_log, run_cli, space_file,
                            trial_dirs, without_nodes)

pytestmark = pytest.mark.slow

AXES = ("x-temporal", "x-depth", "x-width")
TARGET = "0.06"  # 2 classes: X2D is 0.0198 GFLOPs, a step about 0.039, the next overshoots: 2 steps, a contraction


@pytest.fixture(scope="module")
def args(signal_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The search's arguments: three axes (only X-Temporal reads two frames), the decide budget with a
    checkpoint after every step (so a kill lands between checkpoints of a running trial; no number
    changes), inherit, --keep chosen."""
    folder = tmp_path_factory.mktemp("inherit-inputs")
    return ["expand", "--target-gflops", TARGET, "--data", str(signal_dataset), "--budget",
            str(decide_budget(folder, checkpoint_every=1)), "--space", str(space_file(folder, AXES)), "--seed", "0",
            "--criterion", "top1", "--on-tie", "best", "--proxy-init", "inherit", "--keep", "chosen"]


@pytest.fixture(scope="module")
def inherit_run(args: list[str], shared_ray: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The search, on the session's shared Ray head (the kill -9 test starts its own local Ray, as a user would)."""
    run_dir = tmp_path_factory.mktemp("inherit") / "run"
    proc = run_cli(*args, "--run-dir", str(run_dir), "--address", shared_ray, timeout=480)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir, proc.stdout


def _init(run_dir: Path, name: str) -> str | None:
    """The init a trial's training folder recorded (the trainer's config.json)."""
    return json.loads((run_dir / "candidates" / name / "config.json").read_text())["init"]


def _weights(run_dir: Path, name: str) -> Path:
    return (run_dir / "candidates" / name / "model.pt").resolve()


def _path(log: dict) -> dict:
    """What must not depend on an interruption: choices, every candidate's scores, start, result."""
    def cand(c: dict) -> tuple:
        return (c["axis"], json.dumps(c["factors"]), c["gflops"], c["top1"], c["top5"], c["score"], c["score_ci"],
                c["status"], c["init"], c["parent"], c["train_macs"])

    return {"steps": [(s["step"], s["chosen"], json.dumps(without_nodes(s["from"])),
                       [cand(c) for c in s["candidates"]], s["decision"]) for s in log["steps"]],
            "contraction": without_nodes(log["contraction"]), "final": log["final"]}


def test_every_candidate_starts_from_its_step_starts_weights(inherit_run):
    run_dir, stdout = inherit_run
    log, state = load_log(run_dir), json.loads((run_dir / "state.json").read_text())
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert log["proxy_init"] == config["proxy_init"] == "inherit" and "proxy init inherit" in stdout
    assert len(log["steps"]) == 2 and log["contraction"] is not None and log["final"] is not None
    # Grown from the seed's 1-frame weights, X-Temporal still learns what a second frame shows; the
    # 1-frame candidates cannot: step 1 is decided on scores.
    assert_decided_on_scores(log["steps"][0], {"x-temporal"})
    starts = ["seed", f"s01-{log['steps'][0]['chosen']}"]
    assert [s["start"] for s in state["steps"]] == starts
    assert _init(run_dir, "seed") is None  # the seed model starts from scratch
    for step, start in zip(log["steps"], starts):
        for c in step["candidates"]:
            name = f"s{step['step']:02d}-{c['axis']}"
            assert (c["init"], c["parent"]) == ("inherit", start), name
            assert _init(run_dir, name) == f"../{start}/model.pt", name  # relative: the run can move
            grew = (f"init: grew {Factors.from_dict(step['from']['factors']).short()} -> "
                    f"{Factors.from_dict(c['factors']).short()} from {_weights(run_dir, start)}")
            assert grew in (run_dir / "candidates" / name / "train.log").read_text(), name

    # the seed trained first, alone (its own experiment), before any candidate of step 1 started
    seed_end = state["seed"]["sessions"][-1][1]
    first = min(s[0] for c in state["steps"][0]["candidates"] for s in c["sessions"])
    assert seed_end <= first and (run_dir / "trials" / "step01-start").is_dir()

    # contraction candidates grow from the overshooting step's start, as the log and their folders say
    contraction = state["contraction"]
    assert contraction["start"] == starts[1] and contraction["overshoot"] == f"s02-{log['steps'][1]['chosen']}"
    trained = [c for c in contraction["candidates"] if c["status"] != "skipped"]
    assert trained and {(c["init"], c["parent"]) for c in trained} == {("inherit", starts[1])}
    for c in trained:
        assert _init(run_dir, c["name"]) == f"../{starts[1]}/model.pt", c["name"]
    assert (log["contraction"]["init"], log["contraction"]["parent"]) == ("inherit", starts[1])

    # --keep chosen: every parent's weights stayed, the other candidates' went
    kept = {*starts, f"s02-{log['steps'][1]['chosen']}", contraction["chosen"]}
    for name in kept:
        assert _weights(run_dir, name).is_file(), name
    others = [d.name for d in trial_dirs(run_dir, "") if d.name not in kept]
    assert others and not any(_weights(run_dir, name).exists() for name in others)


@pytest.mark.fault  # injects a fault: make test-faults runs it, make test does not
def test_kill_9_in_step_2_then_moved_and_resumed_lands_on_the_same_path(inherit_run, args: list[str],
                                                                        signal_dataset: Path, tmp_path: Path):
    """Started with relative paths (trials run in other directories), killed with kill -9 while a trial
    of step 2 runs, moved, and resumed through a relative path from another directory: the same path
    as the uninterrupted run, nothing finished trained again, the interrupted trial continued from its
    checkpoint and still grown from the step's start. The report page says what happened at each point."""
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    shutil.copytree(signal_dataset, here / "mydata")
    relative = [("./mydata" if a == str(signal_dataset) else a) for a in args]
    run_dir = here / "killed"
    proc = subprocess.Popen([str(X3DSEARCH), *relative, "--run-dir", "killed"], cwd=here, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=cli_env(), start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, "the search ended before it could be interrupted"
            assert time.monotonic() < deadline, "no running trial seen in step 2"
            running = [d for d in trial_dirs(run_dir, "s02-")
                       if (d / "checkpoint.pt").is_file() and not (d / "result.json").is_file()]
            if running:
                break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the search, its Ray cluster and its trial processes
        proc.wait()
    time.sleep(1.0)
    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "running" and len(state["steps"]) == 2 and not state["steps"][1]["done"]
    interrupted = [d.name for d in running if not (d / "result.json").is_file()]
    assert interrupted
    page = (run_dir / "report.html").read_text()  # the search's last page: it was running, so it reloads
    assert '<meta http-equiv="refresh"' in page and "<h2>Running: step 2" in page
    again = run_cli("report", str(run_dir))  # rewritten now that no process holds the run: it stops reloading
    assert again.returncode == 0, again.stderr
    page = (run_dir / "report.html").read_text()
    assert '<meta http-equiv="refresh"' not in page and "(killed?)" in page and "<h2>Unfinished: step 2" in page
    done_before = {d.name: (d / "train.log").read_text() for d in trial_dirs(run_dir, "")
                   if (d / "result.json").is_file()}

    moved = tmp_path / "moved" / "run"  # a moved run directory resumes its grown trainings too
    moved.parent.mkdir()
    shutil.move(str(run_dir), str(moved))
    resumed = subprocess.run([str(X3DSEARCH), "resume", "../moved/run"], cwd=elsewhere, capture_output=True,
                             text=True, timeout=480, env=cli_env())
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = load_log(moved)
    assert log["data"]["root"] == str((here / "mydata").resolve())  # a trial found ./mydata
    reference, _ = inherit_run
    assert _path(log) == _path(load_log(reference))
    for name, text in done_before.items():  # finished trials were not trained again
        assert (moved / "candidates" / name / "train.log").read_text() == text, name
    start = state["steps"][1]["start"]
    for name in interrupted:  # continued from its own checkpoint, still grown from the step's start
        assert "resuming from step" in (moved / "candidates" / name / "train.log").read_text(), name
        assert _init(moved, name) == f"../{start}/model.pt", name
    assert json.loads((moved / "state.json").read_text())["sessions"] == 2
    page = (moved / "report.html").read_text()
    assert '<meta http-equiv="refresh"' not in page and '<span class="badge finished">' in page


def test_a_random_baseline_of_the_inherit_run_grows_from_its_seed_models_weights(inherit_run, shared_ray: str,
                                                                                 tmp_path: Path):
    """``baseline --random 1`` on the finished run (a copy) with no --proxy-init: the run's own, inherit. The
    baseline starts from the seed model's trained model.pt, grown, as a first-step candidate did: the state,
    the log and the trainer's own config.json and train.log say so."""
    reference, _ = inherit_run
    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir)
    proc = run_cli("baseline", str(run_dir), "--random", "1", "--address", shared_ray, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    entry = load_log(run_dir)["baselines"][0]
    assert (entry["name"], entry["status"], entry["init"], entry["parent"]) == ("random-1", "ok", "inherit", "seed")
    trial = json.loads((run_dir / "state.json").read_text())["baselines"][0]["trial"]
    assert (trial["name"], trial["init"], trial["parent"]) == ("baseline-random-1", "inherit", "seed")
    assert _init(run_dir, "baseline-random-1") == "../seed/model.pt"
    seed = Factors.from_dict(load_log(run_dir)["steps"][0]["from"]["factors"])
    grown = Factors.from_dict(entry["factors"]).short()
    grew = f"init: grew {seed.short()} -> {grown} from {_weights(run_dir, 'seed')}"
    assert grew in (run_dir / "candidates" / "baseline-random-1" / "train.log").read_text()
    assert "proxy init inherit" in (run_dir / "search.log").read_text()  # the batch's title names it
