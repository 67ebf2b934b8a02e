"""One process per run directory: ``.lock``, held with ``flock`` and naming its holder.

The OS releases a ``flock`` when its process dies, even by ``kill -9``, so a free lock is
always safe to take. The file keeps the holder's pid and host, so a second process can say
who is running, and the next holder can say that it took over from a process that died
without letting go (the pid is left in the file only then: a clean release empties it).
"""
from __future__ import annotations

import fcntl
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from ..errors import X3DSearchError

LOCK_NAME = ".lock"


@dataclass(frozen=True)
class Holder:
    """Who holds (or last held) a run directory's lock, as its ``.lock`` says."""

    pid: int
    host: str

    @classmethod
    def parse(cls, text: str) -> "Holder | None":
        parts = text.split()
        if len(parts) >= 2 and parts[0].isdigit():
            return cls(int(parts[0]), parts[1])
        return None

    def alive(self) -> bool | None:
        """Whether the process still runs (None: it runs on another host, so this one cannot tell)."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}"


class RunLock:
    """An exclusive ``flock`` on ``<run_dir>/.lock``, taken at once (never waited for) and released on
    exit. ``took_over`` is the holder that died without releasing it, for the caller to log."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_NAME
        self.took_over: Holder | None = None
        self.fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = Holder.parse(self._read())
            self.release(clear=False)
            raise X3DSearchError(busy_message(Path(run_dir), holder)) from None
        self.took_over = Holder.parse(self._read())
        self._write(f"{os.getpid()} {socket.gethostname()}\n")

    def _held_fd(self) -> int:
        if self.fd is None:
            raise RuntimeError("the lock was released")
        return self.fd

    def _read(self) -> str:
        fd = self._held_fd()
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 4096).decode("utf-8", "replace")

    def _write(self, text: str) -> None:
        fd = self._held_fd()
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode(), 0)
        os.fsync(fd)

    def release(self, clear: bool = True) -> None:
        """Let go; ``clear`` empties the file first, so the next holder knows this one ended cleanly."""
        if self.fd is None:
            return
        try:
            if clear:
                self._write("")
        except OSError:  # a full disk must not keep the lock held: the pid left behind only misleads a log line
            pass
        finally:
            os.close(self.fd)
            self.fd = None


def held(run_dir: Path) -> bool:
    """Whether a process holds the lock now, without taking it: a shared probe that a holder's exclusive
    lock refuses, dropped at once. A run whose log says ``running`` while no one holds it was killed
    (``kill -9``, a reboot)."""
    try:
        fd = os.open(Path(run_dir) / LOCK_NAME, os.O_RDONLY)
    except OSError:  # no lock file: no search ever ran here, or one from before the lock existed
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # and with it the probe's shared lock
    return False


def busy_message(run_dir: Path, holder: Holder | None) -> str:
    if holder is None:
        return f"run dir {run_dir} is in use by another x3dsearch process; wait for it to end, or stop it"
    if holder.alive() is False:  # a child it started still holds the lock
        return (f"run dir {run_dir} is locked by a process started by x3dsearch {holder}, which has ended; "
                f"stop what it left running (`fuser {run_dir / LOCK_NAME}` names it)")
    return f"run dir {run_dir} is in use by x3dsearch {holder}; wait for it to end, or stop it, then run this again"
