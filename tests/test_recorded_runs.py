"""Run directories written before the redesign of the search's records still show, plot and resume.

The fixtures are real runs recorded by the commit before that change (see
``tests/fixtures/recorded_runs/README.md``): one finished, one killed with ``kill -9`` in step 2.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from x3dsearch.cli.main import main
from x3dsearch.report.plot import find_artists, plot_runs
from x3dsearch.runlog import RunDir, RunInfo, load_run

RECORDED = Path(__file__).parent / "fixtures" / "recorded_runs"


def _copy(name: str, tmp_path: Path, data: Path) -> Path:
    """The recorded run, with its config pointing at ``data`` (the identical tiny dataset)."""
    run_dir = tmp_path / name
    shutil.copytree(RECORDED / name, run_dir)
    config_path = run_dir / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["data"]["spec"] = config["data"]["root"] = str(data)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return run_dir


def _path(run_dir: Path) -> list[tuple]:
    log = yaml.safe_load((run_dir / "expansion_path.yaml").read_text())
    # top-1 to 1e-4 points: the recorded runs stored a float32 mean, today's trainer a float64 fraction
    return [(s["step"], s["chosen"], [(c["axis"], c["gflops"], round(c["top1"], 4), c["status"])
                                      for c in s["candidates"]]) for s in log["steps"]] + \
        [log["contraction"]["factors"], log["final"]["gflops"], round(log["final"]["top1"], 4)]


def test_a_recorded_finished_run_shows_and_plots(capsys):
    run = load_run(RECORDED / "finished")
    assert run.status == "finished" and [s.chosen for s in run.steps] == ["x-bottleneck", "x-bottleneck"]
    assert len(run.evaluated_candidates()) == 12 and run.final.gflops == pytest.approx(0.0565, abs=1e-4)
    fig = plot_runs([run])
    assert len(find_artists(fig, "run0:final")) == 1 and len(find_artists(fig, "run0:contraction")) == 1
    with pytest.raises(SystemExit) as exit_info:
        main(["show", str(RECORDED / "finished"), "--all"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0 and "final: 1x12@112 w1 b3.25 d1" in out and "x-bottleneck" in out


def test_a_recorded_state_file_loads_as_the_same_run():
    """state.json version 1 becomes the same records the log describes."""
    folder = RunDir(RECORDED / "finished")
    run = folder.load(RunInfo(0.06, 0, "x3d", "smoke-ckpt", None))
    logged = folder.read_log()
    assert [c.name for c in run.trials()][:3] == ["seed", "s01-x-fast", "s01-x-temporal"]
    assert [(c.axis, c.gflops, c.top1, c.status) for c in run.candidates()] == \
        [(c.axis, c.gflops, c.top1, c.status) for c in logged.candidates()]
    assert run.final.name == "contract-x-bottleneck" and run.final.top1 == logged.final.top1
    assert run.measure_cost().train_macs == pytest.approx(logged.cost.train_macs)
    assert json.loads((RECORDED / "finished" / "state.json").read_text())["version"] == 1
    # written before --proxy-init: every training read as started from scratch
    assert logged.info.proxy_init == "scratch" and logged.contraction.kept.init == "scratch"
    assert {(t.init, t.parent) for t in run.trials() + logged.candidates()} == {("scratch", None)}


@pytest.mark.slow
@pytest.mark.fault  # injects a fault: make test-faults runs it, make test does not
def test_a_recorded_run_killed_mid_step_resumes_to_the_recorded_path(tiny_dataset: Path, tmp_path: Path):
    """The killed run, resumed by today's code, ends where the uninterrupted recorded run ended."""
    run_dir = _copy("interrupted", tmp_path, tiny_dataset)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    proc = subprocess.run([str(Path(sys.executable).parent / "x3dsearch"), "resume", str(run_dir)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _path(run_dir) == _path(RECORDED / "finished")
    assert (run_dir / "frontier.png").stat().st_size > 1000
