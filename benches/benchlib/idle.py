"""What an idle keep-alive connection costs a server, measured next to load.

A holder process (``benches/idle_holder.py``) opens N keep-alive
connections, uses each once and holds them. The server's resident memory
(all its processes) before and after, divided by N, is the cost of one idle
connection; meanwhile a wrk load runs, and afterwards the holder says how
many of its connections the server kept open.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchlib.host import HOST
from benchlib.load import LoadResult
from benchlib.servers import SERVER_NOFILE, Server
from benchlib.wrk import run_wrk

IDLE_HOLDER = Path(__file__).resolve().parent.parent / "idle_holder.py"
HOLDER_READY_TIMEOUT_S = 60.0
HOLDER_REPLY_TIMEOUT_S = 10.0
# Settling times: for the server to finish the last responses before RSS is
# read, and to reap 10,000 closed sockets before the next run.
SETTLE_BEFORE_RSS_S = 0.3
SETTLE_AFTER_OPEN_S = 0.5
SETTLE_AFTER_CLOSE_S = 1.0


@dataclass
class IdleMemory:
    opened: int
    failed: int
    open_s: float
    alive_after: int
    rss_before: int
    rss_idle: int

    @property
    def rss_per_idle_conn(self) -> float:
        return (self.rss_idle - self.rss_before) / self.opened if self.opened else float("nan")


def _readline(holder: subprocess.Popen, timeout_s: float) -> str | None:
    """One line from the holder, or None if it says nothing for `timeout_s`."""
    selector = selectors.DefaultSelector()
    selector.register(holder.stdout, selectors.EVENT_READ)
    if selector.select(timeout_s):
        return holder.stdout.readline().strip()
    return None


def _stop_holder(holder: subprocess.Popen) -> None:
    try:
        holder.stdin.write("quit\n")
        holder.stdin.flush()
        holder.wait(timeout=HOLDER_REPLY_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired, ValueError):
        pass
    if holder.poll() is None:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(timeout=HOLDER_REPLY_TIMEOUT_S)
    time.sleep(SETTLE_AFTER_CLOSE_S)


def measure_next_to_idle(
    load_command: list[str], server: Server, path: str, idle_connections: int, seconds: int
) -> tuple[LoadResult, IdleMemory | None, str]:
    """Hold `idle_connections` (each has fetched `path` once) while
    `load_command` runs for `seconds`. Returns wrk's result, the memory
    figures (None if the holder failed) and a problem (empty: fine)."""
    time.sleep(SETTLE_BEFORE_RSS_S)
    rss_before = server.rss_bytes()
    holder = subprocess.Popen(
        [sys.executable, str(IDLE_HOLDER), HOST, str(server.port), path, str(idle_connections)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        line = _readline(holder, HOLDER_READY_TIMEOUT_S)
        ready = re.match(r"ready (\d+) (\d+) ([\d.]+)", line or "")
        if not ready:
            return LoadResult(exit_code=-1), None, f"idle holder failed: {line!r}"
        opened, failed, open_s = int(ready.group(1)), int(ready.group(2)), float(ready.group(3))
        time.sleep(SETTLE_AFTER_OPEN_S)
        rss_idle = server.rss_bytes()
        result, _ = run_wrk(load_command, server, seconds)
        holder.stdin.write("check\n")
        holder.stdin.flush()
        alive_line = _readline(holder, HOLDER_REPLY_TIMEOUT_S) or ""
        alive = int(alive_line.split()[1]) if alive_line.startswith("alive") else -1
        memory = IdleMemory(opened, failed, open_s, alive, rss_before, rss_idle)
        problem = ""
        if opened < idle_connections:
            problem = f"only {opened} of {idle_connections} idle connections opened"
        elif not result.requests and server.name.startswith("lighttpd"):
            problem = (
                f"lighttpd refuses connections beyond server.max-fds / 2 = {SERVER_NOFILE // 2:,} "
                f"(ulimit -n {SERVER_NOFILE:,}); the {opened:,} idle ones fill it, the load cannot connect"
            )
        elif alive < opened:
            problem = f"{opened - alive} idle connections closed by the server during the load"
        if not result.valid:
            problem = (problem + "; " if problem else "") + "invalid wrk run"
        return result, memory, problem
    finally:
        _stop_holder(holder)
