#!/usr/bin/env python3
"""How close the servers come to the load generator's and the kernel's own limits.

    python3 benches/ceiling.py                      # 3 rounds of 5 s, about 7 minutes
    python3 benches/ceiling.py --rounds 5 --shapes 304,16k
    python3 benches/ceiling.py --shapes ws-uniform-100k  # + 30 s to write the 100,000 files
    python3 benches/ceiling.py --shapes none --downloads  # 500 x 16 MiB, about 3 minutes
    python3 benches/ceiling.py --shapes none --tails  # latency at fixed rates, overload

On this 2-core machine wrk and the server share the CPU, and for small
responses wrk needs about as much of it as the server. So there is a
ceiling no server can pass: the req/s wrk reaches against a server that
costs nothing. `benches/ceiling.c` is that server, as near as possible: one
epoll loop that answers every request with one canned response, without
parsing, files, clocks or a log (its other modes add only the calls a cache
miss or a large download cannot do without). This script builds it with
gcc, then runs wrk against it, mioserve-1 and nginx, alternately, for the
response shapes whose targets are ratios to nginx (the same wrk command as
the suite's scenario of that name):

* `small-256`: a 1 KiB `200` (the ceiling sends a 1,024-byte canned body),
* `304`: a bodiless revalidation (the ceiling sends a 304-shaped head; the
  real servers get `If-None-Match` and `If-Modified-Since` with their own
  validators, as in the suite),
* `16k`: a 16 KiB `200`, by two ceilings: body copied from memory in the
  same `write` as the head (`ceiling`), and head by `send(MSG_MORE)` then
  the body by `sendfile(2)` from a file kept open (`ceiling-sendfile`),
* `close`: a 1 KiB `200` on a new connection per request, the ceiling
  closing after its `write`,
* `conn-10k`: the 1 KiB `200` over 10,000 keep-alive connections,
* `ws-uniform-100k`: uniform random requests over the working set's 100,000
  files of 4 KiB (written with the suite's writer, and read again before
  every run so the page cache holds them all), far more than any server's cache, so every
  request is a miss; against nginx without `open_file_cache` (the
  reference) and with a 10,000-file one instead of nginx. The ceiling opens
  the requested file, `fstat`s it and closes it every time, no cache: the
  body read behind a minimal head and written in one `write` (`ceiling`),
  or the head by `send(MSG_MORE)` then `sendfile(2)` as nginx and mioserve
  send a miss (`ceiling-sendfile`). A third, `ceiling-canned`, answers
  every request with a canned 4 KiB `200` from memory, no file at all: the
  most requests per second wrk and its Lua script can make on this shape,
  whoever answers (it is left out of the byte-for-byte check).

Two figures per server: req/s as a share of the ceiling's, and **server CPU
per request** (user + system µs per completed request, as in the suite),
each also as a ratio to the shape's reference ("ref": nginx unless the
scenario names another). The ceiling's CPU per request is the kernel's
share of a request (its own code is a few hundred instructions): a target
"server CPU ≤ R × nginx" is out of reach when R × nginx's figure is below
the ceiling's. A target "≥ R × nginx" in req/s is out of reach when R ×
(nginx's share) exceeds 1 by more than the noise.

With `--downloads`, the suite's `downloads` measure (benchlib.downloads:
500 concurrent `curl --parallel` downloads of the 16 MiB file, one
connection each) against two download ceilings, mioserve-1, mioserve-2 and
nginx, alternately: aggregate GB/s, **server CPU seconds per GB** (and its
ratio to nginx's) and Jain's fairness index. The ceilings send the file by
`sendfile(2)` from one descriptor, each connection at its own offset,
edge-triggered: until the kernel says `EAGAIN` (`ceiling`), or in turns of
at most 2 MiB with the others served in between (`ceiling-turns`, as
mioserve's `FILE_BYTES_PER_TURN` and nginx's `sendfile_max_chunk`). Whatever
CPU per GB or fairness they cannot reach is the kernel's and curl's.

With `--tails`, the same three answer the suite's `latency` and `overload`
measures (the 1 KiB file; the ceiling in `send` mode, and in `close` mode
for the connection storm): oha's closed-loop maximum, then p99 and p99.9 at
50, 75 and 90 % of the slower real server's maximum, open loop with latency
correction; then each overload run (peak, flood beside the prober) and its
goodput / peak. Whatever latency or goodput the ceiling cannot reach is the
load generator's and the kernel's, not a server's. Everything runs on
127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchlib.cpu import wait_for_quiet
from benchlib.downloads import DownloadsResult, run_downloads
from benchlib.fixtures import (
    DOWNLOAD_FILE_BYTES,
    WORKING_SET_FILES,
    make_fixture_root,
    make_working_set,
    read_working_set,
)
from benchlib.host import cargo_build, ensure_installed, free_port, log, raise_open_files_limit
from benchlib.oha import ensure_oha, oha_command, run_oha
from benchlib.overload import measure_overload
from benchlib.scenarios import scenario_by_key
from benchlib.servers import (
    Server,
    check_server,
    conditional_headers,
    start_with_room_for_idle,
    stop_all,
    wait_until_listening,
)
from benchlib.wrk import run_wrk

CEILING_SOURCE = Path(__file__).resolve().parent / "ceiling.c"
# ceiling.c's modes by what its second argument names: the canned body's
# size, the document root, or the one file everybody downloads.
CANNED_MODES = ("send", "sendfile", "close")
FILES_MODES = ("files", "files-sendfile")
DOWNLOAD_MODES = ("download", "download-turns")


@dataclass(frozen=True)
class Ceiling:
    """One way to run benches/ceiling.c: a label for the tables, its mode
    and, for the canned-response modes, the body's size."""

    label: str
    mode: str
    body_bytes: int = 0

    @property
    def name(self) -> str:
        """The key of its running process in the script's servers."""
        return f"ceiling-{self.body_bytes}-{self.mode}" if self.mode in CANNED_MODES else f"ceiling-{self.mode}"

    def argument(self, root: Path) -> str:
        """ceiling.c's second argument: what this mode serves."""
        if self.mode in CANNED_MODES:
            return str(self.body_bytes)
        if self.mode in DOWNLOAD_MODES:
            return str(root / DOWNLOADS.path.lstrip("/"))
        return str(root)


