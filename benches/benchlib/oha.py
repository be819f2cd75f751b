"""The oha load generator: latency at a fixed offered rate, open loop.

wrk is closed loop: each connection sends its next request only when the
last answer has come, so a server that stalls is simply sent less, and the
requests that would have waited during the stall are never measured
(coordinated omission). oha, with ``-q RATE``, sends on a schedule instead,
and with ``--latency-correction`` measures each request from the moment the
schedule said it should have been sent, so a stall shows up in the
percentiles as the users behind it would see it. It is on crates.io (the
suite installs it with ``cargo install oha --locked``), prints its results as
JSON (``--output-format json``) with p99.9 and the slowest request, and can
use keep-alive or a new connection per request (``--disable-keepalive``).
wrk2 does the same for wrk, but it is in no package registry.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from benchlib.cpu import cpu_snapshot, cpu_use
from benchlib.host import log
from benchlib.load import LoadResult
from benchlib.servers import Server

# oha aborts the requests still in flight when -z runs out and lists them
# under this name; they are the end of the run, not failures.
DEADLINE_ABORT = "aborted due to deadline"
# oha stops itself after -z seconds; the margin covers its start-up and the
# closing of its connections.
OHA_EXTRA_TIMEOUT_S = 30.0
OHA_INSTALL_TIMEOUT_S = 3600.0


def ensure_oha() -> str:
    """The path of oha, installed from crates.io with cargo when missing."""
    cargo_bin = Path.home() / ".cargo" / "bin" / "oha"
    found = shutil.which("oha") or (str(cargo_bin) if cargo_bin.exists() else None)
    if found:
        return found
    log("oha is missing: cargo install oha --locked (several minutes, once)")
    subprocess.run(["cargo", "install", "oha", "--locked"], timeout=OHA_INSTALL_TIMEOUT_S, check=True)
    return str(cargo_bin)


def oha_command(
    oha: str,
    url: str,
    *,
    connections: int,
    seconds: float,
    rate: float | None = None,
    keepalive: bool = True,
    request_timeout_s: int = 10,
) -> list[str]:
    """``oha -c C -z Ss [-q RATE --latency-correction] --no-tui --output-format json URL``.

    Without `rate` oha is closed loop (every connection as fast as the
    server answers): its maximum. `keepalive=False` opens a new connection
    per request.
    """
    command = [oha, "-c", str(connections), "-z", f"{seconds}s", "-t", f"{request_timeout_s}s"]
    if rate is not None:
        command += ["-q", f"{rate:.0f}", "--latency-correction"]
    if not keepalive:
        command.append("--disable-keepalive")
    return [*command, "--no-tui", "--output-format", "json", url]


def parse_oha(text: str) -> LoadResult:
    """oha's JSON output (times in seconds) as a LoadResult in milliseconds."""
    try:
        document = json.loads(text[text.index("{") :])
    except ValueError:
        return LoadResult(exit_code=-1)
    summary = document.get("summary", {})
    percentiles = document.get("latencyPercentiles") or {}
    statuses = {int(code): count for code, count in (document.get("statusCodeDistribution") or {}).items()}

    def ms(seconds: float | None) -> float:
        return seconds * 1000.0 if isinstance(seconds, int | float) else float("nan")

    completed = sum(count for code, count in statuses.items() if 200 <= code < 400)
    total_s = summary.get("total") or float("nan")
    return LoadResult(
        requests=completed,
        req_per_s=completed / total_s if total_s else float("nan"),
        transfer_per_s=summary.get("sizePerSec") or float("nan"),
        latency_avg_ms=ms(summary.get("average")),
        latency_p50_ms=ms(percentiles.get("p50")),
        latency_p99_ms=ms(percentiles.get("p99")),
        latency_p999_ms=ms(percentiles.get("p99.9")),
        latency_max_ms=ms(summary.get("slowest")),
        # oha names each error (connection refused, timeout, ...); all but
        # the deadline's aborts count.
        read_errors=sum(n for error, n in (document.get("errorDistribution") or {}).items() if error != DEADLINE_ABORT),
        non_2xx_3xx=sum(count for code, count in statuses.items() if not 200 <= code < 400),
        bytes_read=summary.get("totalData") or float("nan"),
    )


def run_oha(command: list[str], server: Server, seconds: float) -> tuple[LoadResult, str]:
    """Run an oha command of `seconds` against `server`; its result (with
    the CPU use during the run) and its output."""
    before = cpu_snapshot(server.process_group)
    limit_s = seconds + OHA_EXTRA_TIMEOUT_S
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=limit_s)
    except subprocess.TimeoutExpired:
        return LoadResult(exit_code=-1), f"oha did not finish within {limit_s} s"
    after = cpu_snapshot(server.process_group)
    result = parse_oha(out.stdout)
    result.exit_code = out.returncode
    result.cpu = cpu_use(before, after)
    return result, out.stdout + out.stderr
