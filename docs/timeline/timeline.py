#!/usr/bin/env python3
"""Pictures of mioserve's event loop, drawn from its own trace.

    python3 docs/timeline/timeline.py record         # run the scenarios, redraw docs/timeline/
    python3 docs/timeline/timeline.py draw TRACE     # one trace (--trace-format json) -> SVG

A picture has one lane per worker and one row per connection. Each state the
connection was in is a coloured span; system calls are marks on the row
(hover one for its result); each `epoll_wait` wake-up is a tick on the
worker's lane with the number of events it returned. Quiet stretches (more
than QUIET_GAP_US without a trace line) are cut out and marked with their
length, so that a 1 s timeout and a 20 µs request both fit on one screen.

`record` builds the server (release), then runs each scenario in SCENARIOS
against its own server on 127.0.0.1, port 0, with `--trace=events
--trace-format json`, and draws it: docs/timeline/<scenario>.svg, and
docs/timeline/timeline.html, which shows them all with zoom and hover. Each
scenario lasts at most a few seconds; every server is stopped (SIGTERM, then
SIGKILL after SERVER_EXIT_TIMEOUT_S) before the next starts.

Why a Python script and not a Rust example: the scenarios are misbehaving
clients (a pipelined batch in one write, a reader with a tiny receive
buffer, a client that stalls in the middle of its head), a few lines each
with the socket module; the drawing is text templating. Nothing of it runs
in the server, so it adds no dependency to the crate, and like benches/ it
is linted by ruff in CI.
"""

from __future__ import annotations

import argparse
import bisect
import html
import json
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
OUT_DIR = REPO_ROOT / "docs" / "timeline"
HOST = "127.0.0.1"

SERVER_START_TIMEOUT_S = 10.0
SERVER_EXIT_TIMEOUT_S = 10.0
CLIENT_TIMEOUT_S = 5.0

# The time axis: busy stretches are drawn to scale, quiet ones cut short.
PX_PER_US = 0.6
QUIET_GAP_US = 150.0
QUIET_GAP_PX = 26.0

LABEL_WIDTH_PX = 120
ROW_HEIGHT_PX = 20
LANE_HEADER_PX = 26
TOP_PX = 92
RIGHT_MARGIN_PX = 30
MIN_WIDTH_PX = 1000  # room for the legend

# The connection states (src/connection.rs, STATE_NAMES), in the colours of
# docs/state-machine.svg, a shade stronger.
STATE_COLOURS = {
    "Idle": "#aecbfa",
    "ReadingProxyHeader": "#c58af9",
    "ReadingRequest": "#81c995",
    "WritingResponse": "#fdd663",
    "SendingFile": "#f6ae2d",
    "Lingering": "#f28b82",
}

STYLE = """
text { font: 11px sans-serif; fill: #202124; }
.title { font-size: 14px; font-weight: bold; }
.small { font-size: 9px; fill: #5f6368; }
.lane { fill: #f1f3f4; }
.wake { stroke: #202124; stroke-width: 1; }
.quiet { stroke: #9aa0a6; stroke-dasharray: 3 3; }
.event { stroke: #5f6368; stroke-width: 1; }
.syscall { stroke: #202124; stroke-width: 0.8; }
.blocked { fill: #ffffff; stroke: #d93025; stroke-width: 1.2; }
.request { fill: #1a73e8; }
.timeout { stroke: #d93025; stroke-width: 2; }
.closed { fill: #202124; }
""" + "".join(f".state-{name} {{ fill: {colour}; }}\n" for name, colour in STATE_COLOURS.items())


# --- reading a trace -------------------------------------------------------


@dataclass
class Mark:
    """Something that happened at one instant on a connection's row."""

    time: float
    kind: str  # event, read, send, sendmsg, sendfile, request, timeout
    detail: str
    blocked: bool = False


@dataclass
class Span:
    """A stretch of time a connection spent in one state."""

    state: str
    start: float
    end: float


@dataclass
class ConnectionRow:
    """One connection's life: its states, marks, and how it ended."""

    worker: int
    serial: int
    peer: str = ""
    state: str = "Idle"
    since: float = 0.0
    spans: list[Span] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    closed_at: float | None = None

    def enter(self, state: str, at: float) -> None:
        """Ends the current span at `at` and starts one of `state`."""
        self.spans.append(Span(self.state, self.since, at))
        self.state, self.since = state, at


@dataclass
class Timeline:
    """What a trace says, sorted for drawing."""

    wakes: dict[int, list[tuple[float, int]]] = field(default_factory=dict)
    rows: dict[tuple[int, int], ConnectionRow] = field(default_factory=dict)
    times: list[float] = field(default_factory=list)

    def row(self, record: dict) -> ConnectionRow:
        key = (record["worker"], record["conn"])
        if key not in self.rows:
            self.rows[key] = ConnectionRow(record["worker"], record["conn"], since=record["time"])
        return self.rows[key]


def syscall_mark(record: dict) -> Mark:
    """A read, send, sendmsg or sendfile mark, with the result as the trace says it."""
    call, asked = record["call"], record["asked"]
    if "error" in record:
        return Mark(record["time"], call, f"{call}: {record['error']}", blocked=True)
    done = record["bytes"]
    if call == "read" and done == 0:
        return Mark(record["time"], call, "read: EOF")
    drained = " (short: drained)" if record["drained"] else ""
    return Mark(record["time"], call, f"{call} {done} of {asked} bytes{drained}")


def add_record(timeline: Timeline, record: dict) -> None:
    """Files one trace record under its worker or connection."""
    kind, at = record["kind"], record["time"]
    timeline.times.append(at)
    if kind == "wake":
        timeline.wakes.setdefault(record["worker"], []).append((at, record["events"]))
    elif kind == "accept":
        timeline.row(record).peer = record["peer"]
    elif "conn" not in record:
        return
    elif kind == "transition":
        row = timeline.row(record)
        row.state = record["from"]
        if record["to"] == "closed":
            row.enter("closed", at)
            row.closed_at = at
        else:
            row.enter(record["to"], at)
    elif kind == "syscall":
        timeline.row(record).marks.append(syscall_mark(record))
    elif kind == "event":
        timeline.row(record).marks.append(Mark(at, "event", "event " + " ".join(record["readiness"])))
    elif kind == "request":
        timeline.row(record).marks.append(Mark(at, "request", f"{record['line']} -> {record['status']}"))
    elif kind == "timeout":
        timeline.row(record).marks.append(Mark(at, "timeout", f"{record['state']} timed out"))


def read_trace(lines: Iterable[str]) -> Timeline:
    """The timeline of a `--trace=events --trace-format json` run. Lines that
    are not JSON objects (the start line, the final counters) are skipped."""
    timeline = Timeline()
    for line in lines:
        if line.startswith("{"):
            add_record(timeline, json.loads(line))
    if timeline.times:
        end = max(timeline.times)
        for row in timeline.rows.values():
            if row.closed_at is None:
                row.enter(row.state, end)
    return timeline


# --- drawing ---------------------------------------------------------------


class TimeAxis:
    """Maps trace time to x: to scale where the trace is busy, a fixed
    width for each quiet stretch (which `quiet_gaps` lists)."""

    def __init__(self, times: list[float]) -> None:
        self.times: list[float] = []
        self.xs: list[float] = []
        self.quiet_gaps: list[tuple[float, float]] = []  # (x where it ends, seconds)
        x = 0.0
        for instant in sorted(set(times)):
            if self.times:
                gap_us = (instant - self.times[-1]) * 1e6
                if gap_us > QUIET_GAP_US:
                    x += QUIET_GAP_PX
                    self.quiet_gaps.append((x, gap_us / 1e6))
                else:
                    x += gap_us * PX_PER_US
            self.times.append(instant)
            self.xs.append(x)
        self.width = x

    def x(self, time: float) -> float:
        at = bisect.bisect_left(self.times, time)
        if at < len(self.times) and self.times[at] == time:
            return LABEL_WIDTH_PX + self.xs[at]
        if at == 0 or at == len(self.times):
            return LABEL_WIDTH_PX + (self.xs[0] if at == 0 else self.width)
        t0, t1, x0, x1 = self.times[at - 1], self.times[at], self.xs[at - 1], self.xs[at]
        return LABEL_WIDTH_PX + x0 + (x1 - x0) * (time - t0) / (t1 - t0)


def seconds(value: float) -> str:
    if value >= 0.1:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.1f} ms"
    return f"{value * 1e6:.0f} µs"


def tag(name: str, title: str | None = None, **attributes: object) -> str:
    """One SVG element; `title` becomes its hover text."""
    attrs = " ".join(
        f'{key.rstrip("_").replace("_", "-")}="{html.escape(str(value))}"' for key, value in attributes.items()
    )
    if title is None:
        return f"<{name} {attrs}/>"
    return f"<{name} {attrs}><title>{html.escape(title)}</title></{name}>"


