#!/usr/bin/env python3
"""How close the servers come to the load generator's own limit.

    python3 benches/ceiling.py            # 3 rounds of 5 s, about 2 minutes
    python3 benches/ceiling.py --rounds 5

On this 2-core machine wrk and the server share the CPU, and for small
responses wrk needs about as much of it as the server. So there is a
ceiling no server can pass: the req/s wrk reaches against a server that
costs nothing. `benches/ceiling.c` is that server, as near as possible: one
epoll loop that answers every request with one canned response, without
parsing, files, clocks or a log. This script builds it with gcc, then runs
`wrk -t1 -c256` against it, mioserve-1 and nginx, alternately, for the two
response shapes whose targets are ratios to nginx:

* `small-256`: a 1 KiB `200` (the ceiling sends a 1,024-byte canned body),
* `304`: a bodiless revalidation (the ceiling sends a 304-shaped head; the
  real servers get `If-None-Match` and `If-Modified-Since` with their own
  validators, as in the suite).

It prints each server's median req/s as a share of the ceiling's. A target
"≥ R × nginx" is out of reach when R × (nginx's share) exceeds 1 by more
than the noise. Everything runs on 127.0.0.1 and stops by itself.
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
# Which suite scenario each measurement mirrors, and the ceiling's body size.
SHAPES = {"small-256": 1024, "304": 0}
QUIET_WAIT_S = 10.0


def start_ceiling(binary: Path, body_bytes: int, tmp: Path) -> Server:
    port = free_port()
    name = f"ceiling-{body_bytes}"
    stderr = tmp / f"{name}.stderr"
    with open(stderr, "wb") as err:
        proc = subprocess.Popen(
            [str(binary), str(port), str(body_bytes)],
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
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
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
        for body_bytes in SHAPES.values():
            servers[f"ceiling-{body_bytes}"] = start_ceiling(ceiling, body_bytes, tmp)
        for name in ("mioserve-1", "nginx"):
            servers[name] = start_with_room_for_idle(name, tools, root, tmp)
        validators = {name: conditional_headers(servers[name])[0] for name in ("mioserve-1", "nginx")}

        results: dict[tuple[str, str], list[float]] = {}
        for round_number in range(1, args.rounds + 1):
            for key, body_bytes in SHAPES.items():
                mirrored = scenario_by_key(key)
                for name in (f"ceiling-{body_bytes}", "mioserve-1", "nginx"):
                    server = servers[name]
                    wait_for_quiet(QUIET_WAIT_S)
                    command = mirrored.wrk_command(tools["wrk"], server, args.duration, validators.get(name, []))
                    result, text = run_wrk(command, server, args.duration)
                    if not result.valid:
                        sys.exit(f"ceiling.py: invalid wrk run against {name}: {' '.join(text.split()[-30:])}")
                    label = "ceiling" if name.startswith("ceiling") else name
                    results.setdefault((key, label), []).append(result.req_per_s)
                    log(
                        f"r{round_number} {key:9} {label:10} {result.req_per_s:9,.0f} req/s  "
                        f"cores srv {result.cpu.server:.2f} wrk {result.cpu.wrk:.2f} other {result.cpu.other:.2f}"
                    )

        print("| scenario | ceiling req/s | mioserve-1 | nginx | mioserve-1 / nginx | ceiling / nginx |")
        print("|---|---:|---:|---:|---:|---:|")
        for key in SHAPES:
            top, ours, theirs = (statistics.median(results[(key, n)]) for n in ("ceiling", "mioserve-1", "nginx"))
            print(
                f"| {key} | {top:,.0f} | {ours:,.0f} ({ours / top:.0%}) | {theirs:,.0f} ({theirs / top:.0%}) "
                f"| {ours / theirs:.2f} | {top / theirs:.2f} |"
            )
    finally:
        stop_all(servers, tmp, keep_tmp=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
