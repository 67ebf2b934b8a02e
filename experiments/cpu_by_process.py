"""Where a command's CPU time goes, by kind of process: pytest workers, search drivers, Ray trial actors,
Ray's daemons.

It runs the command while it samples ``/proc`` every quarter second, keeping each process's latest CPU
time (user + system) and name (Ray renames its workers once they take an actor). A process that lives
less than a sample is missed, and one's last quarter second may be: the totals are a lower bound.
Every process on the machine counts, the command's or not, so run it on an idle machine. Processes that
were running before the command count only for what they used during it::

    .venv/bin/python experiments/cpu_by_process.py --save /tmp/procs.json -- make test
    .venv/bin/python experiments/cpu_by_process.py --load /tmp/procs.json      # the table again

Prints a markdown table, the largest kind first. Linux only.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")

#: (kind, test on (name, command line)); the first that matches names a process.
KINDS = (
    ("Ray trial actor", lambda name, cmd: name.startswith("ray::ImplicitFu") or "ImplicitFunc" in cmd),
    ("Ray idle worker", lambda name, cmd: name == "ray::IDLE" or "default_worker.py" in cmd),
    ("Ray daemons (gcs, raylet, agents, dashboard, monitors)",
     lambda name, cmd: name in ("gcs_server", "raylet") or name.startswith("ray::")
     or any(part in cmd for part in ("dashboard", "log_monitor.py", "monitor.py", "runtime_env", "ray/_private"))),
    ("x3dsearch driver (subprocess)", lambda name, cmd: "x3dsearch" in name or "x3dsearch.cli.main" in cmd
     or "/bin/x3dsearch" in cmd),
    ("pytest", lambda name, cmd: "pytest" in cmd or "xdist" in cmd or cmd.startswith(sys.executable + " -u -c")),
    ("other Python", lambda name, cmd: "python" in name),
)


def _read(pid: str) -> tuple[int, str, float] | None:
    """(start time in ticks, name, CPU seconds) of a process, or None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = stat[stat.index("(") + 1:stat.rindex(")")]
    rest = stat[stat.rindex(")") + 2:].split()
    return int(rest[19]), name, (int(rest[11]) + int(rest[12])) / TICK


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ").strip()[:300]
    except OSError:
        return ""


def sample(stop: threading.Event, seen: dict) -> None:
    """Until ``stop``: every process's (name, command line, first CPU seen, latest CPU)."""
    first = True
    while not stop.is_set():
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            read = _read(pid)
            if read is None:
                continue
            start, name, cpu = read
            key = f"{pid}:{start}"
            entry = seen.get(key)
            if entry is None:
                # what a process had used before the command started is not the command's
                seen[key] = entry = {"name": name, "cmd": _cmdline(pid), "base": cpu if first else 0.0, "cpu": cpu}
            elif entry["name"] != name:
                entry["name"], entry["cmd"] = name, _cmdline(pid)
            entry["cpu"] = cpu
        first = False
        stop.wait(0.25)


def kind_of(name: str, cmd: str) -> str:
    return next((kind for kind, test in KINDS if test(name, cmd)), "other (kernel, tools)")


def table(seen: dict) -> str:
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for entry in seen.values():
        used = entry["cpu"] - entry["base"]
        if used <= 0:
            continue
        row = totals[kind_of(entry["name"], entry["cmd"])]
        row[0] += 1
        row[1] += used
    lines = ["| kind | processes | CPU s | share |", "| --- | --- | --- | --- |"]
    grand = sum(cpu for _, cpu in totals.values())
    for kind, (count, cpu) in sorted(totals.items(), key=lambda item: -item[1][1]):
        lines.append(f"| {kind} | {count:.0f} | {cpu:.1f} | {cpu / grand:.0%} |")
    lines.append(f"| all | {sum(c for c, _ in totals.values()):.0f} | {grand:.1f} | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--save", type=Path, help="write the samples here (JSON)")
    parser.add_argument("--load", type=Path, help="summarise saved samples instead of running a command")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if args.load:
        print(table(json.loads(args.load.read_text())))
        return
    if not command:
        parser.error("give a command after --, or --load FILE")
    seen: dict = {}
    stop = threading.Event()
    sampler = threading.Thread(target=sample, args=(stop, seen), daemon=True)
    sampler.start()
    started = time.monotonic()
    code = subprocess.call(command)
    stop.set()
    sampler.join()
    if args.save:
        args.save.write_text(json.dumps(seen))
    print(f"`{' '.join(command)}`: exit {code}, {time.monotonic() - started:.1f} s wall")
    print(table(seen))
    sys.exit(code)


if __name__ == "__main__":
    main()