@dataclass(frozen=True)
class Shape:
    """A suite scenario measured here: the ceilings that mirror it, the real
    servers beside them and the one the ratios are to."""

    ceilings: tuple[Ceiling, ...]
    real_servers: tuple[str, ...] = ("mioserve-1", "nginx")
    reference: str = "nginx"

    @property
    def is_working_set(self) -> bool:
        return any(c.mode in FILES_MODES for c in self.ceilings)


SHAPES = {
    "small-256": Shape((Ceiling("ceiling", "send", 1024),)),
    "304": Shape((Ceiling("ceiling", "send", 0),)),
    "16k": Shape((Ceiling("ceiling", "send", 16384), Ceiling("ceiling-sendfile", "sendfile", 16384))),
    "close": Shape((Ceiling("ceiling", "close", 1024),)),
    "conn-10k": Shape((Ceiling("ceiling", "send", 1024),)),
    "ws-uniform-100k": Shape(
        (
            Ceiling("ceiling", "files"),
            Ceiling("ceiling-sendfile", "files-sendfile"),
            Ceiling("ceiling-canned", "send", 4096),
        ),
        ("mioserve-1", "nginx-no-ofc", "nginx-ofc10k"),
        reference="nginx-no-ofc",
    ),
}
# --downloads: the suite's scenario, its ceilings and the real servers (the
# suite runs it on every contender; a target counts as met by either mioserve).
DOWNLOADS = scenario_by_key("downloads")
DOWNLOAD_CEILINGS = (Ceiling("ceiling", "download"), Ceiling("ceiling-turns", "download-turns"))
DOWNLOAD_SERVERS = ("mioserve-1", "mioserve-2", "nginx")
# --tails: the real servers, the fixed rates (shares of the slower real
# server's oha maximum), and each overload scenario with the ceiling that
# mirrors its flood.
TAIL_SERVERS = ("mioserve-1", "nginx")
TAIL_RATES = (0.5, 0.75, 0.9)
OVERLOAD_CEILINGS = {"overload-keepalive": "ceiling-1024-send", "overload-close": "ceiling-1024-close"}
QUIET_WAIT_S = 10.0


