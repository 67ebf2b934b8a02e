"""A real browser for the report tests: headless Chromium (the Debian package), when it is installed.

Tests that use it are skipped without it, so ``make test`` needs no browser. Every call gets a new
profile folder and no network: the page under test must stand on its own.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed "
                                                             "(apt-get install chromium)")
#: matplotlib's first colour (#1f77b4): a run's path and markers in the frontier figure.
PLOT_BLUE = (31, 119, 180)
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars")


def screenshot(page: Path, out: Path, size: tuple[int, int] = (1280, 2200), timeout: float = 120) -> np.ndarray:
    """Render ``page`` in headless Chromium to the PNG ``out``; returns its pixels (rows x columns x RGB, 0-255)."""
    from matplotlib.image import imread

    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        proc = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={out}",
                               f"--window-size={size[0]},{size[1]}", page.resolve().as_uri()],
                              capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0 and out.is_file(), proc.stderr[-2000:]
    pixels = imread(out)
    return np.round(pixels[..., :3] * 255).astype(int)  # imread reads PNG as floats in 0..1


def has_colour(pixels: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 12, at_least: int = 200) -> bool:
    """Whether at least ``at_least`` pixels are within ``tolerance`` of ``rgb`` on every channel."""
    close = np.all(np.abs(pixels - np.array(rgb)) <= tolerance, axis=-1)
    return int(close.sum()) >= at_least
