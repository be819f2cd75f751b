"""What ``/proc`` says about processes: the members of a process group,
their CPU time, memory and threads.

A server is started in its own session, so its process group id is its
pid and the group holds every process it forked (nginx and lighttpd
workers). Processes may exit while they are being read; they are skipped.
"""

from __future__ import annotations

import os

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")

# Fields of /proc/PID/stat after the command name, counted from 0: state(0)
# ppid(1) pgrp(2) ... utime(11) stime(12), in clock ticks.
_PGRP, _UTIME, _STIME = 2, 11, 12


def _stat_fields(pid: str) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None  # exited while we looked
    # The command name may contain spaces and parentheses; the fields after
    # the last ")" are fixed.
    return stat.rsplit(")", 1)[1].split()


def group_cpu_ticks(pgid: int) -> dict[int, int]:
    """{pid: user + system clock ticks} of every live process in group `pgid`.

    A process's threads are summed in its own stat line.
    """
    ticks = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(entry.name)
        if fields is not None and int(fields[_PGRP]) == pgid:
            ticks[int(entry.name)] = int(fields[_UTIME]) + int(fields[_STIME])
    return ticks


def group_cpu_s(pgid: int) -> float:
    """User + system seconds used so far by the live processes of group `pgid`."""
    return sum(group_cpu_ticks(pgid).values()) / CLOCK_TICKS_PER_S


def group_pids(pgid: int) -> list[int]:
    return list(group_cpu_ticks(pgid))


def rss_bytes(pid: int) -> int:
    """Resident memory (VmRSS) of process `pid`, 0 if it has gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def thread_ids(pid: int) -> list[int]:
    try:
        return [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []
