"""How many CPUs this process may use."""
from __future__ import annotations

import os


def local_cpus() -> int:
    """The CPUs in this process's affinity mask (a container or ``taskset`` may grant fewer than the machine has)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
