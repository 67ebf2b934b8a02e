"""Chaos: a smoke search killed with ``kill -9`` at N moments drawn from a seed, resumed after each.

The moments are phases of the search, recognised from what it leaves on disk while it runs:

- ``training``: a training of this session has written a checkpoint and no result yet;
- ``decision``: every training of the open step (or contraction) has finished, and no score is logged yet;
- ``heldout``: the scores of the open step are logged, it is not saved as done: the held-out evaluation;
- ``contraction``: the contraction is recorded and not done;
- ``state-write``: ``state.json`` has just been written again (or its temporary file exists).

Each kill waits for its phase to hold in the running session, then for a delay drawn from the same
seed, and sends SIGKILL to the search process alone (Ray and the trials are left to notice). The
search is resumed from another working directory, through a relative path, each time. At the end
the run must equal an uninterrupted one (path, decisions, scores, held-out top-1, final_model.yaml),
no finished training may have trained again (count of results in each training's train.log), and no
Ray process of the chaotic run may be left (processes whose command line names its Ray temp dir).

    python experiments/chaos.py --kills 10 --seed 0 --out /tmp/chaos [--axes x-spatial,x-bottleneck]

prints one JSON report; exit code 0 when every check holds, 1 when one does not.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

PHASES = ("training", "decision", "heldout", "contraction", "state-write")
FINISHED = ("ok", "failed", "diverged", "skipped")
X3DSEARCH = Path(sys.executable).parent / "x3dsearch"
MAX_UNPLANNED = 3  # sessions that end by themselves, resumed before the experiment gives up


@dataclass
class Moment:
    phase: str
    delay_s: float
    seen: list[str] = field(default_factory=list)  # the phases that held when the kill was sent
    at_s: float | None = None                      # seconds into the session
    hit: bool = False
    ray_after_kill: int | None = None              # processes of the run's Ray alive just after the kill


def schedule(kills: int, seed: int) -> list[Moment]:
    """``kills`` phases: every phase once (as far as ``kills`` goes) in an order drawn from ``seed``, the
    rest drawn at random; contraction kills last, since nothing but the contraction follows it."""
    rng = random.Random(seed)
    phases = rng.sample(PHASES, min(kills, len(PHASES))) + [rng.choice(PHASES) for _ in range(kills - len(PHASES))]
    phases.sort(key=lambda p: p == "contraction")
    return [Moment(p, round(rng.uniform(0.0, 0.3), 3)) for p in phases]


# --- what the run directory shows ----------------------------------------------------------------
class Probe:
    """The phases that hold now in a run directory, for the session that started at ``since``."""

    def __init__(self, run_dir: Path, since: float):
        self.run_dir = run_dir
        self.since = since
        self.state_mtime: float | None = None
        self.log_offset = _size(run_dir / "search.log")

    def phases(self) -> set[str]:
        state_path = self.run_dir / "state.json"
        try:
            mtime = state_path.stat().st_mtime
            state = json.loads(state_path.read_text())
        except (OSError, json.JSONDecodeError):
            return set()
        if mtime < self.since:  # nothing of this session yet (Ray is starting)
            return set()
        held = set()
        if (self.state_mtime is not None and mtime != self.state_mtime) or any(self.run_dir.glob(".state.json.*.tmp")):
            held.add("state-write")
        self.state_mtime = mtime
        for folder in (self.run_dir / "candidates").glob("*"):
            ckpt = folder / "checkpoint.pt"
            if not (folder / "result.json").exists() and ckpt.exists() and ckpt.stat().st_mtime >= self.since:
                held.add("training")
        record, label = _open_record(state)
        contraction = state.get("contraction")
        if contraction and not contraction.get("done"):
            held.add("contraction")
        if record is not None and all(t["status"] in FINISHED for t in _trainings(record)):
            logged = _read_from(self.run_dir / "search.log", self.log_offset)
            held.add("heldout" if f"{label}: * " in logged else "decision")
        return held


def _open_record(state: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    for step in state.get("steps", []):
        if not step.get("done"):
            return step, f"step {step['step']}"
    contraction = state.get("contraction")
    if contraction and not contraction.get("done"):
        return contraction, "contraction"
    return None, ""


def _trainings(record: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for trial in record.get("candidates", []):
        out.append(trial)
        out.extend(trial.get("repeats") or [])
    return out


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            f.seek(offset)
            return f.read()
    except OSError:
        return ""


# --- running and killing -----------------------------------------------------------------------
def _env(ray_tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_TMPDIR=str(ray_tmp), PYTHONUNBUFFERED="1")
    return env


def _start(args: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([str(X3DSEARCH), *args], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)


def _kill_at(proc: subprocess.Popen, run_dir: Path, moment: Moment, since: float, timeout: float) -> None:
    """Wait for the moment's phase in the running session, then its delay, then SIGKILL the search; a
    session that ends first, or outlasts ``timeout``, is left to the caller."""
    probe = Probe(run_dir, since)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if moment.phase in probe.phases():
            time.sleep(moment.delay_s)
            moment.seen = sorted(probe.phases() | {moment.phase}) if proc.poll() is None else []
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                moment.hit, moment.at_s = True, round(time.time() - since, 2)
                proc.wait()  # gone, and its lock with it
            return
        time.sleep(0.01)


def _wait(proc: subprocess.Popen, timeout: float) -> int:
    """The session's exit code; one that hangs past ``timeout`` is killed (and counts as exit code -9)."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def ray_processes(ray_tmp: Path) -> list[str]:
    """Live processes whose command line names the chaotic run's Ray temp dir (raylet, GCS, workers)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if str(ray_tmp) in cmdline or f"RAY_TMPDIR={ray_tmp}\0".encode() in environ:
            found.append(f"{proc.name} {cmdline[:120]}")
    return found


def wait_for_no_ray(ray_tmp: Path, grace_s: float) -> list[str]:
    deadline = time.monotonic() + grace_s
    while True:
        left = ray_processes(ray_tmp)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


# --- what must be equal ----------------------------------------------------------------------------
CANDIDATE_KEYS = ("axis", "factors", "gflops", "params_m", "top1", "top5", "status", "error", "train_macs", "score",
                  "score_ci", "score_videos", "top1_ci", "heldout_top1", "score_sd", "repeats")


def outcome(run_dir: Path) -> dict[str, Any]:
    """What must not depend on interruptions: choices, decisions, every candidate's scores, the result."""
    log = yaml.safe_load((run_dir / "expansion_path.yaml").read_text())

    def cand(c: dict[str, Any]) -> dict[str, Any]:
        return {k: c.get(k) for k in CANDIDATE_KEYS}

    def placed_anywhere(entry: dict[str, Any] | None) -> dict[str, Any] | None:
        # without the Ray nodes its models trained on, at any depth: a resumed search starts a new local
        # Ray, with a new node id
        if entry is None:
            return None
        return {k: placed_anywhere(v) if isinstance(v, dict) else v for k, v in entry.items() if k != "node"}

    return {"steps": [{"step": s["step"], "from": placed_anywhere(s["from"]), "chosen": s["chosen"],
                       "decision": s["decision"], "candidates": [cand(c) for c in s["candidates"]]}
                      for s in log["steps"]],
            "contraction": placed_anywhere(log["contraction"]), "final": log["final"], "status": log["status"],
            "stop_reason": log["stop_reason"], "final_model": (run_dir / "final_model.yaml").read_text()}


