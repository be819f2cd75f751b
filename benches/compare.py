#!/usr/bin/env python3
"""Side-by-side load benchmark: mioserve against a tuned nginx, on loopback.

What it does
------------
1. Makes sure `wrk` and `nginx` are installed (``apt-get install -y``), then
   runs ``cargo build --release`` in the repository root.
2. Writes a fixture document root in a fresh temporary directory:
   ``index.html`` (1 KiB), ``16k.bin`` (16 KiB) and ``1m.bin`` (1 MiB).
3. Starts every contender on its own free port on 127.0.0.1, all serving that
   same root and all writing an access log into the temporary directory:
   ``mioserve-1`` and ``mioserve-2`` (``target/release/mioserve`` with
   ``--threads 1`` and ``--threads 2``) and ``nginx`` (a private nginx master
   started from a config file written into the temporary directory; the
   system nginx service is never touched).
4. Checks that each server returns every fixture byte for byte and a 404 for
   a missing file, then warms each one up for ``--warmup`` seconds.
5. Runs ``wrk -t1 -c256 -d<duration>s --latency`` against ``--path`` on each
   contender in turn, ``--rounds`` times: mioserve-1, nginx, mioserve-2, then
   the next round. Interleaving spreads slow drifts (other load, CPU
   frequency) over all contenders instead of charging them to whoever ran
   last.
6. Accounts for the CPU time of every run from /proc: the server's, wrk's
   and everybody else's. Before each run it waits (up to ``--quiet-wait``
   seconds) for other processes to leave the cores alone; a run during which
   they still took more than 0.25 cores is "noisy" and is repeated (up to
   ``--retries`` times). On a 2-core machine one compiler in the background
   moves req/s by a third, so this matters more than any server setting.
7. Prints a markdown table and writes every attempt to ``--csv``.
8. Stops all servers (SIGTERM, then SIGKILL on the whole process group after
   a grace period) on success, on error and on Ctrl-C.

How to read the table
---------------------
* ``median req/s`` is the median over rounds; ``min–max`` shows the spread.
  If the ranges of two contenders overlap, treat them as equal.
* ``vs nginx`` is median(contender) / median(nginx): above 1.00 is faster.
* On a small machine wrk and the server share the CPU cores, so absolute
  numbers mostly measure the machine; only the ratios are worth quoting.
* ``errors`` (socket connect/read/write/timeout errors seen by wrk) and
  ``non-2xx/3xx`` must be 0; a run with errors is not a valid measurement.
* ``p99 ms`` is the median over rounds of wrk's 99th percentile latency.
* ``server cores`` is the CPU the server used (1.00 = one core busy the
  whole run); ``req per server CPU-s`` divides req/s by it: the server's
  efficiency. Compare it only between rows with similar ``server cores``: a
  server starved of CPU handles more events per wake-up and looks more
  efficient than it is.
* ``other cores`` is CPU used by everything except wrk and the server; near
  0 on a quiet machine. If it is not, distrust the row.

Usage::

    python3 benches/compare.py                 # 3 rounds of 5 s
    python3 benches/compare.py --quick         # 1 round of 3 s
    python3 benches/compare.py --contenders nginx --no-build   # nginx alone

Only the Python 3.11 standard library is used. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import http.client
import os
import platform
import random
import resource
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MIOSERVE_BIN = REPO_ROOT / "target" / "release" / "mioserve"
HOST = "127.0.0.1"

# Every wait in this script is bounded by one of these, so a hung server or
# wrk cannot stall the run forever.
SERVER_START_TIMEOUT_S = 10.0
# Longer than mioserve's own SHUTDOWN_GRACE (5 s), so a server that is
# draining responses in flight is not killed before it could exit cleanly.
SERVER_STOP_GRACE_S = 10.0
# wrk stops itself after -d seconds; this margin covers its start-up and the
# time it takes to close 256 connections before we give up and kill it.
WRK_EXTRA_TIMEOUT_S = 20.0
# A request slower than this is counted by wrk as a timeout error.
WRK_REQUEST_TIMEOUT_S = 2
HTTP_CHECK_TIMEOUT_S = 5.0
APT_TIMEOUT_S = 600.0
CARGO_TIMEOUT_S = 1800.0

DEFAULT_CONTENDERS = "mioserve-1,nginx,mioserve-2"

# Before each run we wait (at most --quiet-wait seconds) until processes other
# than ours use less than this many cores. During a run, more than
# NOISY_OTHER_CORES of CPU time taken by anything but wrk and the server marks
# the run as noisy: on a 2-core machine a compiler in the background is enough
# to move req/s by a third.
QUIET_OTHER_CORES = 0.15
NOISY_OTHER_CORES = 0.25
QUIET_SAMPLE_S = 0.5


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def log(msg: str) -> None:
    """Progress goes to stderr so stdout carries only the result table."""
    print(f"[compare] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    """Ask the kernel for a free loopback port.

    The port is released again before the server binds it; another process
    could grab it in between, but on a benchmark machine that does not happen
    and a failure would show up as a start-up error, not a wrong result.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def which(command: str) -> str | None:
    # /usr/sbin is not on a normal user's PATH, but that is where Debian puts
    # nginx and lighttpd.
    return shutil.which(command) or shutil.which(command, path="/usr/sbin:/usr/local/sbin:/sbin")


