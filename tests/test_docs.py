"""The documentation site builds with ``mkdocs build --strict``: a broken link, a missing page, a page
left out of the navigation or a CLI reference that no longer imports fails here, not on a reader."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_site_builds_strictly(tmp_path: Path):
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    cli = (site / "cli" / "index.html").read_text()
    for command in ("expand", "resume", "show", "plot", "distill", "--num-classes"):  # generated from click
        assert command in cli, command
    assert (site / "results" / "index.html").is_file() and (site / "changelog" / "index.html").is_file()


def test_the_readme_is_short_and_undated():
    text = (ROOT / "README.md").read_text()
    lines = text.splitlines()
    assert len(lines) <= 200, len(lines)
    first = "\n".join(lines[:30])
    assert "make demo" in first and "make test" in first
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text), "a date in the README"
    assert not re.search(r"\b(commit|at) [0-9a-f]{7,40}\b", text), "a commit hash in the README"
