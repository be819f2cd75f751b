#!/usr/bin/env python3
"""How close the servers come to the load generator's and the kernel's own limits.

    python3 benches/ceiling.py                      # 3 rounds of 5 s, about 5 minutes
    python3 benches/ceiling.py --rounds 5 --shapes 304,16k

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
  closing after its `write`.

Two figures per server: req/s as a share of the ceiling's, and **server CPU
per request** (user + system µs per completed request, as in the suite).
The ceiling's CPU per request is the kernel's share of a request (its own
code is a few hundred instructions): a target "server CPU ≤ R × nginx" is
out of reach when R × nginx's figure is below the ceiling's. A target
"≥ R × nginx" in req/s is out of reach when R × (nginx's share) exceeds 1 by
more than the noise. Everything runs on 127.0.0.1 and stops by itself.
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
from benchlib.host import cargo_build, ensure_installed, free_port, log
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
}
REAL_SERVERS = ("mioserve-1", "nginx")
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
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated: " + ", ".join(SHAPES))
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    shapes = {key: SHAPES[key] for key in args.shapes.split(",")}
    tools = ensure_installed({"wrk": "wrk", "nginx": "nginx", "gcc": "gcc"})
    if not args.no_build:
        cargo_build()
    tmp = Path(tempfile.mkdtemp(prefix="mioserve-ceiling-"))
    servers: dict[str, Server] = {}
    try:
        ceiling = tmp / "ceiling"
        subprocess.run([tools["gcc"], "-O2", "-o", str(ceiling), str(CEILING_SOURCE)], check=True)
        root = tmp / "root"
        make_fixture_root(root)
        for ceilings in shapes.values():
            for _, body_bytes, mode in ceilings:
                servers[f"ceiling-{body_bytes}-{mode}"] = start_ceiling(ceiling, body_bytes, mode, tmp)
        for name in REAL_SERVERS:
            servers[name] = start_with_room_for_idle(name, tools, root, tmp)
        validators = {name: conditional_headers(servers[name])[0] for name in REAL_SERVERS}

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
    finally:
        stop_all(servers, tmp, keep_tmp=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
