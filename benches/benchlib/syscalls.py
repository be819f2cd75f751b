"""System calls per request: ``strace -c -f`` attached to every thread of a
server while ``ab -k`` sends a known number of keep-alive requests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from benchlib import procfs
from benchlib.servers import Server

STRACE_TIMEOUT_S = 120.0
AB_TIMEOUT_S = 100.0
AB_CONNECTIONS = 50
# strace attaches asynchronously; requests sent before it has would be missed.
STRACE_ATTACH_S = 1.0
# Every server flushes its access log once a second: wait for one flush, so
# its write lands inside the trace.
LOG_FLUSH_S = 1.2


def count_syscalls(tools: dict[str, str], server: Server, requests: int, tmp: Path) -> dict:
    """Trace `server` while ab sends `requests`; returns the counts
    (total_calls, per_request, the top six calls, ab's complete/failed/
    keepalive counts, threads_traced)."""
    thread_ids = [tid for pid in server.pids() for tid in procfs.thread_ids(pid)]
    out_file = tmp / f"strace-{server.name}.txt"
    command = [tools["strace"], "-c", "-f", "-o", str(out_file)]
    for tid in thread_ids:
        command += ["-p", str(tid)]
    strace = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    result: dict = {"requests": requests, "threads_traced": len(thread_ids)}
    try:
        time.sleep(STRACE_ATTACH_S)
        ab = subprocess.run(
            [tools["ab"], "-k", "-q", "-n", str(requests), "-c", str(AB_CONNECTIONS), f"{server.url_base}/index.html"],
            capture_output=True,
            text=True,
            timeout=AB_TIMEOUT_S,
        )
        complete = re.search(r"Complete requests:\s+(\d+)", ab.stdout)
        failed = re.search(r"Failed requests:\s+(\d+)", ab.stdout)
        keepalive = re.search(r"Keep-Alive requests:\s+(\d+)", ab.stdout)
        result.update(
            complete=int(complete.group(1)) if complete else 0,
            failed=int(failed.group(1)) if failed else -1,
            keepalive=int(keepalive.group(1)) if keepalive else 0,
        )
        time.sleep(LOG_FLUSH_S)
    finally:
        strace.send_signal(signal.SIGINT)
        try:
            strace.wait(timeout=STRACE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(strace.pid, signal.SIGKILL)
            strace.wait(timeout=10)
    calls_by_name = _summary(out_file.read_text(errors="replace") if out_file.exists() else "")
    total = sum(calls_by_name.values())
    done = result.get("complete", 0)
    result.update(
        total_calls=total,
        per_request=total / done if done else float("nan"),
        top=dict(list(calls_by_name.items())[:6]),
    )
    return result


def _summary(text: str) -> dict[str, int]:
    """{syscall: calls} from strace -c's table, most calls first."""
    # Summary lines: "% time  seconds  usecs/call  calls  [errors]  syscall".
    calls = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 5 and re.fullmatch(r"[\d.]+", fields[0]) and fields[3].isdigit() and fields[-1] != "total":
            calls.append((fields[-1], int(fields[3])))
    calls.sort(key=lambda name_calls: -name_calls[1])
    return dict(calls)