def start_ceiling(binary: Path, ceiling: Ceiling, root: Path, tmp: Path) -> Server:
    port = free_port()
    stderr = tmp / f"{ceiling.name}.stderr"
    with open(stderr, "wb") as err:
        proc = subprocess.Popen(
            [str(binary), str(port), ceiling.argument(root), ceiling.mode],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    server = Server(ceiling.name, port, proc, [stderr])
    wait_until_listening(server)
    return server


def write_working_set(root: Path) -> dict[str, bytes]:
    """The suite's working set under `root` (read again before every run that
    uses it, see `measure_shapes`); a sample {url path: body} for the check."""
    began = time.monotonic()
    sample = make_working_set(root)
    log(f"working set: {WORKING_SET_FILES:,} files of 4 KiB written in {time.monotonic() - began:.0f} s")
    return sample


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated, or none: " + ", ".join(SHAPES))
    parser.add_argument("--downloads", action="store_true", help="also many concurrent downloads of the 16 MiB file")
    parser.add_argument(
        "--download-count", type=int, default=DOWNLOADS.connections, help="concurrent downloads (default: %(default)s)"
    )
    parser.add_argument("--tails", action="store_true", help="also latency at fixed rates and overload")
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    shapes = {key: SHAPES[key] for key in args.shapes.split(",") if key != "none"}
    tools = ensure_installed({"wrk": "wrk", "nginx": "nginx", "gcc": "gcc", "curl": "curl"})
    log(f"open-files limit (RLIMIT_NOFILE) for every server and load generator: {raise_open_files_limit():,}")
    if args.tails:
        tools["oha"] = ensure_oha()
    if not args.no_build:
        cargo_build()
    tmp = Path(tempfile.mkdtemp(prefix="mioserve-ceiling-"))
    servers: dict[str, Server] = {}
    try:
        binary = tmp / "ceiling"
        subprocess.run([tools["gcc"], "-O2", "-o", str(binary), str(CEILING_SOURCE)], check=True)
        root = tmp / "root"
        make_fixture_root(root, with_large_file=args.downloads)
        working_set = write_working_set(root) if any(s.is_working_set for s in shapes.values()) else {}
        ceilings = {c for shape in shapes.values() for c in shape.ceilings}
        real_servers = {name for shape in shapes.values() for name in shape.real_servers}
        if args.downloads:
            ceilings |= set(DOWNLOAD_CEILINGS)
            real_servers |= set(DOWNLOAD_SERVERS)
        if args.tails:
            ceilings |= {Ceiling("ceiling", "send", 1024), Ceiling("ceiling", "close", 1024)}
            real_servers |= set(TAIL_SERVERS)
        for ceiling in sorted(ceilings, key=lambda c: c.name):
            if ceiling.name not in servers:  # labels differ between shapes, processes need not
                servers[ceiling.name] = start_ceiling(binary, ceiling, root, tmp)
        for name in sorted(real_servers):
            servers[name] = start_with_room_for_idle(name, tools, root, tmp)
        validators = {name: conditional_headers(servers[name])[0] for name in real_servers}
        if working_set:
            check_working_set(servers, shapes, working_set)

        if shapes:
            measure_shapes(tools, servers, validators, shapes, root, args)
        if args.downloads:
            measure_downloads(tools, servers, tmp, args)
        if args.tails:
            measure_tails(tools, servers, validators, args)
    finally:
        stop_all(servers, tmp, keep_tmp=False)
    return 0


def check_working_set(servers: dict[str, Server], shapes: dict[str, Shape], sample: dict[str, bytes]) -> None:
    """Every contender of a working-set shape that serves files (all but the
    canned ceiling) must serve the sample byte for byte and a 404 for a
    missing file, or its figures mean nothing."""
    for shape in shapes.values():
        if not shape.is_working_set:
            continue
        file_servers = [c.name for c in shape.ceilings if c.mode in FILES_MODES] + list(shape.real_servers)
        for name in file_servers:
            if problems := check_server(servers[name], sample):
                sys.exit(f"ceiling.py: {name} fails the working-set check: {'; '.join(problems)}")


def measure_shapes(
    tools: dict[str, str],
    servers: dict[str, Server],
    validators: dict,
    shapes: dict[str, Shape],
    root: Path,
    args: argparse.Namespace,
) -> None:
    """wrk against each shape's ceilings and real servers, alternating;
    prints req/s and server CPU per request, each as a share of the first
    ceiling's and a ratio to the shape's reference."""
    # (scenario, contender) -> [(req/s, server µs per request)] over the rounds
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for round_number in range(1, args.rounds + 1):
        for key, shape in shapes.items():
            mirrored = scenario_by_key(key)
            contenders = [(c.label, c.name) for c in shape.ceilings] + [(name, name) for name in shape.real_servers]
            for label, name in contenders:
                server = servers[name]
                if mirrored.lua_args:
                    # The host may have dropped the files' pages since the last run.
                    read_working_set(root)
                wait_for_quiet(QUIET_WAIT_S)
                command = mirrored.wrk_command(tools["wrk"], server, args.duration, validators.get(name, []))
                result, text = run_wrk(command, server, args.duration)
                if not result.valid:
                    sys.exit(f"ceiling.py: invalid wrk run against {name}: {' '.join(text.split()[-30:])}")
                results.setdefault((key, label), []).append((result.req_per_s, result.server_us_per_request))
                log(
                    f"r{round_number} {key:9} {label:16} {result.req_per_s:9,.0f} req/s  "
                    f"{result.server_us_per_request:6.2f} µs/req  cores srv {result.cpu.server:.2f} "
                    f"wrk {result.cpu.wrk:.2f} other {result.cpu.other:.2f}"
                )

    print("| scenario | contender | req/s | share of the ceiling | req/s vs ref | server µs/req | µs/req vs ref |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for key, shape in shapes.items():
        labels = [c.label for c in shape.ceilings] + list(shape.real_servers)
        rate = {label: statistics.median(r for r, _ in results[(key, label)]) for label in labels}
        cost = {label: statistics.median(c for _, c in results[(key, label)]) for label in labels}
        ceiling, ref = shape.ceilings[0].label, shape.reference
        scenario = key if ref == "nginx" else f"{key} (ref: {ref})"
        for label in labels:
            print(
                f"| {scenario} | {label} | {rate[label]:,.0f} | {rate[label] / rate[ceiling]:.0%} "
                f"| {rate[label] / rate[ref]:.2f} | {cost[label]:.2f} | {cost[label] / cost[ref]:.2f} |"
            )


def measure_downloads(tools: dict[str, str], servers: dict[str, Server], tmp: Path, args: argparse.Namespace) -> None:
    """The suite's many-downloads measure against the download ceilings and
    the real servers, alternating; prints GB/s, server CPU s per GB (and its
    ratio to nginx's) and Jain's fairness index, medians over the rounds."""
    contenders = [(c.label, c.name) for c in DOWNLOAD_CEILINGS] + [(name, name) for name in DOWNLOAD_SERVERS]
    results: dict[str, list[DownloadsResult]] = {}
    for round_number in range(1, args.rounds + 1):
        for label, name in contenders:
            server = servers[name]
            wait_for_quiet(QUIET_WAIT_S)
            result, errors = run_downloads(
                tools["curl"], server, DOWNLOADS.path, DOWNLOAD_FILE_BYTES, args.download_count,
                DOWNLOADS.request_timeout_s, tmp,
            )  # fmt: skip
            if not result.valid:
                sys.exit(
                    f"ceiling.py: {result.complete} of {result.downloads} downloads from {name} complete: "
                    f"{errors.strip()[:200]}"
                )
            results.setdefault(label, []).append(result)
            log(
                f"r{round_number} downloads {label:16} {result.bytes_per_s / 1e9:6.2f} GB/s  "
                f"{result.server_cpu_s_per_gb:.3f} s/GB  Jain {result.fairness:.3f}  "
                f"cores srv {result.cpu.server:.2f} curl {result.cpu.wrk:.2f} other {result.cpu.other:.2f}"
            )

    print()
    print(f"| {args.download_count} × 16 MiB | GB/s | server CPU s per GB | CPU per GB vs nginx | Jain's index |")
    print("|---|---:|---:|---:|---:|")
    cost_of_nginx = statistics.median(r.server_cpu_s_per_gb for r in results["nginx"])
    for label, rounds in results.items():
        rate = statistics.median(r.bytes_per_s for r in rounds) / 1e9
        cost = statistics.median(r.server_cpu_s_per_gb for r in rounds)
        fairness = statistics.median(r.fairness for r in rounds)
        print(f"| {label} | {rate:.2f} | {cost:.3f} | {cost / cost_of_nginx:.2f} | {fairness:.3f} |")


def measure_tails(
    tools: dict[str, str], servers: dict[str, Server], validators: dict, args: argparse.Namespace
) -> None:
    """The suite's latency and overload measures for the ceiling and the real
    servers, alternating; prints one table of each."""
    keepalive = {"ceiling": servers["ceiling-1024-send"], **{name: servers[name] for name in TAIL_SERVERS}}
    url_path = scenario_by_key("rate-max").path
    maxima: dict[str, list[float]] = {}
    tails: dict[tuple[float, str], list[tuple[float, float, float]]] = {}
    goodput: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for round_number in range(1, args.rounds + 1):
        for label, server in keepalive.items():
            wait_for_quiet(QUIET_WAIT_S)
            command = oha_command(tools["oha"], f"{server.url_base}{url_path}", connections=256, seconds=args.duration)
            result, _ = run_oha(command, server, args.duration)
            maxima.setdefault(label, []).append(result.req_per_s)
            log(f"r{round_number} rate-max  {label:16} {result.req_per_s:9,.0f} req/s")
    slowest = min(statistics.median(maxima[name]) for name in TAIL_SERVERS)
    log(f"slower real server's maximum: {slowest:,.0f} req/s")
    for round_number in range(1, args.rounds + 1):
        for fraction in TAIL_RATES:
            for label, server in keepalive.items():
                wait_for_quiet(QUIET_WAIT_S)
                command = oha_command(
                    tools["oha"], f"{server.url_base}{url_path}", connections=256, seconds=args.duration,
                    rate=slowest * fraction,
                )  # fmt: skip
                result, _ = run_oha(command, server, args.duration)
                figures = (result.latency_p99_ms, result.latency_p999_ms, result.latency_max_ms)
                tails.setdefault((fraction, label), []).append(figures)
                log(
                    f"r{round_number} rate-{fraction:.0%} {label:16} p99 {figures[0]:7.2f} ms  "
                    f"p99.9 {figures[1]:7.2f} ms  max {figures[2]:7.2f} ms"
                )
        for key, ceiling_name in OVERLOAD_CEILINGS.items():
            scenario = scenario_by_key(key)
            peak_scenario = scenario_by_key(scenario.peak)
            for label, name in (("ceiling", ceiling_name), *((n, n) for n in TAIL_SERVERS)):
                server = servers[name]
                wait_for_quiet(QUIET_WAIT_S)
                flood, overload = measure_overload(
                    tools["oha"],
                    peak_scenario.wrk_command(tools["wrk"], server, args.duration, validators.get(name, [])),
                    scenario.wrk_command(tools["wrk"], server, args.duration, []),
                    server, f"{server.url_base}{scenario.path}", args.duration,
                    probe_keepalive=scenario.key == "overload-close",
                )  # fmt: skip
                goodput.setdefault((key, label), []).append(
                    (overload.goodput_ratio(flood), overload.probe.latency_max_ms)
                )
                log(
                    f"r{round_number} {key} {label:16} flood {flood.req_per_s:9,.0f} req/s  peak "
                    f"{overload.peak_req_per_s:9,.0f}  goodput {overload.goodput_ratio(flood):.2f}  "
                    f"prober max {overload.probe.latency_max_ms:.1f} ms"
                )
    print()
    print("| offered load | contender | p99 ms | p99.9 ms | max ms |")
    print("|---|---|---:|---:|---:|")
    for fraction in TAIL_RATES:
        for label in keepalive:
            p99, p999, worst = (statistics.median(f[i] for f in tails[(fraction, label)]) for i in range(3))
            print(f"| {fraction:.0%} of {slowest:,.0f} | {label} | {p99:.2f} | {p999:.2f} | {worst:.2f} |")
    print()
    print("| overload | contender | goodput / peak | prober max ms |")
    print("|---|---|---:|---:|")
    for key in OVERLOAD_CEILINGS:
        for label in ("ceiling", *TAIL_SERVERS):
            ratio = statistics.median(g for g, _ in goodput[(key, label)])
            worst = statistics.median(m for _, m in goodput[(key, label)])
            print(f"| {key} | {label} | {ratio:.2f} | {worst:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
