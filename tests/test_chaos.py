"""experiments/chaos.py with 3 kills: a smoke search (one axis, x-bottleneck: two steps and a contraction,
four trainings, a dataset with a test split) killed with kill -9 at 3 moments drawn from seed 0 and resumed
after each from another working directory, against the same search run without interruption."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from search_helpers import cli_env

CHAOS = Path(__file__).resolve().parents[1] / "experiments" / "chaos.py"


@pytest.mark.slow
@pytest.mark.fault  # injects a fault: make test-faults runs it, make test does not
def test_three_kills_end_on_the_uninterrupted_path_with_nothing_trained_twice(tmp_path: Path):
    proc = subprocess.run([sys.executable, str(CHAOS), "--kills", "3", "--seed", "0", "--out", str(tmp_path),
                           "--axes", "x-bottleneck"],
                          capture_output=True, text=True, timeout=1500, env=cli_env())
    assert proc.stdout, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["returncode"] == 0, (tmp_path / "chaos" / "console.log").read_text()[-3000:]
    assert [m["hit"] for m in report["moments"]] == [True] * 3 and report["kills_survived"] == 3, report["moments"]
    assert all(m["phase"] in m["seen"] for m in report["moments"])  # each kill landed in its phase
    # a session that ended by itself (Ray losing its GCS on an overloaded machine) was resumed too, and says so
    assert report["sessions"] == 4 + len(report["unplanned_exits"]), report["unplanned_exits"]
    assert report["same_as_uninterrupted"], report
    assert report["finished_trainings_repeated"] == 0, report
    assert report["ray_processes_left"] == 0, report["ray_processes"]
    assert report["ok"] and proc.returncode == 0