def draw_legend(y: float) -> list[str]:
    parts = []
    x = LABEL_WIDTH_PX
    for state in STATE_COLOURS:
        parts.append(tag("rect", x=x, y=y - 9, width=14, height=10, class_=f"state-{state}"))
        parts.append(f'<text x="{x + 18}" y="{y}">{state}</text>')
        x += 26 + 6.5 * len(state)
    glyphs = [
        ("read", "read"),
        ("send", "send"),
        ("sendmsg", "sendmsg"),
        ("sendfile", "sendfile"),
        ("WouldBlock", "blocked"),
        ("request", "request"),
        ("timeout", "timeout"),
        ("closed", "closed"),
    ]
    x = LABEL_WIDTH_PX
    y += 18
    for label, kind in glyphs:
        parts.append(glyph(kind, x + 5, y - 4, None))
        parts.append(f'<text x="{x + 14}" y="{y}">{label}</text>')
        x += 26 + 6.5 * len(label)
    parts.append(f'<text x="{x + 10}" y="{y}">| epoll_wait wake-up: tick with the number of events</text>')
    return parts


def glyph(kind: str, x: float, y: float, title: str | None, blocked: bool = False) -> str:
    """The mark of one kind at (x, y), the middle of a row."""
    css = "blocked" if blocked else "syscall"
    diamond = f"{x:.1f},{y - 4} {x + 4:.1f},{y} {x:.1f},{y + 4} {x - 4:.1f},{y}"
    flag = f"{x:.1f},{y - 9} {x + 6:.1f},{y - 6} {x:.1f},{y - 3}"
    cross = f"M{x - 4:.1f},{y - 4} L{x + 4:.1f},{y + 4} M{x + 4:.1f},{y - 4} L{x - 4:.1f},{y + 4}"
    shapes = {
        "read": lambda: tag("circle", title, cx=f"{x:.1f}", cy=y, r=3.2, class_=css, fill="#1a73e8"),
        "send": lambda: tag("rect", title, x=f"{x - 3:.1f}", y=y - 3, width=6, height=6, class_=css, fill="#188038"),
        # Head and a cached body by reference in one call: send's square, hollow.
        "sendmsg": lambda: tag("rect", title, x=f"{x - 3:.1f}", y=y - 3, width=6, height=6, class_=css, fill="#ffffff"),
        "sendfile": lambda: tag("polygon", title, points=diamond, class_=css, fill="#e37400"),
        "blocked": lambda: tag("polygon", title, points=diamond, class_="blocked"),
        "request": lambda: tag("polygon", title, points=flag, class_="request"),
        "timeout": lambda: tag("path", title, d=cross, class_="timeout"),
        "closed": lambda: tag("rect", title, x=f"{x - 1.5:.1f}", y=y - 7, width=3, height=14, class_="closed"),
        # A readiness event: a thin tick across the top of the row.
        "event": lambda: tag("line", title, x1=f"{x:.1f}", x2=f"{x:.1f}", y1=y - 9, y2=y - 5, class_="event"),
    }
    return shapes[kind]()


def draw_row(row: ConnectionRow, axis: TimeAxis, y: float) -> list[str]:
    middle = y + ROW_HEIGHT_PX / 2
    port = row.peer.rsplit(":", 1)[-1]
    parts = [f'<text x="8" y="{middle + 4}">#{row.serial}<tspan class="small"> port {port}</tspan></text>']
    for span in row.spans:
        if span.state == "closed":
            continue
        x0, x1 = axis.x(span.start), axis.x(span.end)
        title = f"#{row.serial} {span.state} for {seconds(span.end - span.start)}"
        parts.append(
            tag(
                "rect",
                title,
                x=f"{x0:.1f}",
                y=middle - 5,
                width=f"{max(x1 - x0, 1.0):.1f}",
                height=10,
                class_=f"span state-{span.state}",
            )
        )
    for mark in row.marks:
        title = f"{mark.time:.6f} s  #{row.serial}  {mark.detail}"
        parts.append(glyph(mark.kind, axis.x(mark.time), middle, title, mark.blocked))
    if row.closed_at is not None:
        parts.append(
            glyph("closed", axis.x(row.closed_at) + 2, middle, f"#{row.serial} closed at {row.closed_at:.6f} s")
        )
    return parts


