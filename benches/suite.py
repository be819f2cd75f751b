#!/usr/bin/env python3
"""The benchmark suite: mioserve against a tuned nginx and lighttpd, one command.

    python3 benches/suite.py            # full suite: 27 scenarios x 3 rounds of 5 s, roughly 45 minutes (estimated)
    python3 benches/suite.py --quick    # every measure shortened, 1 round of 2 s: 576 s measured on a busy machine

What it does
------------
1. Raises its open-files limit as far as the machine allows (inherited by
   every server and load generator) and prints it. Installs what is missing
   (``wrk nginx lighttpd strace apache2-utils curl`` with apt, and ``oha``
   with ``cargo install oha --locked`` when a scenario needs it), runs
   ``cargo build --release``.
2. Writes a fixture root in a fresh temporary directory: ``index.html``
   (1 KiB), ``16k.bin``, ``1m.bin``, ``16m.bin``, ``64m.bin`` (seeded random
   bytes), and, for the working-set scenarios, 100,000 files of 4 KiB in
   1,000 directories.
3. Starts the contenders on free 127.0.0.1 ports, each logging every request
   to a file: ``mioserve-1``, ``mioserve-2`` (``--threads 1``/``2``), nginx
   (the tuned config ``benchlib/servers.py`` writes, workers = cores, with room for 10,000
   idle connections; the working-set scenarios add it without and with a
   10,000-file ``open_file_cache``) and lighttpd (its own config in the temp dir, the
   ``sendfile`` network backend). lighttpd is tried with its default single
   process and with ``server.max-worker = <cores>``; the faster on the small
   file at 256 connections goes on, and the table says which.
4. Checks each serves every fixture byte for byte, a 404, and a 304 for its
   own ``ETag``.
5. Runs every scenario (``SCENARIOS``) on every contender in turn, round after
   round (alternating, so slow drifts spread over everybody), with
   a wait for quiet before each run and a retry of runs other
   processes disturbed. CPU of server, load generator and everything else
   is recorded, and the server's CPU time per completed request. Besides
   wrk: oha at fixed offered rates (latency with coordinated-omission
   correction), floods past capacity with a prober, and 500 concurrent
   16 MiB downloads with curl (see docs/benchmarks.md).
6. Idle connections: a holder process (``benches/idle_holder.py``) opens
   10,000 keep-alive connections, uses each once and holds them; RSS of all
   server processes (VmRSS) before and after gives bytes per idle connection;
   a ``wrk -c50`` load runs meanwhile and its req/s is reported.
7. Syscalls per request: ``strace -c -f`` attached to every server
   process/thread while ``ab -k -n N -c 50`` runs; total calls / N.
8. Prints a markdown table (per scenario and contender: median, min–max,
   ratio to nginx and to lighttpd), the targets and whether they were met,
   and writes ``docs/bench-results.json``, ``docs/bench-results.csv``,
   ``docs/bench-chart.svg``, ``docs/bench-chart-cpu.svg`` (server CPU per
   request) and ``docs/bench-chart-latency.svg`` (latency against load).
9. Stops every server (and holder, wrk, strace) on success, error or Ctrl-C.

Only the Python 3.11 standard library. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import datetime
import math
import platform
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchlib import suite_report
from benchlib.cpu import NOISY_OTHER_CORES, add_noise_arguments, wait_for_quiet
from benchlib.downloads import run_downloads
from benchlib.fixtures import DOWNLOAD_FILE_BYTES, make_fixture_root, make_working_set, read_working_set
from benchlib.host import CORES, DOCS, cargo_build, ensure_installed, log, raise_open_files_limit, tool_version
from benchlib.idle import measure_next_to_idle
from benchlib.load import LoadResult
from benchlib.oha import ensure_oha, oha_command, run_oha
from benchlib.overload import measure_overload
from benchlib.scenarios import (
    GROUPS,
    RATE_MAX,
    SCENARIOS,
    Load,
    Scenario,
    Unit,
    scenario_by_key,
    select_scenarios,
)  # fmt: skip
from benchlib.servers import Server, check_server, conditional_headers, start_with_room_for_idle, stop_all, stop_server
from benchlib.suite_report import Run
from benchlib.syscalls import count_syscalls
from benchlib.tables import format_value, median_or_nan
from benchlib.wrk import run_wrk

# Idle connections held open in the idle scenario.
IDLE_CONNECTIONS = 10_000
# A 304 response is a head only, a few hundred bytes; wrk counts a 200 as a
# success too, so a server that ignored the validators shows by its bodies.
MAX_BYTES_PER_304 = 600
LIGHTTPD_PROBE_S = 3
LIGHTTPD_PROBE_ROUNDS = 2

# The loads oha generates (fixed rates, and the overload prober).
OHA_LOADS = (Load.FIXED_RATE, Load.STORM, Load.FLOOD)

APT_PACKAGES = {  # command -> Debian package
    "wrk": "wrk", "nginx": "nginx", "lighttpd": "lighttpd",
    "strace": "strace", "ab": "apache2-utils", "curl": "curl",
}  # fmt: skip


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="1 round of 2 s, no 50/100/1,000-conn, 64 MiB or 500/1,000-file runs, 100 downloads instead of 500, "
        "no retries, ab -n 5000, lighttpd default only",
    )
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--duration", type=int, default=5, help="seconds per wrk or oha run (overload: the peak and the flood each)"
    )
    p.add_argument("--idle", type=int, default=IDLE_CONNECTIONS, help="idle connections to hold")
    p.add_argument("--strace-requests", type=int, default=20000, help="ab -n for the syscall count")
    p.add_argument(
        "--scenarios",
        default="",
        help="comma-separated scenario keys or groups; groups: "
        + ", ".join(GROUPS)
        + "; keys: "
        + ",".join(s.key for s in SCENARIOS),
    )
    p.add_argument("--contenders", default="mioserve-1,mioserve-2,nginx,lighttpd")
    add_noise_arguments(p, quiet_wait_s=10.0, retries=1)
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--out", default=str(DOCS / "bench-results"), help="writes OUT.json and OUT.csv")
    p.add_argument(
        "--chart",
        default=str(DOCS / "bench-chart.svg"),
        help="the req/s chart; the CPU (-cpu.svg) and latency (-latency.svg) charts are written beside it",
    )
    p.add_argument("--keep-tmp", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.rounds, args.duration, args.strace_requests = 1, 2, 5000
        args.quiet_wait, args.retries = min(args.quiet_wait, 3.0), 0
    try:
        args.scenario_list = select_scenarios([k.strip() for k in args.scenarios.split(",") if k.strip()], args.quick)
    except ValueError as e:
        p.error(str(e))
    args.contender_list = [c.strip() for c in args.contenders.split(",") if c.strip()]
    return args


@dataclass
class Session:
    """What one suite run has set up and collected so far."""

    args: argparse.Namespace
    tools: dict[str, str]
    root: Path
    tmp: Path
    contenders: list[str]
    servers: dict[str, Server] = field(default_factory=dict)
    # Each server's own conditional headers, for the 304 scenario.
    validators: dict[str, list[str]] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)
    syscalls: dict[str, dict] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    lighttpd_choice: str = ""
    open_files_limit: int = 0
    # Offered rates of the fixed-rate scenarios are fractions of this: the
    # slowest contender's RATE_MAX median, fixed when first needed.
    rate_base: float | None = None

    def quiet(self) -> None:
        if self.args.quiet_wait > 0:
            wait_for_quiet(self.args.quiet_wait)

    @property
    def all_contenders(self) -> list[str]:
        """The suite's contenders, then the extra ones its scenarios add."""
        extra = [name for s in self.args.scenario_list for name in s.extra_contenders]
        return list(dict.fromkeys([*self.contenders, *extra]))

    def contenders_of(self, scenario: Scenario) -> list[str]:
        return [*self.contenders, *scenario.extra_contenders]

    @property
    def lighttpd_name(self) -> str:
        return next((n for n in self.contenders if n.startswith("lighttpd")), "lighttpd")


