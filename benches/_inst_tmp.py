#!/usr/bin/env python3
"""CPU instructions mioserve executes per request, counted by callgrind.

    python3 benches/instructions.py                     # 200 and 304 of a 1 KiB file
    python3 benches/instructions.py --annotate          # and where they go, by function
    python3 benches/instructions.py --working-set 100000  # cache misses, with system calls
    python3 benches/instructions.py --working-set 2000 --order cycle

Why instructions: on a shared 2-core machine req/s moves by ±20 % from run
to run, so a 5 % gain in the request path cannot be seen in a load test.
The number of instructions the server executes is exact and repeatable:
valgrind's callgrind counts every one of them.

How: the server (a release build with debug symbols, in its own target
directory) runs under ``valgrind --tool=callgrind`` with one worker; one
keep-alive client sends FEW requests in one run and MANY in another. Start-up,
the first request (which fills the file cache) and shutdown cost the same in
both, so (instructions(MANY) - instructions(FEW)) / (MANY - FEW) is the cost
of one steady-state request: reading it, parsing, answering, the access-log
line, and the loop around them.

With ``--working-set N`` the client asks for N distinct files shaped like
the suite's working set (4 KiB each, ``/ws/DDD/NNNNN.bin``, file i in
directory i mod 1,000: ``benchlib.fixtures.working_set_url``): with N larger
than the file cache (8,192 entries per worker), the misses the cache
cannot avoid.
``--order uniform`` (the default) draws each request uniformly from a seeded
random sequence, as ``benches/working_set.lua uniform`` does; FEW = 10,000
requests fill the cache and reach the steady state. ``--order cycle`` asks
for the files in turn, over and over; the first two rounds are in both runs
(FEW = 2N). Either way MANY = FEW + 2,000 and both runs send the same first
FEW requests, so the difference is the steady state. That mode also counts
system calls per request the same way, with ``strace -c -f`` (without
valgrind), by name.

Installs valgrind and strace with apt when missing. Runs against 127.0.0.1 only and
stops the server itself (SIGTERM) after each run.
"""

import argparse
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib.fixtures import WORKING_SET_FILE_BYTES, make_fixture_root, working_set_url
from benchlib.host import HOST, REPO_ROOT, ensure_installed, free_port

TARGET_DIR = Path(tempfile.gettempdir()) / "mioserve-callgrind-target"
FEW, MANY = 500, 2500
START_TIMEOUT_S = 60.0  # valgrind starts slowly
REPLY_TIMEOUT_S = 30.0
# `--annotate`: how many functions to list, and a line of callgrind_annotate's
# function table (`  1,234 ( 5.67%)  src/x.rs:module::function [object]`).
ANNOTATE_TOP = 120
# callgrind_annotate appends how often a function was called: ` (12,001x)`.
CALL_COUNT = re.compile(r" \([\d,]+x\)")
ANNOTATE_LINE = re.compile(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S.*?)(?: \[[^\]]*\])?$")

# What is counted: a plain 200, and a revalidation answered 304 with both
# validators, as browsers (and the suite's 304 scenario) send them.
CASES = {
    "200": "GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "304": "GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    "If-None-Match: {etag}\r\nIf-Modified-Since: {last_modified}\r\n\r\n",
}


def build() -> Path:
    env = dict(os.environ, CARGO_PROFILE_RELEASE_DEBUG="true", CARGO_TARGET_DIR=str(TARGET_DIR))
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO_ROOT, env=env, check=True)
    return TARGET_DIR / "release" / "mioserve"


def read_response(sock: socket.socket, pending: bytes) -> tuple[bytes, bytes]:
    """One response (head and Content-Length body) and the bytes after it."""
    while b"\r\n\r\n" not in pending:
        pending += recv_some(sock)
    head, _, rest = pending.partition(b"\r\n\r\n")
    length = int(header(head, b"Content-Length") or 0)
    while len(rest) < length:
        rest += recv_some(sock)
    return head, rest[length:]


