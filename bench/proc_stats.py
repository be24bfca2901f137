"""What a process has cost so far, read from /proc (Linux): the benches take the difference over a run."""

from __future__ import annotations

import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command's name, from `state` on."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of every thread of the process."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def page_faults(pid: int) -> int:
    """Minor page faults of the process: each is a page of memory touched for the first time since it was
    mapped, a kernel entry of a microsecond or more."""
    return int(_stat(pid)[7])  # minflt


def context_switches(pid: int) -> int:
    """Context switches of the process's live threads, voluntary and not: each is a thread that slept or was
    put off the CPU, so a message handed from thread to thread shows here."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            lines = (task / "status").read_text().splitlines()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        total += sum(int(line.split()[1]) for line in lines if "ctxt_switches:" in line)
    return total


def usage(pid: int) -> tuple[float, int, int]:
    """CPU seconds, context switches and page faults so far, to subtract one reading from a later one."""
    return cpu_seconds(pid), context_switches(pid), page_faults(pid)