def choose_lighttpd(session: Session) -> None:
    """lighttpd's default single process or server.max-worker = cores: probe
    both on the small file at 256 connections and keep the faster."""
    if "lighttpd" not in session.contenders:
        return
    if session.args.quick or CORES < 2:
        session.lighttpd_choice = "lighttpd: default single process (--quick: max-worker variant not probed)"
        log(session.lighttpd_choice)
        return
    candidates = ["lighttpd", f"lighttpd-w{CORES}"]
    probe = {name: [] for name in candidates}
    small_256 = scenario_by_key("small-256")
    for _ in range(LIGHTTPD_PROBE_ROUNDS):
        for name in candidates:
            server = start_with_room_for_idle(name, session.tools, session.root, session.tmp)
            try:
                wait_for_quiet(session.args.quiet_wait)
                command = small_256.wrk_command(session.tools["wrk"], server, LIGHTTPD_PROBE_S, [])
                result, _ = run_wrk(command, server, LIGHTTPD_PROBE_S)
                probe[name].append(result.req_per_s)
                log(f"lighttpd probe {name}: {result.req_per_s:,.0f} req/s (server {result.cpu.server:.2f} cores)")
            finally:
                stop_server(server)
    best = max(candidates, key=lambda name: median_or_nan(probe[name]))
    chosen = "default single process" if best == "lighttpd" else f"server.max-worker = {CORES}"
    figures = ", ".join(f"{name} {median_or_nan(rates):,.0f} req/s" for name, rates in probe.items())
    session.lighttpd_choice = (
        f"lighttpd: {chosen} (probe at 256 conns, {LIGHTTPD_PROBE_ROUNDS} × {LIGHTTPD_PROBE_S} s each: {figures})"
    )
    log(session.lighttpd_choice)
    session.contenders[session.contenders.index("lighttpd")] = best


def start_and_check(session: Session, files: dict[str, bytes]) -> None:
    """Start every contender, check it serves the fixtures, a 404 and a 304,
    and warm it up (page cache, caches, lazy allocations)."""
    for name in session.all_contenders:
        session.servers[name] = start_with_room_for_idle(name, session.tools, session.root, session.tmp)
    for name, server in session.servers.items():
        problems = check_server(server, files)
        validators, problem = conditional_headers(server)
        session.validators[name] = validators
        if problem:
            problems.append(problem)
        for problem in problems:
            log(f"WARNING {name}: {problem}")
            session.notes.append(f"{name}: {problem}")
        if not problems:
            log(f"{name}: fixtures byte for byte, 404, 304 for {validators}")
    warm_up = scenario_by_key("small-256")
    for server in session.servers.values():
        run_wrk(warm_up.wrk_command(session.tools["wrk"], server, 1, []), server, 1)


def restart_for_idle(session: Session, name: str, scenario: Scenario) -> Server:
    """A fresh process for the idle scenario: a server keeps freed memory for
    reuse, so a second 10k-connection wave on the same process would show no
    RSS growth at all. A 1 s warm-up at the active load's connections first,
    so the baseline includes their buffers."""
    stop_server(session.servers[name])
    server = session.servers[name] = start_with_room_for_idle(name, session.tools, session.root, session.tmp)
    run_wrk(scenario.wrk_command(session.tools["wrk"], server, 1, []), server, 1)
    return server


def slowest_maximum(session: Session) -> float:
    """The lowest RATE_MAX median among the suite's contenders so far."""
    maxima = [
        median_or_nan([r.value for r in session.runs if r.kept and r.scenario == RATE_MAX and r.contender == name])
        for name in session.contenders
    ]
    return min((m for m in maxima if not math.isnan(m)), default=math.nan)


def measure_fixed_rate(session: Session, server: Server, scenario: Scenario) -> tuple[LoadResult, dict, str]:
    """oha closed loop (RATE_MAX) or at a fraction of the slowest maximum."""
    rate = None
    if scenario.rate_fraction is not None:
        if session.rate_base is None:
            session.rate_base = slowest_maximum(session)
            log(f"fixed-rate scenarios: slowest maximum {session.rate_base:,.0f} req/s")
        rate = session.rate_base * scenario.rate_fraction
    if rate is not None and math.isnan(rate):
        return LoadResult(exit_code=-1), {}, f"no {RATE_MAX} run to set the rate"
    url = f"{server.url_base}{scenario.path}"
    seconds = session.args.duration
    command = oha_command(session.tools["oha"], url, connections=scenario.connections, seconds=seconds, rate=rate)
    result, text = run_oha(command, server, seconds)
    figures = {
        "p50_ms": result.latency_p50_ms, "p99_ms": result.latency_p99_ms,
        "p999_ms": result.latency_p999_ms, "max_ms": result.latency_max_ms,
    }  # fmt: skip
    if rate is not None:
        figures["offered_req_per_s"] = rate
    problem = "" if result.valid else "invalid oha run: " + " ".join(text.split()[-30:])
    return result, figures, problem


def measure_overload_run(
    session: Session, name: str, server: Server, scenario: Scenario
) -> tuple[LoadResult, dict, str]:
    """The peak, the flood beside a prober, and the checks after it."""
    args, wrk = session.args, session.tools["wrk"]
    peak = scenario_by_key(scenario.peak).wrk_command(wrk, server, args.duration, session.validators[name])
    flood_command = scenario.wrk_command(wrk, server, args.duration, [], quick=args.quick)
    flood, overload = measure_overload(
        session.tools["oha"], peak, flood_command, server, f"{server.url_base}{scenario.path}", args.duration,
        probe_keepalive=scenario.load is Load.STORM,
    )  # fmt: skip
    probe = overload.probe
    figures = {
        "peak_req_per_s": overload.peak_req_per_s, "goodput_ratio": overload.goodput_ratio(flood),
        "probe_p99_ms": probe.latency_p99_ms, "probe_max_ms": probe.latency_max_ms,
        "probe_failures": probe.errors + probe.non_2xx_3xx, "flood_errors": flood.errors,
        "idle_cores_after": overload.idle_cores_after,
    }  # fmt: skip
    problem = ""
    if not overload.alive_after:
        problem = f"the server exited during the flood ({server.proc.returncode})"
    elif overload.spinning:
        problem = f"the server used {overload.idle_cores_after:.2f} cores with no load after the flood"
    elif not probe.requests:
        problem = "the prober completed no request"
    return flood, figures, problem


def measure_downloads(session: Session, server: Server, scenario: Scenario) -> tuple[LoadResult, dict, str]:
    """`scenario.connections` concurrent downloads of the 16 MiB file."""
    downloads = scenario.connections_in(session.args.quick)
    result, errors = run_downloads(
        session.tools["curl"], server, scenario.path, DOWNLOAD_FILE_BYTES, downloads, scenario.request_timeout_s,
        session.tmp,
    )  # fmt: skip
    load = LoadResult(
        requests=result.complete,
        req_per_s=result.complete / result.wall_s if result.wall_s > 0 else math.nan,
        transfer_per_s=result.bytes_per_s,
        bytes_read=result.total_bytes,
        exit_code=result.exit_code,
        cpu=result.cpu,
    )
    figures = {"cpu_s_per_gb": result.server_cpu_s_per_gb, "jain": result.fairness}
    problem = "" if result.valid else f"{result.complete} of {downloads} downloads complete: {errors.strip()[:200]}"
    return load, figures, problem


def measure_with_wrk(session: Session, name: str, server: Server, scenario: Scenario) -> tuple[LoadResult, dict, str]:
    args = session.args
    command = scenario.wrk_command(
        session.tools["wrk"], server, args.duration, session.validators[name], quick=args.quick
    )
    result, text = run_wrk(command, server, args.duration)
    problem = "" if result.valid else "invalid wrk run: " + " ".join(text.split()[-30:])
    if scenario.load is Load.REVALIDATE and not (result.bytes_per_response < MAX_BYTES_PER_304):
        problem = problem or f"{result.bytes_per_response:.0f} bytes per response: not 304s"
    # The connections sweep reports p99 beside req/s.
    figures = {"p99_ms": result.latency_p99_ms} if "connections" in scenario.groups else {}
    return result, figures, problem


def measure_once(session: Session, name: str, scenario: Scenario, round_number: int, attempt: int) -> Run:
    """One attempt of `scenario` on contender `name`."""
    args = session.args
    server = session.servers[name]
    idle = None
    if scenario.load is Load.NEXT_TO_IDLE:
        server = restart_for_idle(session, name, scenario)
        command = scenario.wrk_command(session.tools["wrk"], server, args.duration, [])
        result, idle, problem = measure_next_to_idle(command, server, scenario.path, args.idle, args.duration)
        figures = {}
    elif scenario.load is Load.FIXED_RATE:
        result, figures, problem = measure_fixed_rate(session, server, scenario)
    elif scenario.load in (Load.STORM, Load.FLOOD):
        result, figures, problem = measure_overload_run(session, name, server, scenario)
    elif scenario.load is Load.DOWNLOADS:
        result, figures, problem = measure_downloads(session, server, scenario)
    else:
        result, figures, problem = measure_with_wrk(session, name, server, scenario)
    value = result.transfer_per_s if scenario.unit is Unit.BYTES else result.req_per_s
    if not result.requests:
        value = math.nan  # no measurement (shown as n/a), not a zero
    retry = result.noisy and attempt <= args.retries
    return Run(scenario.key, name, round_number, attempt, not retry, value, result, idle, problem, figures)


def log_run(run: Run, unit: Unit) -> None:
    cpu = run.load.cpu
    memory = f"  RSS/idle conn {run.idle.rss_per_idle_conn:.0f} B" if run.idle and run.idle.opened else ""
    figures = "".join(f"  {name} {value:,.3g}" for name, value in run.figures.items())
    log(
        f"r{run.round} {run.scenario:<10} {run.contender:<11} {format_value(run.value, unit.value):>12}  "
        f"{run.load.server_us_per_request:.2f} µs/req  p99 {run.load.latency_p99_ms:.2f} ms  "
        f"cores srv {cpu.server:.2f} load {cpu.wrk:.2f} other {cpu.other:.2f}{memory}{figures}"
        + (f"  PROBLEM: {run.problem}" if run.problem else "")
        + ("" if run.kept else "  NOISY, retrying")
    )


def measure_all(session: Session) -> None:
    """Every scenario on every contender in turn, round after round, so slow
    drifts spread over everybody. A run disturbed by other processes is
    repeated (at most --retries times); every attempt is recorded."""
    args = session.args
    for round_number in range(1, args.rounds + 1):
        for scenario in args.scenario_list:
            for name in session.contenders_of(scenario):
                server = session.servers[name]
                if server.proc.poll() is not None:
                    log(f"{name} has exited ({server.proc.returncode}); skipping\n{server.log_tail()}")
                    continue
                for attempt in range(1, args.retries + 2):
                    if scenario.lua_args:
                        # The host may have dropped the files' pages since the
                        # last run (a first server asking would pay the disk).
                        read_working_set(session.root)
                    session.quiet()
                    run = measure_once(session, name, scenario, round_number, attempt)
                    session.runs.append(run)
                    log_run(run, scenario.unit)
                    if run.kept:
                        break


def measure_syscalls(session: Session) -> None:
    for name in session.contenders:
        server = session.servers[name]
        if server.proc.poll() is not None:
            continue
        session.quiet()
        counts = session.syscalls[name] = count_syscalls(
            session.tools, server, session.args.strace_requests, session.tmp
        )
        log(
            f"syscalls {name}: {counts['total_calls']:,} calls / {counts.get('complete', 0):,} requests = "
            f"{counts['per_request']:.2f} per request (failed {counts.get('failed')}, "
            f"threads {counts['threads_traced']}) top {counts['top']}"
        )