def training_counts(run_dir: Path) -> dict[str, dict[str, int]]:
    """Per training folder, from its train.log: results written, fresh starts, resumptions."""
    counts = {}
    for log in sorted((run_dir / "candidates").glob("*/train.log")):
        text = log.read_text(errors="replace")
        counts[log.parent.name] = {"results": text.count("result: "), "fresh": text.count("fresh start"),
                                   "resumed": text.count("resuming from step")}
    return counts


# --- the experiment --------------------------------------------------------------------------------
def make_inputs(out: Path, axes: list[str], data: Path | None) -> tuple[Path, Path, Path]:
    """A tiny dataset with a test split (so a held-out evaluation happens), the smoke budget with a
    checkpoint after every training step, and the default space cut down to ``axes``."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from x3dsearch.budget import BUDGET_DIR
    from x3dsearch.data import synthesize
    from x3dsearch.search.space import DEFAULT_SPACE

    if data is None:
        data = out / "data"
        if not data.is_dir():
            synthesize(data, classes=3, videos_per_class=5, seed=0, size=(64, 86), seconds=(1.0, 1.5),
                       val_fraction=0.25, test_fraction=0.2)
    budget = yaml.safe_load((BUDGET_DIR / "smoke.yaml").read_text())
    budget["checkpoint_every"] = 1
    budget_file = out / "smoke-ckpt.yaml"
    budget_file.write_text(yaml.safe_dump(budget))
    space = yaml.safe_load(DEFAULT_SPACE.read_text())
    space["axes"] = {k: v for k, v in space["axes"].items() if k in axes}
    space["name"] = "-".join(axes)
    space_file = out / "space.yaml"
    space_file.write_text(yaml.safe_dump(space, sort_keys=False))
    return data, budget_file, space_file


def run(kills: int, seed: int, out: Path, axes: list[str], target: float, data: Path | None,
        reference: Path | None, timeout: float) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    data, budget, space = make_inputs(out, axes, data)
    args = ["--target-gflops", str(target), "--data", str(data.resolve()), "--budget", str(budget), "--space",
            str(space), "--seed", "0", "--criterion", "top1", "--on-tie", "best"]
    ray_tmp = Path(tempfile.mkdtemp(prefix="chaos", dir="/tmp"))
    env = _env(ray_tmp)
    report: dict[str, Any] = {"kills": kills, "seed": seed, "axes": axes, "target_gflops": target}
    if reference is None:
        reference = out / "reference"
        shutil.rmtree(reference, ignore_errors=True)
        started = time.monotonic()
        scratch = Path(tempfile.mkdtemp(prefix="chaosref", dir="/tmp"))
        done = subprocess.run([str(X3DSEARCH), "expand", *args, "--run-dir", str(reference)], env=_env(scratch),
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise SystemExit(f"the reference search failed: {done.stderr[-2000:]}")
        report["reference_wall_s"] = round(time.monotonic() - started, 1)
    run_dir = out / "chaos" / "run"
    shutil.rmtree(out / "chaos", ignore_errors=True)
    homes = [out / "chaos" / f"cwd{k}" for k in range(kills + 1)]
    for home in homes:
        home.mkdir(parents=True)
    console = out / "chaos" / "console.log"
    moments = schedule(kills, seed)
    started = time.monotonic()
    since = time.time()
    proc = _start(["expand", *args, "--run-dir", str(run_dir)], homes[0], env, console)
    unplanned: list[dict[str, Any]] = []
    k = 0
    while True:
        moment = moments[k] if k < len(moments) else None
        if moment is not None:
            _kill_at(proc, run_dir, moment, since, timeout)
            if moment.hit:
                moment.ray_after_kill = len(ray_processes(ray_tmp))
                k += 1
        returncode = _wait(proc, timeout) if moment is None or not moment.hit else None
        if returncode is not None:
            if returncode == 0 or len(unplanned) >= MAX_UNPLANNED:
                break
            # The session ended by itself (on an overloaded machine Ray can lose its own GCS): a fault
            # too, recorded, and resumed like a kill.
            unplanned.append({"after_kill": k, "returncode": returncode, "at_s": round(time.time() - since, 1)})
        since = time.time()
        home = homes[min(k, len(homes) - 1)]
        proc = _start(["resume", os.path.relpath(run_dir, home)], home, env, console)
    report["unplanned_exits"] = unplanned
    report["chaos_wall_s"] = round(time.monotonic() - started, 1)
    report["returncode"] = returncode
    report["moments"] = [asdict(m) for m in moments]
    report["kills_survived"] = sum(m.hit for m in moments) if returncode == 0 else None
    report["ray_processes_at_end"] = len(ray_processes(ray_tmp))
    # After kill -9, Ray's agents of the killed session (DashboardAgent, RuntimeEnvAgent) notice within
    # about a minute and exit: what is left after that is an orphan.
    left = wait_for_no_ray(ray_tmp, grace_s=90.0)
    report["ray_processes_left"] = len(left)
    report["ray_processes"] = left
    for line in left:  # counted: now they go, so the experiment leaves nothing running
        try:
            os.kill(int(line.split()[0]), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    counts = training_counts(run_dir) if (run_dir / "candidates").is_dir() else {}
    report["trainings"] = len(counts)
    report["finished_trainings_repeated"] = sum(max(0, c["results"] - 1) for c in counts.values())
    report["fresh_restarts"] = sum(max(0, c["fresh"] - 1) for c in counts.values())
    report["resumed_from_checkpoint"] = sum(c["resumed"] for c in counts.values())
    same = returncode == 0 and outcome(run_dir) == outcome(reference)
    report["same_as_uninterrupted"] = same
    report["sessions"] = json.loads((run_dir / "state.json").read_text()).get("sessions") if run_dir.is_dir() else None
    report["ok"] = bool(same and report["finished_trainings_repeated"] == 0 and not left)
    shutil.rmtree(ray_tmp, ignore_errors=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--axes", default="x-spatial,x-bottleneck", help="the space's axes kept (comma-separated)")
    parser.add_argument("--target", type=float, default=0.06, help="GFLOPs (0.06: two steps and a contraction)")
    parser.add_argument("--data", type=Path, help="dataset root [default: a tiny synthetic one with a test split]")
    parser.add_argument("--reference", type=Path, help="an uninterrupted run of the same search [default: run one]")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one session may take")
    ns = parser.parse_args()
    report = run(ns.kills, ns.seed, ns.out.resolve(), ns.axes.split(","), ns.target, ns.data, ns.reference,
                 ns.timeout)
    print(json.dumps(report, indent=2))
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
