"""``x3dsearch plot`` and ``x3dsearch show`` through the real entry point: output files, JSON, exit codes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from x3dsearch.cli.main import main
from x3dsearch.runlog import RUN_LOG_NAME

FIXTURES = Path(__file__).parent / "fixtures" / "handwritten_runs"
SEED0 = FIXTURES / "k400_xs_seed0"
SEED1 = FIXTURES / "k400_xs_seed1"
RUNNING = FIXTURES / "synthetic_s_running"


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return info.value.code, out, err


def test_plot_writes_the_image_and_reports_partial_runs(tmp_path, capsys):
    out = tmp_path / "frontier.svg"
    code, stdout, err = run_cli(capsys, "plot", SEED0, SEED1, RUNNING, "-o", out, "--reference", "x3d",
                                "--title", "Two seeds and a running search")
    assert code == 0, err
    svg = out.read_text()
    assert svg.startswith("<?xml") and "Two seeds and a running search" in svg
    assert stdout.strip() == (f"wrote {out}; partial: {RUNNING} (running, step 4: 2/6 candidates evaluated)")


def test_show_prints_the_path_table_and_the_cost_ratio(capsys):
    code, out, _ = run_cli(capsys, "show", SEED0)
    assert code == 0
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["step", "axis", "factors"])
    rows = [line.split()[:2] for line in lines[header + 2:header + 9]]
    assert rows == [["seed", "-"], ["1", "x-bottleneck"], ["2", "x-depth"], ["3", "x-spatial"],
                    ["4", "x-temporal"], ["5", "x-temporal"], ["contracted", "x-temporal"]]
    assert "search cost = 1/2.5 of one full training" in out
    assert "x-fast" not in out  # candidates only with --all
    code, out_all, _ = run_cli(capsys, "show", SEED0, "--all")
    assert code == 0 and out_all.count("x-fast") == 5 and out_all.startswith(out.split("\ncost")[0])


def test_show_json_carries_the_same_data(capsys):
    code, out, _ = run_cli(capsys, "show", RUNNING, "--json", "--all")
    assert code == 0
    data = json.loads(out)
    assert data["status"] == "running" and data["partial"] is True and data["final"] is None
    assert [r["step"] for r in data["path"]] == ["seed", "1", "2", "3"]
    assert [c["status"] for c in data["steps"][3]["candidates"]] == ["ok", "ok", "running", "pending", "pending",
                                                                     "pending"]
    assert data["full_training"] == {**data["full_training"], "available": False,
                                     "reason": "the run has no final model yet"}
    assert data["cost"]["train_macs"] == pytest.approx(3.2681e12)


def _broken(tmp_path: Path, text: str) -> Path:
    (tmp_path / RUN_LOG_NAME).write_text(text)
    return tmp_path


@pytest.mark.parametrize("case, message", [
    ("not_a_run", "is not a run directory (no expansion_path.yaml)"),
    ("missing", "no such directory"),
    ("not_yaml", "not valid YAML"),
    ("no_steps", "missing key 'steps'"),
    ("empty", "the run is empty"),
])
@pytest.mark.parametrize("command", ["show", "plot"])
def test_bad_runs_give_one_line_and_exit_2(tmp_path, capsys, case, message, command):
    target = {
        "not_a_run": lambda: tmp_path,
        "missing": lambda: tmp_path / "nowhere",
        "not_yaml": lambda: _broken(tmp_path, "steps: [1, 2\n"),
        "no_steps": lambda: _broken(tmp_path, "target_gflops: 0.6\nstatus: running\n"),
        "empty": lambda: _broken(tmp_path, "target_gflops: 0.6\nstatus: running\nsteps: []\n"),
    }[case]()
    out_png = tmp_path / "out" / "frontier.png"
    args = ["show", target] if command == "show" else ["plot", SEED0, target, "-o", out_png]
    code, stdout, err = run_cli(capsys, *args)
    assert code == 2 and stdout == ""
    assert len(err.splitlines()) == 1 and err.startswith("x3dsearch: error: ") and message in err
    assert not out_png.exists()


@pytest.mark.parametrize("args, message", [
    (["plot", SEED0, "-o", "frontier.gif2"], "cannot tell the image format"),
    (["plot", SEED0], "Missing option '-o'"),
    (["plot", "-o", "x.png"], "Missing argument"),
    (["plot", SEED0, "-o", "x.png", "--reference", "resnet"], "'resnet' is not 'x3d'"),
    (["plot", SEED0, "-o", "x.png", "--x", "ms"], "--x ms needs a search that measured latency"),
    (["plot", SEED0, "-o", "x.png", "--x", "s"], "'s' is not one of 'gflops', 'ms'"),
])
def test_bad_plot_options_give_one_line_and_exit_2(capsys, args, message):
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and len(err.splitlines()) == 1 and message in err


def test_installed_entry_point_runs_show(tmp_path):
    exe = Path(sys.executable).with_name("x3dsearch")
    done = subprocess.run([str(exe), "show", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == f"x3dsearch: error: {tmp_path} is not a run directory (no expansion_path.yaml)\n"
    done = subprocess.run([str(exe), "show", str(SEED1), "--json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and json.loads(done.stdout)["final"]["top1"] == 50.3