def draw_wakes(wakes: list[tuple[float, int]], axis: TimeAxis, y: float) -> list[str]:
    """Ticks on a lane's header, numbered where there is room."""
    parts = []
    labelled_until = 0.0
    for instant, events in wakes:
        x = axis.x(instant)
        title = f"{instant:.6f} s  epoll_wait woke with {events} event{'s' if events != 1 else ''}"
        parts.append(tag("line", title, x1=f"{x:.1f}", x2=f"{x:.1f}", y1=y + 14, y2=y + 24, class_="wake"))
        if x >= labelled_until:
            parts.append(f'<text class="small" x="{x:.1f}" y="{y + 12}" text-anchor="middle">{events}</text>')
            labelled_until = x + 10
    return parts


def draw_time_labels(axis: TimeAxis, height: float) -> list[str]:
    """The real time every so often, and each quiet stretch's length."""
    parts = []
    labelled_until = -1.0
    for instant, x in zip(axis.times, axis.xs, strict=True):
        if labelled_until <= x <= axis.width - 40:
            parts.append(f'<text class="small" x="{LABEL_WIDTH_PX + x:.1f}" y="{TOP_PX - 6}">{instant:.4f} s</text>')
            labelled_until = x + 110
    labelled_until = -1.0
    for x, gap in axis.quiet_gaps:
        middle = LABEL_WIDTH_PX + x - QUIET_GAP_PX / 2
        parts.append(
            tag(
                "line",
                f"nothing happened for {seconds(gap)}",
                x1=middle,
                x2=middle,
                y1=TOP_PX,
                y2=height,
                class_="quiet",
            )
        )
        if middle >= labelled_until:
            parts.append(
                f'<text class="small" x="{middle:.1f}" y="{height - 4}" text-anchor="middle">+{seconds(gap)}</text>'
            )
            labelled_until = middle + 50
    return parts


def draw(timeline: Timeline, title: str) -> str:
    """The whole picture, as a standalone SVG document."""
    axis = TimeAxis(timeline.times)
    body: list[str] = []
    y = float(TOP_PX)
    for worker in sorted({w for w, _ in timeline.rows} | set(timeline.wakes)):
        rows = [row for key, row in sorted(timeline.rows.items()) if key[0] == worker]
        lane_height = LANE_HEADER_PX + ROW_HEIGHT_PX * len(rows)
        body.append(
            tag(
                "rect",
                x=0,
                y=y,
                width=LABEL_WIDTH_PX + axis.width + RIGHT_MARGIN_PX,
                height=lane_height - 2,
                class_="lane",
            )
        )
        body.append(f'<text x="8" y="{y + 17}" font-weight="bold">worker {worker}</text>')
        body += draw_wakes(timeline.wakes.get(worker, []), axis, y)
        for index, row in enumerate(rows):
            body += draw_row(row, axis, y + LANE_HEADER_PX + index * ROW_HEIGHT_PX)
        y += lane_height + 6
    height = y + 16
    width = max(LABEL_WIDTH_PX + axis.width + RIGHT_MARGIN_PX, MIN_WIDTH_PX)
    head = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}">',
        f"<style>{STYLE}</style>",
        tag("rect", x=0, y=0, width=f"{width:.0f}", height=f"{height:.0f}", fill="#ffffff"),
        f'<text class="title" x="8" y="20">{html.escape(title)}</text>',
        *draw_legend(44),
        *draw_time_labels(axis, height),
    ]
    return "\n".join([*head, *body, "</svg>", ""])


def draw_file(trace: Path, out: Path, title: str) -> None:
    out.write_text(draw(read_trace(trace.read_text().splitlines()), title))


# --- recording -------------------------------------------------------------


def build() -> Path:
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO_ROOT, check=True)
    return REPO_ROOT / "target" / "release" / "mioserve"


def make_site(root: Path) -> None:
    """A small page (served from the memory cache) and a file big enough for
    `sendfile` and back-pressure."""
    root.mkdir()
    (root / "index.html").write_text("<!doctype html><title>timeline</title><p>" + "hello " * 150 + "\n")
    # Bigger than what loopback's socket buffers take in at once (about 3.5 MiB).
    (root / "big.bin").write_bytes(bytes(range(256)) * 4096 * 4)  # 4 MiB


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()


def read_response(sock: socket.socket, pending: bytes = b"", chunk: int = 65536, pause_s: float = 0.0) -> bytes:
    """Reads one response (head and Content-Length body); returns what came after it."""
    while b"\r\n\r\n" not in pending:
        pending += receive(sock, chunk)
    head, rest = pending.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(rest) < length:
        time.sleep(pause_s)
        rest += receive(sock, chunk)
    return rest[length:]


