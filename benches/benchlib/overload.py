"""Overload: far more load than the server can take, and what it still does.

One run of an overload scenario has three parts:

1. the peak: wrk at an ordinary concurrency, the rate the server reaches
   when it is not swamped;
2. the flood: wrk at many times that concurrency (a storm of new
   connections, each closed after one request, or thousands of keep-alive
   connections), while a prober, oha at a low fixed rate with latency
   correction, sends requests of its own. In the connection storm the
   prober uses a few keep-alive connections opened before the storm began:
   accepting must not starve them. In the keep-alive flood it opens a new
   connection per request: the established connections must not starve
   accepting. Goodput is the flood's completed requests per second, set
   against the peak;
3. afterwards, the server must still be running and idle: its CPU use over
   the next second, with no load, shows a spinning event loop.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass

from benchlib import procfs
from benchlib.load import LoadResult
from benchlib.oha import OHA_EXTRA_TIMEOUT_S, oha_command, parse_oha
from benchlib.servers import Server
from benchlib.wrk import run_wrk

PROBE_CONNECTIONS = 8
PROBE_RATE = 100  # requests per second, in all
# The prober starts this long before the flood, so its keep-alive
# connections are established first, and ends this long after it.
PROBE_LEAD_S = 1.0
SPIN_SAMPLE_S = 1.0
# An idle server uses nothing; more than this with no load is a spinning loop.
SPIN_CORES = 0.05


@dataclass
class OverloadResult:
    peak_req_per_s: float
    probe: LoadResult  # the prober's latencies
    idle_cores_after: float  # server CPU with no load, right after the flood
    alive_after: bool

    def goodput_ratio(self, flood: LoadResult) -> float:
        return flood.req_per_s / self.peak_req_per_s if self.peak_req_per_s > 0 else float("nan")

    @property
    def spinning(self) -> bool:
        return self.idle_cores_after > SPIN_CORES


def idle_cores(server: Server, seconds: float = SPIN_SAMPLE_S) -> float:
    """Cores the server uses over `seconds` while nobody sends it anything."""
    before = procfs.group_cpu_s(server.process_group)
    time.sleep(seconds)
    return (procfs.group_cpu_s(server.process_group) - before) / seconds


def measure_overload(
    oha: str,
    peak_command: list[str],
    flood_command: list[str],
    server: Server,
    url: str,
    seconds: int,
    *,
    probe_keepalive: bool,
) -> tuple[LoadResult, OverloadResult]:
    """The peak run, then the flood with the prober beside it, then the
    spin check; the flood's result and the rest."""
    peak, _ = run_wrk(peak_command, server, seconds)
    probe_seconds = seconds + 2 * PROBE_LEAD_S
    probe_command = oha_command(
        oha,
        url,
        connections=PROBE_CONNECTIONS,
        seconds=probe_seconds,
        rate=PROBE_RATE,
        keepalive=probe_keepalive,
    )
    prober = subprocess.Popen(probe_command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        time.sleep(PROBE_LEAD_S)
        flood, _ = run_wrk(flood_command, server, seconds)
        probe_out, _ = prober.communicate(timeout=probe_seconds + OHA_EXTRA_TIMEOUT_S)
    finally:
        if prober.poll() is None:
            prober.kill()
            prober.wait()
    probe = parse_oha(probe_out)
    alive = server.proc.poll() is None
    return flood, OverloadResult(peak.req_per_s, probe, idle_cores(server) if alive else float("nan"), alive)
