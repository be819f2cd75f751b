"""The wrk load generator: its command line, one run with CPU accounting,
and its text output parsed into a `LoadResult`.

A run's result carries the CPU use measured around it (see ``cpu``), so a
noisy or starved run can be recognised and repeated.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from benchlib.cpu import cpu_snapshot, cpu_use
from benchlib.load import LoadResult
from benchlib.servers import Server

# wrk stops itself after -d seconds; this margin covers its start-up and the
# time it takes to close hundreds of connections before we give up and kill it.
WRK_EXTRA_TIMEOUT_S = 20.0

_TIME_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_SIZE_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def wrk_command(
    wrk: str,
    url: str,
    *,
    connections: int,
    seconds: int,
    request_timeout_s: int,
    threads: int = 1,
    headers: tuple[str, ...] | list[str] = (),
    script: Path | None = None,
    script_args: tuple[str, ...] = (),
) -> list[str]:
    """``wrk -tT -cC -dSs --timeout=Ns --latency [-H h]... [-s script] URL [-- script_args]``.

    A request slower than `request_timeout_s` counts as a timeout error.
    """
    command = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", f"--timeout={request_timeout_s}s", "--latency"]
    for header in headers:
        command += ["-H", header]
    if script is not None:
        command += ["-s", str(script)]
    return [*command, url, *(["--", *script_args] if script_args else [])]


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    return float(m.group(1)) * _TIME_UNITS_MS[m.group(2)] if m else float("nan")


def _bytes(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)([KMGT]?B)", text)
    return float(m.group(1)) * _SIZE_UNITS[m.group(2)] if m else float("nan")


def parse_wrk(out: str) -> LoadResult:
    """Parse wrk 4.x text output (with --latency)."""
    r = LoadResult()
    if m := re.search(r"^\s*(\d+) requests in", out, re.M):
        r.requests = int(m.group(1))
    if m := re.search(r"requests in [\d.]+\w+, ([\d.]+\w?B) read", out):
        r.bytes_read = _bytes(m.group(1))
    if m := re.search(r"^Requests/sec:\s*([\d.]+)", out, re.M):
        r.req_per_s = float(m.group(1))
    if m := re.search(r"^Transfer/sec:\s*(\S+)", out, re.M):
        r.transfer_per_s = _bytes(m.group(1))
    # "Latency  avg  stdev  max  +/- stdev"
    if m := re.search(r"^\s*Latency\s+(\S+)\s+\S+\s+(\S+)", out, re.M):
        r.latency_avg_ms, r.latency_max_ms = _ms(m.group(1)), _ms(m.group(2))
    if m := re.search(r"^\s*50%\s+(\S+)", out, re.M):
        r.latency_p50_ms = _ms(m.group(1))
    if m := re.search(r"^\s*99%\s+(\S+)", out, re.M):
        r.latency_p99_ms = _ms(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        r.connect_errors, r.read_errors, r.write_errors, r.timeout_errors = map(int, m.groups())
    if m := re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out):
        r.non_2xx_3xx = int(m.group(1))
    return r


def run_wrk(command: list[str], server: Server, seconds: int) -> tuple[LoadResult, str]:
    """Run a wrk command of `seconds` against `server`; its result (with the
    CPU use during the run) and its output, or a reason when it hung."""
    before = cpu_snapshot(server.process_group)
    limit_s = seconds + WRK_EXTRA_TIMEOUT_S
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=limit_s)
    except subprocess.TimeoutExpired:
        # subprocess.run has already killed wrk.
        return LoadResult(exit_code=-1), f"wrk did not finish within {limit_s} s"
    after = cpu_snapshot(server.process_group)
    text = out.stdout + out.stderr
    result = parse_wrk(text)
    result.exit_code = out.returncode
    result.cpu = cpu_use(before, after)
    return result, text