def receive(sock: socket.socket, chunk: int) -> bytes:
    data = sock.recv(chunk)
    if not data:
        raise ConnectionError("the server closed the connection early")
    return data


def connect(port: int, receive_buffer: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(CLIENT_TIMEOUT_S)
    if receive_buffer is not None:
        # Before connect, so that the window the client offers is small from the start.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect((HOST, port))
    return sock


def keep_alive_clients(port: int) -> None:
    """Three clients take turns, three requests each, on their own
    connections; then two leave and one stays idle until the keep-alive
    timeout closes it."""
    clients = [connect(port) for _ in range(3)]
    for _ in range(3):
        for sock in clients:
            sock.sendall(get("/"))
            read_response(sock)
            time.sleep(0.005)
    clients[0].close()
    clients[1].close()
    assert clients[2].recv(1) == b"", "the keep-alive timeout should close the idle connection"
    clients[2].close()


def pipelined_batch(port: int) -> None:
    """Eight requests in one write: one read takes them all in, one send
    answers them all."""
    with connect(port) as sock:
        sock.sendall(get("/") * 8)
        pending = b""
        for _ in range(8):
            pending = read_response(sock, pending)


def sendfile_download(port: int) -> None:
    """A 4 MiB file read as fast as the client can: `sendfile` until the
    socket buffer is full, then wait for a writable event."""
    with connect(port) as sock:
        sock.sendall(get("/big.bin"))
        read_response(sock, chunk=1 << 20)


def slow_reader(port: int) -> None:
    """A client with a small receive buffer reads a 4 MiB file 128 KiB every
    10 ms: the server's `sendfile` blocks once the socket buffers are full,
    and the connection waits in SendingFile for a writable event while the
    worker answers another client's requests."""
    with connect(port, receive_buffer=65536) as slow:
        slow.sendall(get("/big.bin"))
        time.sleep(0.02)
        with connect(port) as quick:
            for _ in range(3):
                quick.sendall(get("/"))
                read_response(quick)
                time.sleep(0.01)
        read_response(slow, chunk=131072, pause_s=0.01)


def header_timeout(port: int) -> None:
    """A client sends half a head and stalls: after --header-timeout the
    server answers 408, half-closes, and lingers until the client closes."""
    with connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHo")
        read_response(sock)


def accepts_across_workers(port: int) -> None:
    """Twelve connections at once, one request each: the kernel spreads them
    over the two workers' SO_REUSEPORT listeners (by a hash of the client's
    port, so the split varies from run to run)."""
    clients = [connect(port) for _ in range(12)]
    threads = [threading.Thread(target=one_request, args=(sock,)) for sock in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(CLIENT_TIMEOUT_S)


def one_request(sock: socket.socket) -> None:
    with sock:
        sock.sendall(get("/"))
        read_response(sock)


@dataclass
class Scenario:
    """One recording: a name (the picture's file name), a title, the
    server's worker count and the clients to run."""

    name: str
    title: str
    workers: int
    clients: Callable[[int], None]


SCENARIOS = [
    Scenario(
        "reuseport", "accept spreading over two SO_REUSEPORT workers: 12 connections at once", 2, accepts_across_workers
    ),
    Scenario(
        "keepalive",
        "three keep-alive clients taking turns; the idle one hits the keep-alive timeout (1 s)",
        1,
        keep_alive_clients,
    ),
    Scenario("pipelined", "a pipelined batch: 8 requests in one write, one read, one send", 1, pipelined_batch),
    Scenario(
        "sendfile",
        "a 4 MiB download: sendfile until the socket buffer is full, then wait to be writable",
        1,
        sendfile_download,
    ),
    Scenario(
        "slow-reader",
        "back-pressure: a slow reader parks in SendingFile while the worker serves another client",
        1,
        slow_reader,
    ),
    Scenario(
        "header-timeout",
        "half a request head, then silence: 408 after the header timeout (1 s), then lingering",
        1,
        header_timeout,
    ),
]


def wait_for_port(stderr_path: Path, server: subprocess.Popen) -> int:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        found = re.search(r"serving .* on http://[^:]+:(\d+)", stderr_path.read_text())
        if found:
            return int(found.group(1))
        if server.poll() is not None:
            raise RuntimeError(f"mioserve exited at start: {stderr_path.read_text()}")
        time.sleep(0.02)
    raise RuntimeError("mioserve did not start in time")


def record_one(binary: Path, root: Path, scenario: Scenario, trace: Path) -> None:
    """Runs one scenario against its own server; its trace goes to `trace`."""
    command = [str(binary), str(root), "--bind", HOST, "--port", "0", "--threads", str(scenario.workers)]
    command += ["--trace=events", "--trace-format", "json", "--no-log"]
    command += ["--keepalive-timeout", "1", "--header-timeout", "1"]
    with trace.open("w") as stderr:
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        scenario.clients(wait_for_port(trace, server))
        time.sleep(0.01)  # let the server trace the last close
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(SERVER_EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def write_page(out_dir: Path, scenarios: list[Scenario]) -> None:
    """timeline.html: every picture inline, with zoom and a hover line."""
    sections = []
    for scenario in scenarios:
        svg = (out_dir / f"{scenario.name}.svg").read_text()
        sections.append(
            f'<h2 id="{scenario.name}">{html.escape(scenario.title)}</h2>\n<div class="picture">{svg}</div>'
        )
    page = PAGE.replace("{sections}", "\n".join(sections))
    (out_dir / "timeline.html").write_text(page)


PAGE = """<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>mioserve: the event loop on a timeline</title>
<style>
body { font: 14px sans-serif; margin: 1em 2em 4em; }
.picture { overflow-x: auto; border: 1px solid #dadce0; }
.picture svg { display: block; }
#hover { position: fixed; bottom: 0; left: 0; right: 0; padding: .4em 2em; background: #202124; color: #fff; font: 13px monospace; min-height: 1.2em; }
</style>
<h1>mioserve: the event loop on a timeline</h1>
<p>Recorded with <code>python3 docs/timeline/timeline.py record</code>; how to read it:
<a href="../event-loop.md#seeing-the-loop">docs/event-loop.md, "Seeing the loop"</a>.
Hover over a span or mark to read it below.
Zoom: <button id="out">−</button> <button id="in">+</button> <span id="zoom">100 %</span></p>
{sections}
<div id="hover"></div>
<script>
"use strict";
let zoom = 1;
const pictures = [...document.querySelectorAll(".picture svg")];
const natural = pictures.map((svg) => [svg.width.baseVal.value, svg.height.baseVal.value]);
function setZoom(factor) {
  zoom = Math.min(8, Math.max(0.25, zoom * factor));
  pictures.forEach((svg, i) => {
    svg.setAttribute("width", natural[i][0] * zoom);
    svg.setAttribute("height", natural[i][1] * zoom);
  });
  document.getElementById("zoom").textContent = Math.round(zoom * 100) + " %";
}
document.getElementById("in").onclick = () => setZoom(1.5);
document.getElementById("out").onclick = () => setZoom(1 / 1.5);
document.addEventListener("mouseover", (event) => {
  const title = event.target.querySelector && event.target.querySelector(":scope > title");
  if (title) document.getElementById("hover").textContent = title.textContent;
});
</script>
</html>
"""


def record(args: argparse.Namespace) -> None:
    binary = Path(args.binary) if args.binary else build()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "site"
        make_site(root)
        for scenario in SCENARIOS:
            print(f"recording {scenario.name}", file=sys.stderr, flush=True)
            trace = Path(tmp) / f"{scenario.name}.jsonl"
            record_one(binary, root, scenario, trace)
            draw_file(trace, out_dir / f"{scenario.name}.svg", scenario.title)
            if args.keep_traces:
                (out_dir / trace.name).write_text(trace.read_text())
    write_page(out_dir, SCENARIOS)
    print(f"wrote {out_dir}/timeline.html and one SVG per scenario", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    recording = commands.add_parser("record", help="run the scenarios and draw them")
    recording.add_argument("--binary", help="a mioserve binary to run [cargo build --release]")
    recording.add_argument("--out", default=str(OUT_DIR), help="where the pictures go [docs/timeline]")
    recording.add_argument("--keep-traces", action="store_true", help="also keep each trace (.jsonl)")
    drawing = commands.add_parser("draw", help="draw one trace (--trace=events --trace-format json)")
    drawing.add_argument("trace", help="the trace file (mioserve's stderr)")
    drawing.add_argument("--out", help="the SVG to write [TRACE with .svg]")
    drawing.add_argument("--title", default="mioserve's event loop")
    args = parser.parse_args()
    if args.command == "record":
        record(args)
    else:
        trace = Path(args.trace)
        draw_file(trace, Path(args.out) if args.out else trace.with_suffix(".svg"), args.title)


if __name__ == "__main__":
    main()
