#!/usr/bin/env python3
"""How close the servers come to the load generator's and the kernel's own limits.

    python3 benches/ceiling.py                      # 3 rounds of 5 s, about 5 minutes
    python3 benches/ceiling.py --rounds 5 --shapes 304,16k
    python3 benches/ceiling.py --shapes none --tails  # latency at fixed rates, overload

On this 2-core machine wrk and the server share the CPU, and for small
responses wrk needs about as much of it as the server. So there is a
ceiling no server can pass: the req/s wrk reaches against a server that
costs nothing. `benches/ceiling.c` is that server, as near as possible: one
epoll loop that answers every request with one canned response, without
parsing, files, clocks or a log. This script builds it with gcc, then runs
wrk against it, mioserve-1 and nginx, alternately, for the response shapes
whose targets are ratios to nginx (the same wrk command as the suite's
scenario of that name):

* `small-256`: a 1 KiB `200` (the ceiling sends a 1,024-byte canned body),
* `304`: a bodiless revalidation (the ceiling sends a 304-shaped head; the
  real servers get `If-None-Match` and `If-Modified-Since` with their own
  validators, as in the suite),
* `16k`: a 16 KiB `200`, by two ceilings: body copied from memory in the
  same `write` as the head (`ceiling`), and head by `send(MSG_MORE)` then
  the body by `sendfile(2)` from a file kept open (`ceiling-sendfile`),
* `close`: a 1 KiB `200` on a new connection per request, the ceiling
  closing after its `write`,
* `conn-10k`: the 1 KiB `200` over 10,000 keep-alive connections.

Two figures per server: req/s as a share of the ceiling's, and **server CPU
per request** (user + system µs per completed request, as in the suite).
The ceiling's CPU per request is the kernel's share of a request (its own
code is a few hundred instructions): a target "server CPU ≤ R × nginx" is
out of reach when R × nginx's figure is below the ceiling's. A target
"≥ R × nginx" in req/s is out of reach when R × (nginx's share) exceeds 1 by
more than the noise.

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
from pathlib import Path

from benchlib.cpu import wait_for_quiet
from benchlib.fixtures import make_fixture_root
from benchlib.host import cargo_build, ensure_installed, free_port, log, raise_open_files_limit
from benchlib.oha import ensure_oha, oha_command, run_oha
from benchlib.overload import measure_overload
from benchlib.scenarios import scenario_by_key
from benchlib.servers import Server, conditional_headers, start_with_room_for_idle, stop_all, wait_until_listening
from benchlib.wrk import run_wrk

CEILING_SOURCE = Path(__file__).resolve().parent / "ceiling.c"
# Per suite scenario: the ceilings that mirror it, as (name, body bytes, mode
# of benches/ceiling.c).
SHAPES = {
    "small-256": [("ceiling", 1024, "send")],
    "304": [("ceiling", 0, "send")],
    "16k": [("ceiling", 16384, "send"), ("ceiling-sendfile", 16384, "sendfile")],
    "close": [("ceiling", 1024, "close")],
    "conn-10k": [("ceiling", 1024, "send")],
}
REAL_SERVERS = ("mioserve-1", "nginx")
# --tails: the fixed rates (shares of the slower real server's oha maximum),
# and each overload scenario with the ceiling that mirrors its flood.
TAIL_RATES = (0.5, 0.75, 0.9)
OVERLOAD_CEILINGS = {"overload-keepalive": "ceiling-1024-send", "overload-close": "ceiling-1024-close"}
QUIET_WAIT_S = 10.0


def start_ceiling(binary: Path, body_bytes: int, mode: str, tmp: Path) -> Server:
    port = free_port()
    name = f"ceiling-{body_bytes}-{mode}"
    stderr = tmp / f"{name}.stderr"
    with open(stderr, "wb") as err:
        proc = subprocess.Popen(
            [str(binary), str(port), str(body_bytes), mode],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    server = Server(name, port, proc, [stderr])
    wait_until_listening(server)
    return server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated, or none: " + ", ".join(SHAPES))
    parser.add_argument("--tails", action="store_true", help="also latency at fixed rates and overload")
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    shapes = {key: SHAPES[key] for key in args.shapes.split(",") if key != "none"}
    tools = ensure_installed({"wrk": "wrk", "nginx": "nginx", "gcc": "gcc"})
    log(f"open-files limit (RLIMIT_NOFILE) for every server and load generator: {raise_open_files_limit():,}")
    if args.tails:
        tools["oha"] = ensure_oha()
    if not args.no_build:
        cargo_build()
    tmp = Path(tempfile.mkdtemp(prefix="mioserve-ceiling-"))
    servers: dict[str, Server] = {}
    try:
        ceiling = tmp / "ceiling"
        subprocess.run([tools["gcc"], "-O2", "-o", str(ceiling), str(CEILING_SOURCE)], check=True)
        root = tmp / "root"
        make_fixture_root(root)
        wanted = {(size, mode) for ceilings in shapes.values() for _, size, mode in ceilings}
        if args.tails:
            wanted |= {(1024, "send"), (1024, "close")}
        for body_bytes, mode in sorted(wanted):
            servers[f"ceiling-{body_bytes}-{mode}"] = start_ceiling(ceiling, body_bytes, mode, tmp)
        for name in REAL_SERVERS:
            servers[name] = start_with_room_for_idle(name, tools, root, tmp)
        validators = {name: conditional_headers(servers[name])[0] for name in REAL_SERVERS}

        if shapes:
            measure_shapes(tools, servers, validators, shapes, args)
        if args.tails:
            measure_tails(tools, servers, validators, args)
    finally:
        stop_all(servers, tmp, keep_tmp=False)
    return 0


def measure_shapes(
    tools: dict[str, str], servers: dict[str, Server], validators: dict, shapes: dict, args: argparse.Namespace
) -> None:
    """wrk against each shape's ceilings and the real servers, alternating;
    prints req/s and server CPU per request."""
    # (scenario, contender) -> [(req/s, server µs per request)] over the rounds
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for round_number in range(1, args.rounds + 1):
        for key, ceilings in shapes.items():
            mirrored = scenario_by_key(key)
            contenders = [(label, f"ceiling-{size}-{mode}") for label, size, mode in ceilings]
            contenders += [(name, name) for name in REAL_SERVERS]
            for label, name in contenders:
                server = servers[name]
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

    print("| scenario | contender | req/s | share of the ceiling | server µs/req | µs/req vs nginx |")
    print("|---|---|---:|---:|---:|---:|")
    for key, ceilings in shapes.items():
        labels = [label for label, _, _ in ceilings] + list(REAL_SERVERS)
        rate = {label: statistics.median(r for r, _ in results[(key, label)]) for label in labels}
        cost = {label: statistics.median(c for _, c in results[(key, label)]) for label in labels}
        for label in labels:
            print(
                f"| {key} | {label} | {rate[label]:,.0f} | {rate[label] / rate['ceiling']:.0%} "
                f"| {cost[label]:.2f} | {cost[label] / cost['nginx']:.2f} |"
            )


def measure_tails(
    tools: dict[str, str], servers: dict[str, Server], validators: dict, args: argparse.Namespace
) -> None:
    """The suite's latency and overload measures for the ceiling and the real
    servers, alternating; prints one table of each."""
    keepalive = {"ceiling": servers["ceiling-1024-send"], **{name: servers[name] for name in REAL_SERVERS}}
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
    slowest = min(statistics.median(maxima[name]) for name in REAL_SERVERS)
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
            for label, name in (("ceiling", ceiling_name), *((n, n) for n in REAL_SERVERS)):
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
        for label in ("ceiling", *REAL_SERVERS):
            ratio = statistics.median(g for g, _ in goodput[(key, label)])
            worst = statistics.median(m for _, m in goodput[(key, label)])
            print(f"| {key} | {label} | {ratio:.2f} | {worst:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
