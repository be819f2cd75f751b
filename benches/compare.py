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
import os
import platform
import re
import signal
import sys
import tempfile
from pathlib import Path

from benchlib.cpu import NOISY_OTHER_CORES, add_noise_arguments, wait_for_quiet
from benchlib.fixtures import make_fixture_root
from benchlib.host import MIOSERVE_BIN, REPO_ROOT, cargo_build, ensure_installed, log, tool_version
from benchlib.load import LoadResult
from benchlib.servers import Server, check_server, mioserve_threads, start_mioserve, start_nginx, stop_all
from benchlib.tables import format_median, markdown_header, markdown_row, median_or_nan, present, ratio
from benchlib.wrk import run_wrk, wrk_command

DEFAULT_CONTENDERS = "mioserve-1,nginx,mioserve-2"
# A request slower than this is counted by wrk as a timeout error.
WRK_REQUEST_TIMEOUT_S = 2

CSV_FIELDS = [
    "timestamp", "round", "attempt", "kept", "contender", "path", "duration_s", "connections", "wrk_threads",
    "requests", "req_per_s", "transfer_bytes_per_s", "latency_avg_ms", "latency_p50_ms",
    "latency_p99_ms", "connect_errors", "read_errors", "write_errors", "timeout_errors",
    "non_2xx_3xx", "wrk_exit", "server_cores", "wrk_cores", "other_cores", "steal_cores",
    "req_per_server_cpu_s", "other_cores_before",
]  # fmt: skip


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
        "--contenders",
        default=DEFAULT_CONTENDERS,
        help="comma-separated, run in this order each round; mioserve-N means --threads N",
    )
    p.add_argument("--nginx-workers", type=int, default=os.cpu_count() or 1, help="nginx worker_processes")
    p.add_argument(
        "--csv",
        default=str(REPO_ROOT / "docs" / "bench-results-compare.csv"),
        help="raw results file (benches/suite.py owns docs/bench-results.csv)",
    )
    p.add_argument("--no-build", action="store_true", help="skip cargo build --release")
    add_noise_arguments(p, quiet_wait_s=15.0, retries=2)
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (configs, logs) for inspection")
    args = p.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 3
    if args.rounds < 1 or args.duration < 1:
        p.error("--rounds and --duration must be at least 1")
    if args.retries < 0 or args.quiet_wait < 0:
        p.error("--retries and --quiet-wait must not be negative")
    args.contender_list = [c.strip() for c in args.contenders.split(",") if c.strip()]
    for contender in args.contender_list:
        if contender != "nginx" and not re.fullmatch(r"mioserve-[1-9]\d*", contender):
            p.error(f"unknown contender {contender!r}: use nginx or mioserve-N")
    return args


def load_command(args: argparse.Namespace, wrk: str, server: Server, seconds: int) -> list[str]:
    return wrk_command(
        wrk,
        f"{server.url_base}{args.path}",
        connections=args.connections,
        seconds=seconds,
        request_timeout_s=WRK_REQUEST_TIMEOUT_S,
        threads=args.wrk_threads,
    )


def csv_row(
    timestamp: str,
    round_number: int,
    attempt: int,
    kept: bool,
    contender: str,
    args: argparse.Namespace,
    r: LoadResult,
    other_cores_before: float,
) -> dict:
    return {
        "timestamp": timestamp, "round": round_number, "attempt": attempt, "kept": int(kept),
        "contender": contender, "path": args.path,
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
        "other_cores_before": f"{other_cores_before:.3f}",
    }  # fmt: skip


def markdown_table(order: list[str], results: dict[str, list[LoadResult]]) -> str:
    nginx_median = median_or_nan([r.req_per_s for r in results.get("nginx", [])])
    lines = markdown_header(
        ["contender", "runs", "median req/s", "min–max req/s", "vs nginx", "p99 ms", "server cores",
         "req per server CPU-s", "other cores", "errors", "non-2xx/3xx"],
        "lrrrrrrrrrr",
    )  # fmt: skip
    for name in order:
        runs = results.get(name, [])
        req_per_s = present([r.req_per_s for r in runs])
        spread = f"{min(req_per_s):,.0f}–{max(req_per_s):,.0f}" if req_per_s else "n/a"
        lines.append(
            markdown_row(
                [
                    name,
                    len(runs),
                    format_median(req_per_s, ",.0f"),
                    spread,
                    ratio(median_or_nan(req_per_s), nginx_median),
                    format_median([r.latency_p99_ms for r in runs], ".2f"),
                    format_median([r.cpu.server for r in runs], ".2f"),
                    format_median([r.req_per_server_cpu_s for r in runs], ",.0f"),
                    format_median([r.cpu.other for r in runs], ".2f"),
                    sum(r.errors for r in runs),
                    sum(r.non_2xx_3xx for r in runs),
                ]
            )
        )
    return "\n".join(lines)


def start_contenders(args: argparse.Namespace, nginx: str, root: Path, tmp: Path, servers: dict[str, Server]) -> None:
    """Start every contender into `servers` (filled as they come up, so the
    caller can stop those already started if a later one fails)."""
    for name in args.contender_list:
        if name == "nginx":
            servers[name] = start_nginx(nginx, root, tmp, args.nginx_workers)
        else:
            servers[name] = start_mioserve(mioserve_threads(name), root, tmp)
        log(f"{name} listening on {servers[name].url_base}")


