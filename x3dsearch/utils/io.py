"""Atomic file writes: run state must never be half-written, even after ``kill -9``."""
from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, X3DSearchError


#: errno values of a full disk (or a full quota): the write fails, the old file stays.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
DISK_FULL_TEXT = "no space left on device"


class DiskFull(X3DSearchError):
    """A write failed for want of space; freeing space and running the command again continues it."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync it, then rename over ``path``.

    A full disk leaves the old file as it was and raises :class:`DiskFull` (one line)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise disk_full(exc, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise disk_full(exc, path) from None
        raise


def disk_full(exc: OSError, path: str | os.PathLike) -> OSError | DiskFull:
    """``exc`` as one line when the disk is full (any other error as it is)."""
    if exc.errno not in DISK_FULL:
        return exc
    return DiskFull(f"{DISK_FULL_TEXT} for {path}: free some space there, then run the command again "
                    f"(a search continues with `x3dsearch resume RUN_DIR`)")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_write_yaml(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, yaml.safe_dump(obj, sort_keys=False, default_flow_style=False))


def read_yaml(path: str | os.PathLike, label: str | None = None, error: type[Exception] | None = None) -> Any:
    """Parse a YAML file; bad syntax or an unreadable file is one line, naming the line at fault.

    ``label`` names the file in the message (default: its path); ``error`` is the exception type
    raised (default :class:`ConfigError`).
    """
    label, error = label or str(path), error or ConfigError
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise error(f"{label}: not valid YAML ({where}{problem or str(exc).splitlines()[0]})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{label}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from None


def cache_dir() -> Path:
    """Where generated datasets and FLOP counts live (``$X3DSEARCH_CACHE``)."""
    root = Path(os.environ.get("X3DSEARCH_CACHE", "~/.cache/x3dsearch")).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root