def ensure_installed(packages: dict[str, str]) -> dict[str, str]:
    """Paths of the commands in {command: Debian package}, installing the
    packages of missing ones with apt first."""
    missing = sorted({package for command, package in packages.items() if not which(command)})
    if missing:
        prefix = [] if os.geteuid() == 0 else ["sudo"]
        install = prefix + ["apt-get", "install", "-y", *missing]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        log(f"installing {' '.join(missing)}: {' '.join(install)}")
        if subprocess.run(install, env=env, timeout=APT_TIMEOUT_S).returncode != 0:
            # Only refresh the package lists when the plain install failed; on
            # a fresh container the lists are often simply missing.
            log("install failed, running apt-get update and retrying")
            subprocess.run(prefix + ["apt-get", "update"], env=env, timeout=APT_TIMEOUT_S, check=True)
            subprocess.run(install, env=env, timeout=APT_TIMEOUT_S, check=True)
    paths = {command: which(command) for command in packages}
    still_missing = [command for command, path in paths.items() if not path]
    if still_missing:
        sys.exit(f"{Path(sys.argv[0]).name}: still missing after apt-get install: {' '.join(still_missing)}")
    return paths  # type: ignore[return-value]


def cargo_build() -> None:
    log("cargo build --release")
    subprocess.run(["cargo", "build", "--release"], cwd=REPO_ROOT, timeout=CARGO_TIMEOUT_S, check=True)


def tool_version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0].strip() if text else "?"


# --------------------------------------------------------------------------
# Fixture document root
# --------------------------------------------------------------------------


# The small page every small-file scenario fetches: a round size makes
# transfer rates easy to sanity-check against req/s.
INDEX_BYTES = 1024


def make_fixture_root(root: Path) -> dict[str, bytes]:
    """Write the benchmark files and return {url path: expected body}."""
    root.mkdir()
    head = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "<title>mioserve benchmark</title>\n</head>\n<body>\n<h1>Benchmark page</h1>\n"
    )
    tail = "</body>\n</html>\n"
    filler_line = "<p>The quick brown fox jumps over the lazy dog.</p>\n"
    body = head
    while len(body) + len(filler_line) + len(tail) <= INDEX_BYTES:
        body += filler_line
    # Pad with an HTML comment so the page is exactly INDEX_BYTES.
    pad = INDEX_BYTES - len(body) - len(tail)
    if pad >= 8:
        body += "<!--" + "-" * (pad - 8) + "-->\n"
    body += tail
    index = body.encode()
    # Fixed seed: the same bytes on every run, and incompressible, so nothing
    # on the path can cheat by compressing them.
    rng = random.Random(20240601)
    files = {
        "/index.html": index,
        "/16k.bin": rng.randbytes(16 * 1024),
        "/1m.bin": rng.randbytes(1024 * 1024),
    }
    for url, data in files.items():
        (root / url.lstrip("/")).write_bytes(data)
    return files


# --------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------


