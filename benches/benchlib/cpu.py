"""CPU accounting: who used the cores during a run, and waiting for quiet.

On a 2-core machine wrk, the server and anything else running share the
cores, and one compiler in the background moves req/s by a third. So every
run records, from ``/proc``, how many cores the server (its whole process
group), wrk (this script's reaped children) and everybody else used, and a
run is preceded by a wait until other processes leave the cores alone.
"""

from __future__ import annotations

import argparse
import resource
import time
from dataclasses import dataclass

from benchlib import procfs
from benchlib.host import log

# Before each run we wait (at most the script's --quiet-wait seconds) until
# processes other than ours use less than QUIET_OTHER_CORES. During a run,
# more than NOISY_OTHER_CORES taken by anything but wrk and the server marks
# the run as noisy, and the scripts repeat it.
QUIET_OTHER_CORES = 0.15
NOISY_OTHER_CORES = 0.25
QUIET_SAMPLE_S = 0.5


@dataclass
class CpuSnapshot:
    """Cumulative CPU counters at one moment, in seconds."""

    at: float  # time.monotonic()
    busy_s: float  # all cores, not idle/iowait/steal (/proc/stat)
    steal_s: float  # time the hypervisor gave our virtual CPUs to someone else
    server_s: float  # every process in the server's process group
    load_generator_s: float  # reaped children of this script, i.e. finished wrk runs


def _system_cpu_s() -> tuple[float, float]:
    """(busy, steal) seconds of all cores since boot."""
    # First line of /proc/stat: "cpu user nice system idle iowait irq softirq
    # steal guest guest_nice", in clock ticks; guest time is already in user.
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    ticks = procfs.CLOCK_TICKS_PER_S
    return (user + nice + system + irq + softirq) / ticks, steal / ticks


def cpu_snapshot(server_pgid: int | None) -> CpuSnapshot:
    """The counters now; `server_pgid` is the server's process group (None: no server)."""
    busy, steal = _system_cpu_s()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return CpuSnapshot(
        at=time.monotonic(),
        busy_s=busy,
        steal_s=steal,
        server_s=procfs.group_cpu_s(server_pgid) if server_pgid is not None else 0.0,
        load_generator_s=children.ru_utime + children.ru_stime,
    )


@dataclass
class CpuUse:
    """Average cores used during a run (1.0 = one core fully busy)."""

    server: float = float("nan")
    wrk: float = float("nan")
    # Everything else: other processes on the machine, this script, and
    # kernel work not charged to a process. Small unless something else runs.
    other: float = float("nan")
    steal: float = float("nan")
    wall_s: float = float("nan")  # how long the run took

    @property
    def server_s(self) -> float:
        """The server's CPU seconds during the run."""
        return self.server * self.wall_s

    @property
    def noisy(self) -> bool:
        return self.other > NOISY_OTHER_CORES


def cpu_use(before: CpuSnapshot, after: CpuSnapshot) -> CpuUse:
    wall = after.at - before.at
    if wall <= 0:
        return CpuUse()
    server = (after.server_s - before.server_s) / wall
    wrk = (after.load_generator_s - before.load_generator_s) / wall
    busy = (after.busy_s - before.busy_s) / wall
    return CpuUse(
        server=server,
        wrk=wrk,
        other=max(0.0, busy - server - wrk),
        steal=(after.steal_s - before.steal_s) / wall,
        wall_s=wall,
    )


def wait_for_quiet(max_wait_s: float) -> float:
    """Wait until other processes leave the cores alone; return their load.

    Called between runs, when our servers are idle, so all CPU time seen here
    belongs to someone else (a build, a test suite). Gives up after
    `max_wait_s`: the run then goes ahead and is flagged if it stays noisy.
    """
    deadline = time.monotonic() + max_wait_s
    announced = False
    while True:
        before = cpu_snapshot(None)
        time.sleep(QUIET_SAMPLE_S)
        load = cpu_use(before, cpu_snapshot(None)).other
        if load < QUIET_OTHER_CORES or time.monotonic() >= deadline:
            return load
        if not announced:
            log(f"other processes use {load:.2f} cores; waiting up to {max_wait_s:.0f} s for quiet")
            announced = True


def add_noise_arguments(parser: argparse.ArgumentParser, quiet_wait_s: float, retries: int) -> None:
    """``--quiet-wait`` and ``--retries``: how a script guards its runs against other processes."""
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=quiet_wait_s,
        help=f"before each run wait at most this long until other processes use < {QUIET_OTHER_CORES} cores (0: don't)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=retries,
        help=f"repeat a run up to this many times when other processes used > {NOISY_OTHER_CORES} cores during it",
    )
