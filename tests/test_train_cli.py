"""``x3dsearch train`` end to end, as a user runs it: real processes, real mp4 files, a real kill -9."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from x3dsearch.factors import preset
from x3dsearch.model_file import save_model_file

from cli_helpers import Outcome, invoke

EXE = [sys.executable, "-m", "x3dsearch.cli.main"]


def train(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*EXE, "train", *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def one_line_error(proc: subprocess.CompletedProcess | Outcome, text: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("x3dsearch: error: ") and text in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow  # three trainings through the CLI
def test_train_smoke_run_and_reruns(tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "x2d"
    proc = train("--preset", "x2d", "--data", tiny_dataset, "--budget", "smoke", "--out", out)
    assert proc.returncode == 0, proc.stderr
    summary = proc.stdout.strip().splitlines()
    assert len(summary) == 1 and summary[0].startswith("x2d [1x30@112") and "top-1" in summary[0]
    assert "step 1/" in proc.stderr and "ETA" in proc.stderr  # progress lines off a terminal
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "ok"
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1

    again = train("--preset", "x2d", "--data", tiny_dataset, "--budget", "smoke", "--out", out, "--json")
    assert again.returncode == 0 and "already finished" in again.stderr
    assert {k: v for k, v in json.loads(again.stdout).items() if k != "out"} == result

    one_line_error(train("--preset", "x2d", "--data", tiny_dataset, "--budget", "smoke", "--out", out,
                         "--seed", "5"), "different seed")

    # A searched model file; the trained model's classes come from the data.
    model_file = tmp_path / "run" / "final_model.yaml"
    save_model_file(model_file, preset("x2d").replace(crop=96), num_classes=400)
    proc = train("--model", model_file, "--data", tiny_dataset, "--budget", "smoke", "--epochs", "2",
                 "--out", tmp_path / "searched", "--quiet", "--json")
    assert proc.returncode == 0 and proc.stderr == ""
    record = json.loads(proc.stdout)
    assert record["epochs_done"] == 2
    config = json.loads((tmp_path / "searched" / "config.json").read_text())
    assert config["factors"]["crop"] == 96 and config["budget"]["epochs"] == 2


def test_train_bad_input_is_one_line(tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The first case through a real process (the entry point), the rest in this one (the same ``main``)."""
    def in_process(*args: str | Path) -> Outcome:
        return invoke(capsys, "train", *args)

    one_line_error(train("--preset", "x2d", "--data", tiny_dataset, "--budget", "huge"), "unknown budget 'huge'")
    one_line_error(in_process("--preset", "x9d", "--data", tiny_dataset), "unknown preset 'x9d'")
    one_line_error(in_process("--data", tiny_dataset), "give exactly one of --preset, --factors or --model")
    one_line_error(in_process("--preset", "x2d", "--epochs", "0"), "--epochs")
    one_line_error(in_process("--preset", "x2d", "--data", tmp_path / "none"), "does not exist")
    one_line_error(in_process("--preset", "x2d", "--data", tiny_dataset, "--out", tiny_dataset),
                   "is not empty and holds no training")
    bad_yaml = tmp_path / "b.yaml"
    bad_yaml.write_text("epochs: -1\n")
    one_line_error(in_process("--preset", "x2d", "--data", tiny_dataset, "--budget", bad_yaml), "'epochs' must be")
    one_line_error(in_process("--preset", "x2d", "--data", tiny_dataset, "--budget", "smoke", "--init",
                         tmp_path / "none.pt", "--out", tmp_path / "o"), "--init checkpoint not found")


@pytest.mark.slow
@pytest.mark.fault  # injects a fault: make test-faults runs it, make test does not
def test_kill_9_then_resume_equals_uninterrupted(tiny_dataset: Path, tmp_path: Path) -> None:
    budget = tmp_path / "budget.yaml"
    budget.write_text(yaml.safe_dump({"epochs": 3, "batch_size": 2, "lr": 0.05, "lr_batch": 2, "dropout": 0.5,
                                      "eval_clips": 4, "checkpoint_every": 1, "workers": 0}))
    # X3D-XS's structure at crop 64: the temporal and depthwise parts, at a sixth of the pixels
    args = ["--factors", "frames=4,stride=12,crop=64,width=1,bottleneck=2.25,depth=2.2", "--data", tiny_dataset,
            "--budget", budget, "--seed", "1", "--quiet", "--json"]
    reference = train(*args, "--out", tmp_path / "reference")
    assert reference.returncode == 0, reference.stderr

    out = tmp_path / "killed"
    proc = subprocess.Popen([*EXE, "train", *map(str, args), "--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert (out / "checkpoint.pt").exists() and not (out / "result.json").exists()

    one_line_error(train(*args, "--out", out), "add --resume")
    resumed = train(*args, "--out", out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    a, b = json.loads(reference.stdout), json.loads(resumed.stdout)
    for key in ("top1", "top5", "train_loss", "clips_seen", "epochs_done"):
        assert a[key] == b[key], key
    def strip(p: Path) -> list[dict]:
        return [{k: v for k, v in json.loads(line).items() if k not in ("train_clips_per_s", "train_time_s")}
                for line in p.read_text().splitlines()]

    assert strip(out / "metrics.jsonl") == strip(tmp_path / "reference" / "metrics.jsonl")