def report(session: Session, elapsed_s: float) -> int:
    """Print the tables and write the result files; 1 if a kept run had problems."""
    args, tools = session.args, session.tools
    kept = [r for r in session.runs if r.kept]
    rows = suite_report.summary_rows(kept, session.all_contenders, session.syscalls)
    targets, verdicts = suite_report.targets_table(rows, session.lighttpd_name)
    wrk_version = " ".join(tool_version([tools["wrk"], "--version"]).split()[:2])
    header = (
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, "
        f"{'--quick, ' if args.quick else ''}{args.rounds} round(s) of {args.duration} s, "
        f"{CORES} cores shared by servers and load generator, {platform.system()} {platform.release()}, "
        f"{tool_version([tools['nginx'], '-v'])}, {tool_version([tools['lighttpd'], '-v'])}, "
        f"{wrk_version}"
        + (f", {tool_version([tools['oha'], '--version'])}" if "oha" in tools else "")
        + f"; open-files limit {session.open_files_limit:,}; {session.lighttpd_choice}; suite took {elapsed_s:.0f} s"
    )
    print(header + "\n")
    print(suite_report.results_table(rows, session.all_contenders, session.lighttpd_name))
    print(
        "\nTargets (mioserve / nginx or lighttpd medians from this run; met if either mioserve contender meets it):\n"
    )
    print(targets)
    # lighttpd's connection cap in idle10k is a known limit of its design on
    # this machine (explained in the output), not a failed measurement.
    known = [r for r in kept if r.problem.startswith("lighttpd refuses")]
    bad = [r for r in kept if not r.valid and r not in known]
    if known:
        print(f"\nidle10k req/s for lighttpd is n/a: {known[0].problem}.")
    if bad:
        print(f"\n{len(bad)} kept run(s) had problems:")
        for r in bad:
            print(f"- {r.scenario} {r.contender} round {r.round}: {r.problem or 'wrk errors'}")
    noisy = [r for r in kept if r.load.noisy]
    if noisy:
        print(f"\n{len(noisy)} kept run(s) were noisy (other processes > {NOISY_OTHER_CORES} cores).")
    for note in session.notes:
        print(f"- check: {note}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    suite_report.write_csv(out.with_suffix(".csv"), session.runs)
    suite_report.write_json(
        out.with_suffix(".json"), header, session.lighttpd_choice, rows, verdicts, session.syscalls, session.notes
    )
    suite_report.write_charts(rows, session.all_contenders, Path(args.chart))
    charts = ", ".join(str(path) for path in suite_report.chart_paths(Path(args.chart)))
    log(f"wrote {out.with_suffix('.csv')}, {out.with_suffix('.json')}, {charts}; {elapsed_s:.0f} s")
    return 1 if bad else 0


def main() -> int:
    args = parse_args()
    # Turn SIGTERM into an exception, like Ctrl-C already is, so the
    # `finally` below stops the servers whichever way we are asked to quit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    started = time.monotonic()
    open_files = raise_open_files_limit()
    log(f"open-files limit (RLIMIT_NOFILE) for the suite and every server and load generator: {open_files:,}")
    tools = ensure_installed(APT_PACKAGES)
    if any(s.load in OHA_LOADS for s in args.scenario_list):
        tools["oha"] = ensure_oha()
    if not args.no_build:
        cargo_build()
    tmp = Path(tempfile.mkdtemp(prefix="mioserve-suite-"))
    session = Session(args, tools, tmp / "root", tmp, list(args.contender_list), open_files_limit=open_files)
    try:
        files = make_fixture_root(session.root, with_large_file=True)
        if any(s.load is Load.WORKING_SET for s in args.scenario_list):
            began = time.monotonic()
            files |= make_working_set(session.root)
            log(f"working set: 100,000 files of 4 KiB written in {time.monotonic() - began:.0f} s")
        choose_lighttpd(session)
        start_and_check(session, files)
        measure_all(session)
        measure_syscalls(session)
    finally:
        stop_all(session.servers, tmp, args.keep_tmp)
    return report(session, time.monotonic() - started)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
