"""What the end-to-end search tests share: the CLI as a subprocess, a cut-down space, the run's files."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from x3dsearch.search.space import DEFAULT_SPACE

X3DSEARCH = Path(sys.executable).parent / "x3dsearch"


def cli_env() -> dict[str, str]:
    """The caller's environment without RAY_ variables, so a search never joins a stray cluster."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([str(X3DSEARCH), *args], capture_output=True, text=True, timeout=timeout, env=cli_env())


def space_file(folder: Path, axes: tuple[str, ...]) -> Path:
    """The default space cut down to ``axes`` (fewer candidates per step), written into ``folder``."""
    data = yaml.safe_load(DEFAULT_SPACE.read_text())
    data["axes"] = {k: v for k, v in data["axes"].items() if k in axes}
    data["name"] = "-".join(axes)
    path = folder / "space.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def load_log(run_dir: Path) -> dict:
    return yaml.safe_load((run_dir / "expansion_path.yaml").read_text())


def trial_dirs(run_dir: Path, prefix: str) -> list[Path]:
    folder = run_dir / "candidates"
    return sorted(p for p in folder.glob(f"{prefix}*")) if folder.is_dir() else []
