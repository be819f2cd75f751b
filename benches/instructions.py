#!/usr/bin/env python3
"""CPU instructions mioserve executes per request, counted by callgrind.

    python3 benches/instructions.py            # 200 and 304 of a 1 KiB file
    python3 benches/instructions.py --annotate # and where they go, by function

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

Installs valgrind with apt when missing. Runs against 127.0.0.1 only and
stops the server itself (SIGTERM) after each run.
"""

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib.fixtures import make_fixture_root
from benchlib.host import HOST, REPO_ROOT, ensure_installed, free_port

TARGET_DIR = Path(tempfile.gettempdir()) / "mioserve-callgrind-target"
FEW, MANY = 500, 2500
START_TIMEOUT_S = 60.0  # valgrind starts slowly
REPLY_TIMEOUT_S = 30.0

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


def count(binary: Path, root: Path, request_template: str, requests: int, out_dir: Path) -> int:
    """Total instructions of one server run that answers `requests` requests."""
    port = free_port()
    out_file = out_dir / f"callgrind.{requests}.out"
    server = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out_file}",
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
            sock.sendall(request_template.format(**validators).encode())
            head, pending = read_response(sock, pending)
            if i == 0:  # the first request is a plain GET: keep its validators
                validators["etag"] = header(head, b"ETag")
                validators["last_modified"] = header(head, b"Last-Modified")
        sock.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=START_TIMEOUT_S)
    totals = re.search(r"^(?:summary|totals): (\d+)", out_file.read_text(), re.M)
    return int(totals.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotate", action="store_true", help="also print the top functions of the MANY run")
    args = parser.parse_args()
    ensure_installed({"valgrind": "valgrind", "callgrind_annotate": "valgrind"})
    binary = build()
    with tempfile.TemporaryDirectory(prefix="mioserve-callgrind-") as tmp_name:
        tmp = Path(tmp_name)
        root = tmp / "root"
        make_fixture_root(root)
        for case, template in CASES.items():
            few = count(binary, root, template, FEW, tmp)
            many = count(binary, root, template, MANY, tmp)
            print(
                f"{case}: {(many - few) / (MANY - FEW):,.0f} instructions per request "
                f"(({many:,} - {few:,}) / {MANY - FEW:,})"
            )
            if args.annotate:
                out = subprocess.run(
                    ["callgrind_annotate", "--inclusive=no", str(tmp / f"callgrind.{MANY}.out")],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                print("\n".join(out.splitlines()[:40]))


if __name__ == "__main__":
    sys.exit(main())