@dataclass
class Server:
    """One contender: a running child process that serves the fixture root."""

    name: str
    port: int
    proc: subprocess.Popen
    # Files holding the child's stdout/stderr (or error log), shown when the
    # server fails to start or misbehaves.
    logs: list[Path] = field(default_factory=list)
    access_log: Path | None = None
    exit_code: int | None = None

    @property
    def url_base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_tail(self, lines: int = 20) -> str:
        out = []
        for p in self.logs:
            if p.exists():
                text = p.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {p.name} ---\n" + "\n".join(text))
        return "\n".join(out)


def wait_until_listening(server: Server, ready_line: tuple[Path, re.Pattern] | None = None) -> None:
    """Wait until the server accepts a TCP connection on its port.

    For mioserve we also wait for its start-up line on stdout, which tells us
    the address it really bound (it is the authority, not our guess).
    """
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with status {server.proc.returncode} during start-up\n"
                + server.log_tail()
            )
        if ready_line is not None:
            path, pattern = ready_line
            m = pattern.search(path.read_text(errors="replace")) if path.exists() else None
            if m is None:
                time.sleep(0.05)
                continue
            server.port = int(m.group("port"))
            ready_line = None
        try:
            with socket.create_connection((HOST, server.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{server.name} did not start within {SERVER_START_TIMEOUT_S} s\n" + server.log_tail())


def start_mioserve(threads: int, root: Path, tmp: Path, extra_args: list[str] | None = None) -> Server:
    name = f"mioserve-{threads}"
    port = free_port()
    stdout, stderr = tmp / f"{name}.stdout", tmp / f"{name}.stderr"
    access_log = tmp / f"{name}-access.log"
    cmd = [
        str(MIOSERVE_BIN), str(root),
        "--bind", HOST,
        "--port", str(port),
        "--threads", str(threads),
        "--log", str(access_log),
        *(extra_args or []),
    ]
    log(f"starting {name}: {' '.join(cmd)}")
    # stdout/stderr go to files, not pipes: a pipe nobody reads fills up and
    # would eventually block the server mid-benchmark.
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        # A new session gives the server its own process group: Ctrl-C in the
        # terminal reaches only this script, which then stops the server in
        # an orderly way, and killpg can reach every process it spawned.
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
    server = Server(name, port, proc, [stdout, stderr], access_log)
    # e.g. "mioserve: serving /tmp/x on http://127.0.0.1:8888 (2 workers)"
    ready = re.compile(r"on http://[^\s:]+:(?P<port>\d+)")
    wait_until_listening(server, (stdout, ready))
    line = stdout.read_text(errors="replace").strip().splitlines()
    log(f"  {line[0] if line else '(no start-up line)'}")
    return server


def nginx_config(
    root: Path, tmp: Path, port: int, workers: int,
    worker_connections: int = 1024, rlimit_nofile: int | None = None,
) -> str:
    """A static-file nginx tuned the way a careful operator would tune it.

    Everything nginx writes (pid, error log, access log, temp dirs) stays
    inside `tmp`, so it runs next to, never instead of, a system nginx.
    """
    # nginx drops to `nobody` by default when started as root, and `nobody`
    # cannot read our 0700 temp dir. Outside root the directive is ignored
    # with a warning, so only emit it when it matters.
    user = "user root;\n" if os.geteuid() == 0 else ""
    # benches/suite.py holds 10,000 idle connections, which needs more than
    # the default descriptor limit and connection slots per worker.
    rlimit = f"worker_rlimit_nofile {rlimit_nofile};\n" if rlimit_nofile else ""
    return f"""\
{user}{rlimit}worker_processes {workers};
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;

events {{
    worker_connections {worker_connections};
}}

http {{
    types {{
        text/html                html;
        text/css                 css;
        image/png                png;
        application/octet-stream bin;
    }}
    default_type application/octet-stream;

    client_body_temp_path {tmp}/nginx-client-body;
    proxy_temp_path       {tmp}/nginx-proxy;
    fastcgi_temp_path     {tmp}/nginx-fastcgi;
    uwsgi_temp_path       {tmp}/nginx-uwsgi;
    scgi_temp_path        {tmp}/nginx-scgi;

    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    open_file_cache max=1000 inactive=20s;
    open_file_cache_valid 30s;
    keepalive_requests 1000000;
    keepalive_timeout 10s;
    access_log {tmp}/nginx-access.log combined buffer=64k flush=1s;

    server {{
        listen {HOST}:{port} reuseport;
        root {root};
        index index.html;
    }}
}}
"""


def start_nginx(nginx: str, root: Path, tmp: Path, workers: int, **config) -> Server:
    """Start a private nginx; `config` goes to `nginx_config` (connection limits)."""
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(nginx_config(root, tmp, port, workers, **config))
    stdout, stderr, error_log = tmp / "nginx.stdout", tmp / "nginx.stderr", tmp / "nginx-error.log"
    # -p: prefix for relative paths; -e: error log used *before* the config is
    # read (otherwise nginx first tries /var/log/nginx/error.log);
    # daemon off: stay a direct child so we own its lifetime.
    cmd = [nginx, "-p", str(tmp), "-e", str(error_log), "-c", str(conf), "-g", "daemon off;"]
    log(f"starting nginx: {' '.join(cmd)}")
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
    server = Server("nginx", port, proc, [stdout, stderr, error_log], tmp / "nginx-access.log")
    wait_until_listening(server)
    return server


def stop_server(server: Server) -> None:
    """SIGTERM, wait, then SIGKILL the whole process group.

    Both servers treat SIGTERM as "shut down now" (nginx: fast shutdown).
    The group kill catches nginx workers if the master died first.
    """
    if server.proc.poll() is None:
        try:
            server.proc.send_signal(signal.SIGTERM)
            server.proc.wait(timeout=SERVER_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            log(f"{server.name} ignored SIGTERM for {SERVER_STOP_GRACE_S} s, killing it")
        except ProcessLookupError:
            pass
    try:
        # The group id is the child's pid (start_new_session=True), so this
        # reaches only processes this script started.
        os.killpg(server.proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        server.exit_code = server.proc.wait(timeout=SERVER_STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        server.exit_code = None


# --------------------------------------------------------------------------
# Correctness check before measuring
# --------------------------------------------------------------------------


def stop_all(servers: dict[str, Server], tmp: Path, keep_tmp: bool) -> None:
    """Stops every server, reports its exit status and access-log line count,
    and removes the temporary directory unless asked to keep it."""
    for server in servers.values():
        stop_server(server)
    for name, server in servers.items():
        count = "?"
        if server.access_log and server.access_log.exists():
            with open(server.access_log, "rb") as f:
                count = f"{sum(1 for _ in f):,}"
        log(f"{name} stopped, exit status {server.exit_code}, access log lines {count}")
    if keep_tmp:
        log(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def check_server(server: Server, files: dict[str, bytes]) -> list[str]:
    """Fetch every fixture and a missing path; return a list of problems.

    A fast server that serves the wrong bytes is not a result, so each
    contender must pass this before its numbers mean anything.
    """
    problems = []
    conn = http.client.HTTPConnection(HOST, server.port, timeout=HTTP_CHECK_TIMEOUT_S)
    try:
        # One keep-alive connection for all requests, as wrk will use.
        for url, expected in [*files.items(), ("/does-not-exist.html", None)]:
            conn.request("GET", url)
            resp = conn.getresponse()
            body = resp.read()
            if expected is None:
                if resp.status != 404:
                    problems.append(f"GET {url}: status {resp.status}, expected 404")
            elif resp.status != 200:
                problems.append(f"GET {url}: status {resp.status}, expected 200")
            elif body != expected:
                problems.append(f"GET {url}: body of {len(body)} bytes differs from the {len(expected)}-byte file")
            if resp.will_close:
                conn.close()
    except (OSError, http.client.HTTPException) as e:
        problems.append(f"request failed: {e!r}")
    finally:
        conn.close()
    return problems


# --------------------------------------------------------------------------
# CPU accounting: who used the cores during a run
# --------------------------------------------------------------------------

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass
class CpuSnapshot:
    """Cumulative CPU counters at one moment, in seconds."""

    at: float  # time.monotonic()
    busy_s: float  # all cores, not idle/iowait/steal (/proc/stat)
    steal_s: float  # time the hypervisor gave our virtual CPUs to someone else
    server_s: float  # every process in the server's process group
    wrk_s: float  # reaped children of this script, i.e. finished wrk runs


def _system_cpu() -> tuple[float, float]:
    # First line of /proc/stat: "cpu user nice system idle iowait irq softirq
    # steal guest guest_nice", in clock ticks; guest time is already in user.
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq) / CLOCK_TICKS_PER_S, steal / CLOCK_TICKS_PER_S


def _group_cpu(pgid: int) -> float:
    """User + system time of every live process in process group `pgid`.

    mioserve is one process (its threads are summed in its own stat line);
    nginx is a master plus workers, all in the group the script created.
    """
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # exited while we looked
        # The command name may contain spaces and parentheses; fields after
        # the last ")" are fixed: state ppid pgrp ... utime(14) stime(15).
        rest = stat.rsplit(")", 1)[1].split()
        if int(rest[2]) == pgid:
            total += int(rest[11]) + int(rest[12])
    return total / CLOCK_TICKS_PER_S


def cpu_snapshot(server: Server | None) -> CpuSnapshot:
    busy, steal = _system_cpu()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return CpuSnapshot(
        at=time.monotonic(),
        busy_s=busy,
        steal_s=steal,
        server_s=_group_cpu(server.proc.pid) if server else 0.0,
        wrk_s=children.ru_utime + children.ru_stime,
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


def cpu_use(before: CpuSnapshot, after: CpuSnapshot) -> CpuUse:
    wall = after.at - before.at
    if wall <= 0:
        return CpuUse()
    server = (after.server_s - before.server_s) / wall
    wrk = (after.wrk_s - before.wrk_s) / wall
    busy = (after.busy_s - before.busy_s) / wall
    return CpuUse(
        server=server,
        wrk=wrk,
        other=max(0.0, busy - server - wrk),
        steal=(after.steal_s - before.steal_s) / wall,
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


# --------------------------------------------------------------------------
# wrk
# --------------------------------------------------------------------------

_TIME_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_SIZE_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    return float(m.group(1)) * _TIME_UNITS_MS[m.group(2)] if m else float("nan")


def _bytes(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)([KMGT]?B)", text)
    return float(m.group(1)) * _SIZE_UNITS[m.group(2)] if m else float("nan")


@dataclass
class WrkResult:
    requests: int = 0
    req_per_s: float = float("nan")
    transfer_per_s: float = float("nan")  # bytes per second
    latency_avg_ms: float = float("nan")
    latency_p50_ms: float = float("nan")
    latency_p99_ms: float = float("nan")
    connect_errors: int = 0
    read_errors: int = 0
    write_errors: int = 0
    timeout_errors: int = 0
    # wrk counts statuses outside 2xx and 3xx; our fixtures must all be 200.
    non_2xx_3xx: int = 0
    bytes_read: float = float("nan")  # heads and bodies, as wrk reports it
    exit_code: int = 0
    cpu: CpuUse = field(default_factory=CpuUse)

    @property
    def req_per_server_cpu_s(self) -> float:
        """Requests served per second of the server's own CPU time.

        Only comparable between runs where the server got similar CPU: when
        starved, it handles more ready events per wake-up and this rises.
        """
        return self.req_per_s / self.cpu.server if self.cpu.server > 0 else float("nan")

    @property
    def bytes_per_response(self) -> float:
        return self.bytes_read / self.requests if self.requests else float("nan")

    @property
    def noisy(self) -> bool:
        return self.cpu.other > NOISY_OTHER_CORES

    @property
    def errors(self) -> int:
        return self.connect_errors + self.read_errors + self.write_errors + self.timeout_errors

    @property
    def valid(self) -> bool:
        return self.exit_code == 0 and self.errors == 0 and self.non_2xx_3xx == 0 and self.requests > 0


def parse_wrk(out: str) -> WrkResult:
    """Parse wrk 4.x text output (with --latency)."""
    r = WrkResult()
    if m := re.search(r"^\s*(\d+) requests in", out, re.M):
        r.requests = int(m.group(1))
    if m := re.search(r"^Requests/sec:\s*([\d.]+)", out, re.M):
        r.req_per_s = float(m.group(1))
    if m := re.search(r"^Transfer/sec:\s*(\S+)", out, re.M):
        r.transfer_per_s = _bytes(m.group(1))
    if m := re.search(r"^\s*Latency\s+(\S+)", out, re.M):
        r.latency_avg_ms = _ms(m.group(1))
    if m := re.search(r"^\s*50%\s+(\S+)", out, re.M):
        r.latency_p50_ms = _ms(m.group(1))
    if m := re.search(r"^\s*99%\s+(\S+)", out, re.M):
        r.latency_p99_ms = _ms(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        r.connect_errors, r.read_errors, r.write_errors, r.timeout_errors = map(int, m.groups())
    if m := re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out):
        r.non_2xx_3xx = int(m.group(1))
    return r


def run_wrk(wrk: str, server: Server, path: str, seconds: int, connections: int, threads: int) -> tuple[WrkResult, str]:
    cmd = [
        wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s",
        f"--timeout={WRK_REQUEST_TIMEOUT_S}s", "--latency",
        f"{server.url_base}{path}",
    ]
    before = cpu_snapshot(server)
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + WRK_EXTRA_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        # subprocess.run has already killed wrk.
        r = WrkResult(exit_code=-1)
        return r, f"wrk did not finish within {seconds + WRK_EXTRA_TIMEOUT_S} s"
    after = cpu_snapshot(server)
    text = out.stdout + out.stderr
    r = parse_wrk(text)
    r.exit_code = out.returncode
    r.cpu = cpu_use(before, after)
    return r, text


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

CSV_FIELDS = [
    "timestamp", "round", "attempt", "kept", "contender", "path", "duration_s", "connections", "wrk_threads",
    "requests", "req_per_s", "transfer_bytes_per_s", "latency_avg_ms", "latency_p50_ms",
    "latency_p99_ms", "connect_errors", "read_errors", "write_errors", "timeout_errors",
    "non_2xx_3xx", "wrk_exit", "server_cores", "wrk_cores", "other_cores", "steal_cores",
    "req_per_server_cpu_s", "other_cores_before",
]


def csv_row(
    ts: str, rnd: int, attempt: int, kept: bool, name: str,
    args: argparse.Namespace, r: WrkResult, other_before: float,
) -> dict:
    return {
        "timestamp": ts, "round": rnd, "attempt": attempt, "kept": int(kept),
        "contender": name, "path": args.path,
        "duration_s": args.duration, "connections": args.connections, "wrk_threads": args.wrk_threads,
        "requests": r.requests, "req_per_s": f"{r.req_per_s:.2f}",
        "transfer_bytes_per_s": f"{r.transfer_per_s:.0f}",
        "latency_avg_ms": f"{r.latency_avg_ms:.3f}", "latency_p50_ms": f"{r.latency_p50_ms:.3f}",
        "latency_p99_ms": f"{r.latency_p99_ms:.3f}",
        "connect_errors": r.connect_errors, "read_errors": r.read_errors,
        "write_errors": r.write_errors, "timeout_errors": r.timeout_errors,
        "non_2xx_3xx": r.non_2xx_3xx, "wrk_exit": r.exit_code,
        "server_cores": f"{r.cpu.server:.3f}", "wrk_cores": f"{r.cpu.wrk:.3f}",
        "other_cores": f"{r.cpu.other:.3f}", "steal_cores": f"{r.cpu.steal:.3f}",
        "req_per_server_cpu_s": f"{r.req_per_server_cpu_s:.0f}",
        "other_cores_before": f"{other_before:.3f}",
    }


def markdown_table(order: list[str], results: dict[str, list[WrkResult]]) -> str:
    def med(name: str) -> float:
        vals = [r.req_per_s for r in results.get(name, []) if r.req_per_s == r.req_per_s]
        return statistics.median(vals) if vals else float("nan")

    def median_of(values: list[float], fmt: str) -> str:
        values = [v for v in values if v == v]  # drop NaN
        return format(statistics.median(values), fmt) if values else "n/a"

    base = med("nginx")
    lines = [
        "| contender | runs | median req/s | min–max req/s | vs nginx | p99 ms "
        "| server cores | req per server CPU-s | other cores | errors | non-2xx/3xx |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in order:
        runs = results.get(name, [])
        rps = [r.req_per_s for r in runs if r.req_per_s == r.req_per_s]
        p99 = [r.latency_p99_ms for r in runs if r.latency_p99_ms == r.latency_p99_ms]
        if rps:
            median = f"{statistics.median(rps):,.0f}"
            spread = f"{min(rps):,.0f}–{max(rps):,.0f}"
        else:
            median = spread = "n/a"
        ratio = f"{med(name) / base:.2f}" if rps and base == base and base > 0 else "n/a"
        p99s = f"{statistics.median(p99):.2f}" if p99 else "n/a"
        cores = median_of([r.cpu.server for r in runs], ".2f")
        per_cpu = median_of([r.req_per_server_cpu_s for r in runs], ",.0f")
        other = median_of([r.cpu.other for r in runs], ".2f")
        errors = sum(r.errors for r in runs)
        non2xx = sum(r.non_2xx_3xx for r in runs)
        lines.append(
            f"| {name} | {len(runs)} | {median} | {spread} | {ratio} | {p99s} "
            f"| {cores} | {per_cpu} | {other} | {errors} | {non2xx} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark mioserve against a tuned nginx with wrk on 127.0.0.1.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--rounds", type=int, default=3, help="measured runs per contender")
    p.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    p.add_argument("--quick", action="store_true", help="1 round of 3 s (overrides --rounds/--duration)")
    p.add_argument("--warmup", type=int, default=1, help="unrecorded wrk seconds per contender first (0: none)")
    p.add_argument("--connections", type=int, default=256, help="wrk -c: open connections")
    p.add_argument("--wrk-threads", type=int, default=1, help="wrk -t: wrk's own threads")
    p.add_argument("--path", default="/index.html", help="URL path to request: /index.html, /16k.bin or /1m.bin")
    p.add_argument(
        "--contenders", default=DEFAULT_CONTENDERS,
        help="comma-separated, run in this order each round; mioserve-N means --threads N",
    )
    p.add_argument("--nginx-workers", type=int, default=os.cpu_count() or 1, help="nginx worker_processes")
    p.add_argument(
        "--csv", default=str(REPO_ROOT / "docs" / "bench-results-compare.csv"),
        help="raw results file (benches/suite.py owns docs/bench-results.csv)",
    )
    p.add_argument("--no-build", action="store_true", help="skip cargo build --release")
    p.add_argument(
        "--quiet-wait", type=float, default=15.0,
        help=f"max seconds to wait before each run until other processes use < {QUIET_OTHER_CORES} cores (0: don't)",
    )
    p.add_argument(
        "--retries", type=int, default=2,
        help=f"repeat a run up to this many times when other processes used > {NOISY_OTHER_CORES} cores during it",
    )
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (configs, logs) for inspection")
    args = p.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 3
    if args.rounds < 1 or args.duration < 1:
        p.error("--rounds and --duration must be at least 1")
    if args.retries < 0 or args.quiet_wait < 0:
        p.error("--retries and --quiet-wait must not be negative")
    args.contender_list = [c.strip() for c in args.contenders.split(",") if c.strip()]
    for c in args.contender_list:
        if c != "nginx" and not re.fullmatch(r"mioserve-[1-9]\d*", c):
            p.error(f"unknown contender {c!r}: use nginx or mioserve-N")
    return args


def main() -> int:
    args = parse_args()
    # Turn SIGTERM into an exception, like Ctrl-C already is, so the
    # `finally` below stops the servers whichever way we are asked to quit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))

    tools = ensure_installed({"wrk": "wrk", "nginx": "nginx"})
    wrk, nginx = tools["wrk"], tools["nginx"]
    wants_mioserve = any(c.startswith("mioserve-") for c in args.contender_list)
    if wants_mioserve and not args.no_build:
        cargo_build()
    if wants_mioserve and not MIOSERVE_BIN.is_file():
        sys.exit(f"compare.py: {MIOSERVE_BIN} does not exist (did the build produce a binary?)")

    n = len(args.contender_list)
    load_s = n * (args.rounds * args.duration + args.warmup)
    worst_s = n * (args.rounds * (args.retries + 1) * (args.duration + args.quiet_wait) + args.warmup)
    log(f"{n} contenders x {args.rounds} rounds x {args.duration} s: about {load_s} s of load "
        f"(at most {worst_s:.0f} s with quiet waits and retries)")

    tmp = Path(tempfile.mkdtemp(prefix="mioserve-bench-"))
    servers: dict[str, Server] = {}
    results: dict[str, list[WrkResult]] = {c: [] for c in args.contender_list}
    rows: list[dict] = []
    try:
        root = tmp / "root"
        files = make_fixture_root(root)
        if args.path not in files:
            log(f"note: {args.path} is not one of the fixtures {list(files)}")

        for name in args.contender_list:
            if name == "nginx":
                servers[name] = start_nginx(nginx, root, tmp, args.nginx_workers)
            else:
                servers[name] = start_mioserve(int(name.split("-", 1)[1]), root, tmp)
            log(f"{name} listening on {servers[name].url_base}")

        for name, server in servers.items():
            problems = check_server(server, files)
            for problem in problems:
                log(f"WARNING {name}: {problem}")
            if not problems:
                log(f"{name}: fixtures served byte for byte, 404 for a missing file")

        if args.warmup > 0:
            for name, server in servers.items():
                log(f"warm-up {name} ({args.warmup} s)")
                run_wrk(wrk, server, args.path, args.warmup, args.connections, args.wrk_threads)

        for rnd in range(1, args.rounds + 1):
            for name in args.contender_list:
                server = servers[name]
                if server.proc.poll() is not None:
                    log(f"{name} has exited (status {server.proc.returncode}); skipping\n{server.log_tail()}")
                    continue
                # A run disturbed by other processes is repeated (at most
                # --retries times); the table keeps the last attempt and the
                # CSV keeps every attempt, marked kept=1 or 0.
                for attempt in range(args.retries + 1):
                    other_before = wait_for_quiet(args.quiet_wait) if args.quiet_wait > 0 else float("nan")
                    ts = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
                    r, text = run_wrk(wrk, server, args.path, args.duration, args.connections, args.wrk_threads)
                    # Retry noisy runs even when they failed: wrk timeouts on a
                    # starved machine say nothing about the server. A failure
                    # on a quiet machine is kept, and it fails the whole run.
                    retry = r.noisy and attempt < args.retries
                    rows.append(csv_row(ts, rnd, attempt + 1, not retry, name, args, r, other_before))
                    flag = "" if r.valid else "  <-- INVALID RUN"
                    if r.noisy:
                        flag += "  <-- NOISY, retrying" if retry else "  <-- NOISY, kept (no retries left)"
                    log(
                        f"round {rnd}/{args.rounds} {name:<11} {r.req_per_s:>10,.0f} req/s  "
                        f"p99 {r.latency_p99_ms:.2f} ms  errors {r.errors}  non-2xx/3xx {r.non_2xx_3xx}  "
                        f"cores: server {r.cpu.server:.2f} wrk {r.cpu.wrk:.2f} "
                        f"other {r.cpu.other:.2f} steal {r.cpu.steal:.2f}{flag}"
                    )
                    if not r.valid and not retry:
                        log("wrk output:\n" + text.strip())
                    if not retry:
                        break
                results[name].append(r)
    finally:
        stop_all(servers, tmp, args.keep_tmp)

    csv_path = Path(args.csv)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        w.writerows(rows)
    log(f"raw results written to {csv_path}")

    cores = os.cpu_count()
    print(
        f"wrk -t{args.wrk_threads} -c{args.connections} -d{args.duration}s {args.path}, "
        f"{args.rounds} round(s), {cores} cores shared by wrk and server, "
        f"{platform.system()} {platform.release()}, {tool_version([nginx, '-v'])}, {' '.join(tool_version([wrk, '--version']).split()[:2])}\n"
    )
    print(markdown_table(args.contender_list, results))
    all_runs = [r for runs in results.values() for r in runs]
    noisy = sum(r.noisy for r in all_runs)
    if noisy:
        print(f"\n{noisy} of {len(all_runs)} kept runs were noisy (other processes used more than "
              f"{NOISY_OTHER_CORES} cores even after retries); see other_cores in the CSV.")
    all_valid = all(r.valid for r in all_runs)
    return 0 if all_valid and all(results.values()) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