def header(head: bytes, name: bytes) -> str:
    m = re.search(rb"(?i)\r\n" + name + rb": ([^\r]+)", head)
    return m.group(1).decode() if m else ""


def recv_some(sock: socket.socket) -> bytes:
    data = sock.recv(65536)
    if not data:
        raise ConnectionError("server closed the connection")
    return data


def connect(port: int, server: subprocess.Popen) -> socket.socket:
    """A connection to the server, once valgrind has started it."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            return socket.create_connection((HOST, port), timeout=REPLY_TIMEOUT_S)
        except OSError as error:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mioserve under valgrind did not start on port {port}") from error
            time.sleep(0.1)


# Requests that fill the cache (8,192 entries) before a uniform working-set
# run is counted.
UNIFORM_WARM_UP = 10_000
# The seed of the uniform order, the suite's (benchlib/scenarios.py).
UNIFORM_SEED = 20240605


def working_set_template(index: int) -> str:
    return f"GET {working_set_url(index)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def make_working_set(root: Path, files: int) -> None:
    """The first `files` files of the suite's working set (same paths and
    size; the bytes do not matter here)."""
    for index in range(files):
        path = root / working_set_url(index).lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes([97 + index % 26]) * WORKING_SET_FILE_BYTES)


def working_set_requests(files: int, order: str, requests: int) -> list[str]:
    """The first `requests` requests over `files` working-set files, in
    `order`: the same prefix whatever `requests` is."""
    if order == "cycle":
        return [working_set_template(i % files) for i in range(requests)]
    rng = random.Random(UNIFORM_SEED)
    return [working_set_template(rng.randrange(files)) for _ in range(requests)]


def count(binary: Path, root: Path, templates: list[str], requests: int, out_dir: Path) -> int:
    """Total instructions of one server run that answers `requests` requests,
    cycling over `templates`."""
    out_file = out_dir / f"callgrind.{requests}.out"
    tool = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}"]
    serve(tool, binary, root, templates, requests, out_dir)
    totals = re.search(r"^(?:summary|totals): (\d+)", out_file.read_text(), re.M)
    return int(totals.group(1))


def count_syscalls(binary: Path, root: Path, templates: list[str], requests: int, out_dir: Path) -> dict[str, int]:
    """System calls of one server run that answers `requests` requests, by name."""
    out_file = out_dir / f"strace.{requests}.out"
    serve(["strace", "-c", "-f", "-o", str(out_file)], binary, root, templates, requests, out_dir)
    calls = {}
    # `% time  seconds  usecs/call  calls  [errors]  syscall`
    for line in out_file.read_text().splitlines():
        fields = line.split()
        if len(fields) in (5, 6) and fields[0][0].isdigit() and fields[-1] != "total":
            calls[fields[-1]] = int(fields[3])
    return calls


def serve(tool: list[str], binary: Path, root: Path, templates: list[str], requests: int, out_dir: Path) -> None:
    """Runs the server under `tool` while one keep-alive client sends
    `requests` requests, cycling over `templates`."""
    port = free_port()
    server = subprocess.Popen(
        [
            *tool,
            str(binary),
            "--threads",
            "1",
            "--port",
            str(port),
            "--log",
            str(out_dir / "access.log"),
            str(root),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        sock = connect(port, server)
        pending = b""
        validators = {"etag": "", "last_modified": ""}
        for i in range(requests):
            sock.sendall(templates[i % len(templates)].format(**validators).encode())
            head, pending = read_response(sock, pending)
            if i == 0:  # the first request is a plain GET: keep its validators
                validators["etag"] = header(head, b"ETag")
                validators["last_modified"] = header(head, b"Last-Modified")
        sock.close()
    finally:
        # valgrind runs the server in its own process; strace runs it as a
        # child, and writes its summary once that child has exited.
        children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
        os.kill(int(children[0]) if children else server.pid, signal.SIGTERM)
        server.wait(timeout=START_TIMEOUT_S)


def instructions_by_function(out_file: Path) -> dict[str, int]:
    """Instructions per function (exclusive) in one callgrind output file, as
    `callgrind_annotate` lists them: `N (P%)  file:function [object]`."""
    text = subprocess.run(
        ["callgrind_annotate", "--inclusive=no", "--auto=no", "--threshold=100", str(out_file)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    functions: dict[str, int] = {}
    for line in text.splitlines():
        match = ANNOTATE_LINE.match(line)
        if match:
            count, name = match.groups()
            name = CALL_COUNT.sub("", name)
            place, _, function = name.partition(":")
            if function and ("/" in place or "." in place or place == "???"):
                name = function  # drop the source file, keep the whole path of the function
            functions[name] = functions.get(name, 0) + int(count.replace(",", ""))
    return functions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--annotate", action="store_true", help="also print where the instructions per request go, by function"
    )
    parser.add_argument(
        "--working-set", type=int, metavar="N", help="ask for N distinct 4 KiB files instead (cache misses)"
    )
    parser.add_argument(
        "--order",
        choices=["uniform", "cycle"],
        default="uniform",
        help="with --working-set: seeded uniform random draws, or the files in turn",
    )
    args = parser.parse_args()
    ensure_installed({"valgrind": "valgrind", "callgrind_annotate": "valgrind", "strace": "strace"})
    binary = build()
    with tempfile.TemporaryDirectory(prefix="mioserve-callgrind-") as tmp_name:
        tmp = Path(tmp_name)
        root = tmp / "root"
        make_fixture_root(root)
        if args.working_set:
            make_working_set(root, args.working_set)
            few_requests = UNIFORM_WARM_UP if args.order == "uniform" else 2 * args.working_set
            many_requests = few_requests + MANY - FEW
            case = f"miss ({args.working_set} files, {args.order})"
            runs = {
                case: [working_set_requests(args.working_set, args.order, n) for n in (few_requests, many_requests)]
            }
        else:
            few_requests, many_requests = FEW, MANY
            runs = {case: [[template], [template]] for case, template in CASES.items()}
        for case, (few_templates, many_templates) in runs.items():
            few = count(binary, root, few_templates, few_requests, tmp)
            many = count(binary, root, many_templates, many_requests, tmp)
            print(
                f"{case}: {(many - few) / (MANY - FEW):,.0f} instructions per request "
                f"(({many:,} - {few:,}) / {MANY - FEW:,})"
            )
            if args.working_set:
                few_calls = count_syscalls(binary, root, few_templates, few_requests, tmp)
                many_calls = count_syscalls(binary, root, many_templates, many_requests, tmp)
                per_request = {
                    name: (many_calls.get(name, 0) - few_calls.get(name, 0)) / (MANY - FEW)
                    for name in many_calls.keys() | few_calls.keys()
                }
                listed = ", ".join(
                    f"{name} {calls:.2f}"
                    for name, calls in sorted(per_request.items(), key=lambda kv: -kv[1])
                    if calls >= 0.01
                )
                print(f"{case}: {sum(per_request.values()):.2f} system calls per request ({listed})")
            if args.annotate:
                few_functions = instructions_by_function(tmp / f"callgrind.{few_requests}.out")
                many_functions = instructions_by_function(tmp / f"callgrind.{many_requests}.out")
                per_request = {
                    name: (many_functions.get(name, 0) - few_functions.get(name, 0)) / (MANY - FEW)
                    for name in many_functions.keys() | few_functions.keys()
                }
                print(f"{case}: where they go (instructions per request, by function, start-up excluded)")
                for name, instructions in sorted(per_request.items(), key=lambda kv: -abs(kv[1]))[:ANNOTATE_TOP]:
                    print(f"{instructions:9,.0f}  {name}")


if __name__ == "__main__":
    sys.exit(main())