def measure_until_quiet(
    args: argparse.Namespace, wrk: str, name: str, server: Server, round_number: int, rows: list[dict]
) -> LoadResult:
    """One measured run; a run disturbed by other processes is repeated (at
    most --retries times). Returns the last attempt; `rows` gets every
    attempt, marked kept=1 or 0."""
    for attempt in range(1, args.retries + 2):
        other_cores_before = wait_for_quiet(args.quiet_wait) if args.quiet_wait > 0 else float("nan")
        timestamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        result, text = run_wrk(load_command(args, wrk, server, args.duration), server, args.duration)
        # Retry noisy runs even when they failed: wrk timeouts on a starved
        # machine say nothing about the server. A failure on a quiet machine
        # is kept, and it fails the whole run.
        retry = result.noisy and attempt <= args.retries
        rows.append(csv_row(timestamp, round_number, attempt, not retry, name, args, result, other_cores_before))
        flag = "" if result.valid else "  <-- INVALID RUN"
        if result.noisy:
            flag += "  <-- NOISY, retrying" if retry else "  <-- NOISY, kept (no retries left)"
        cpu = result.cpu
        log(
            f"round {round_number}/{args.rounds} {name:<11} {result.req_per_s:>10,.0f} req/s  "
            f"p99 {result.latency_p99_ms:.2f} ms  errors {result.errors}  non-2xx/3xx {result.non_2xx_3xx}  "
            f"cores: server {cpu.server:.2f} wrk {cpu.wrk:.2f} other {cpu.other:.2f} steal {cpu.steal:.2f}{flag}"
        )
        if not retry:
            if not result.valid:
                log("wrk output:\n" + text.strip())
            return result
    raise AssertionError("the last attempt is never retried")


def check_and_warm_up(args: argparse.Namespace, wrk: str, servers: dict[str, Server], files: dict[str, bytes]) -> None:
    """Check every server serves the fixtures and a 404 (a warning if not),
    then run each unrecorded for --warmup seconds."""
    for name, server in servers.items():
        problems = check_server(server, files)
        for problem in problems:
            log(f"WARNING {name}: {problem}")
        if not problems:
            log(f"{name}: fixtures served byte for byte, 404 for a missing file")
    if args.warmup > 0:
        for name, server in servers.items():
            log(f"warm-up {name} ({args.warmup} s)")
            run_wrk(load_command(args, wrk, server, args.warmup), server, args.warmup)


def print_report(args: argparse.Namespace, wrk: str, nginx: str, results: dict[str, list[LoadResult]]) -> int:
    """Print the header line and the table; 0 if every contender has runs and all are valid."""
    wrk_version = " ".join(tool_version([wrk, "--version"]).split()[:2])
    print(
        f"wrk -t{args.wrk_threads} -c{args.connections} -d{args.duration}s {args.path}, "
        f"{args.rounds} round(s), {os.cpu_count()} cores shared by wrk and server, "
        f"{platform.system()} {platform.release()}, {tool_version([nginx, '-v'])}, {wrk_version}\n"
    )
    print(markdown_table(args.contender_list, results))
    kept_runs = [r for runs in results.values() for r in runs]
    noisy = sum(r.noisy for r in kept_runs)
    if noisy:
        print(
            f"\n{noisy} of {len(kept_runs)} kept runs were noisy (other processes used more than "
            f"{NOISY_OTHER_CORES} cores even after retries); see other_cores in the CSV."
        )
    all_valid = all(r.valid for r in kept_runs)
    return 0 if all_valid and all(results.values()) else 1


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    log(f"raw results written to {path}")


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

    contenders = len(args.contender_list)
    load_s = contenders * (args.rounds * args.duration + args.warmup)
    worst_s = contenders * (args.rounds * (args.retries + 1) * (args.duration + args.quiet_wait) + args.warmup)
    log(
        f"{contenders} contenders x {args.rounds} rounds x {args.duration} s: about {load_s} s of load "
        f"(at most {worst_s:.0f} s with quiet waits and retries)"
    )

    tmp = Path(tempfile.mkdtemp(prefix="mioserve-bench-"))
    servers: dict[str, Server] = {}
    results: dict[str, list[LoadResult]] = {c: [] for c in args.contender_list}
    rows: list[dict] = []
    try:
        root = tmp / "root"
        files = make_fixture_root(root)
        if args.path not in files:
            log(f"note: {args.path} is not one of the fixtures {list(files)}")
        start_contenders(args, nginx, root, tmp, servers)
        check_and_warm_up(args, wrk, servers, files)

        for round_number in range(1, args.rounds + 1):
            for name in args.contender_list:
                server = servers[name]
                if server.proc.poll() is not None:
                    log(f"{name} has exited (status {server.proc.returncode}); skipping\n{server.log_tail()}")
                    continue
                results[name].append(measure_until_quiet(args, wrk, name, server, round_number, rows))
    finally:
        stop_all(servers, tmp, args.keep_tmp)

    write_csv(Path(args.csv), rows)
    return print_report(args, wrk, nginx, results)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
