"""A training's ``train.log``: the package's log records while it trains, and lines for the file only."""
from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..utils.logging import LOGGER_NAME

#: Progress lines that go to train.log but not to the console.
FILE_LOGGER = "x3dsearch.train.progress"


def file_only(text: str) -> None:
    """A line for train.log only (the console shows the progress bar instead)."""
    logging.getLogger(FILE_LOGGER).info("%s", text)


@contextmanager
def log_to(path: Path) -> Iterator[None]:
    """Add ``train.log`` to the package logger for this training (data warnings land there too)."""
    package = logging.getLogger(LOGGER_NAME)
    progress = logging.getLogger(FILE_LOGGER)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    old_level = package.level
    if package.getEffectiveLevel() > logging.INFO:
        package.setLevel(logging.INFO)
    progress.propagate = False
    progress.setLevel(logging.INFO)
    package.addHandler(handler)
    progress.addHandler(handler)
    try:
        yield
    finally:
        package.removeHandler(handler)
        progress.removeHandler(handler)
        handler.close()
        package.setLevel(old_level)
