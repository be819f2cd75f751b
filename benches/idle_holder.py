#!/usr/bin/env python3
"""Open N keep-alive connections to a server, use each once, then hold them idle.

Used by benches/suite.py to measure what an idle keep-alive connection costs a
server (its RSS growth divided by N) while other clients keep it busy.

    idle_holder.py HOST PORT PATH N

1. Raises its own RLIMIT_NOFILE soft limit to the hard limit (N sockets need
   N descriptors).
2. Opens the connections in batches of BATCH (a burst of 10,000 SYNs would
   overflow the listen backlog; dropped SYNs are retried only after 1 s),
   sends one `GET PATH` on each and reads the whole response.
3. Prints ``ready <open> <failed> <seconds>`` on stdout and waits.
4. On each line ``check`` from stdin, prints ``alive <n>``: the connections
   the server has not closed (a closed one polls readable with EOF).
5. Exits, closing everything, on ``quit`` or EOF on stdin, and in any case
   after MAX_LIFETIME_S.

Standard library only. Talks to 127.0.0.1 only (HOST is checked).
"""

import os
import resource
import select
import socket
import sys
import threading
import time
from dataclasses import dataclass

BATCH = 250
RESPONSE_TIMEOUT_S = 10.0
MAX_LIFETIME_S = 300.0
# Descriptors beyond the N sockets: stdio, the epoll instance, Python's own.
SPARE_DESCRIPTORS = 100


def raise_descriptor_limit(connections: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = connections + SPARE_DESCRIPTORS
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard) if hard != resource.RLIM_INFINITY else want, hard))


@dataclass
class Pending:
    """A connection of the current batch that has not had its response yet."""

    sock: socket.socket
    received: bytes = b""
    sent: bool = False

    def response_complete(self) -> bool:
        """Whether `received` holds a whole response (head and Content-Length body)."""
        head_end = self.received.find(b"\r\n\r\n")
        if head_end < 0:
            return False
        length = 0
        for line in self.received[:head_end].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return len(self.received) >= head_end + 4 + length


def connect_batch(host: str, port: int, count: int) -> tuple[list[socket.socket], int]:
    """Start `count` non-blocking connects; the sockets and how many failed at once."""
    started, failed = [], 0
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect((host, port))
        except BlockingIOError:
            pass
        except OSError:
            failed += 1
            sock.close()
            continue
        started.append(sock)
    return started, failed


def use_once(poller: select.epoll, batch: list[socket.socket], request: bytes) -> tuple[list[socket.socket], int]:
    """Wait for each connect, send the request, read one whole response.
    Returns the connections that got one, and how many did not."""
    pending = {sock.fileno(): Pending(sock) for sock in batch}
    for fd in pending:
        poller.register(fd, select.EPOLLOUT)
    done, failed = [], 0

    def drop(fd: int) -> None:
        nonlocal failed
        poller.unregister(fd)
        failed += 1
        pending.pop(fd).sock.close()

    deadline = time.monotonic() + RESPONSE_TIMEOUT_S
    while pending and time.monotonic() < deadline:
        for fd, _ in poller.poll(0.5):
            connection = pending[fd]
            if not connection.sent:
                if connection.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                    drop(fd)
                    continue
                connection.sock.send(request)
                connection.sent = True
                poller.modify(fd, select.EPOLLIN)
                continue
            try:
                chunk = connection.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                drop(fd)
                continue
            connection.received += chunk
            if connection.response_complete():
                poller.unregister(fd)
                done.append(pending.pop(fd).sock)
    for fd in list(pending):
        drop(fd)
    return done, failed


def hold(poller: select.epoll, sockets: list[socket.socket]) -> None:
    """Answer `check` lines with the number of connections still open, until
    `quit` or EOF on stdin."""
    for sock in sockets:
        poller.register(sock.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
    for line in sys.stdin:
        command = line.strip()
        if command == "check":
            # maxevents defaults to 1023 in Python: ask for all of them.
            closed = {fd for fd, _ in poller.poll(0, len(sockets) + 1)}
            print(f"alive {len(sockets) - len(closed)}", flush=True)
        elif command == "quit":
            break


def main() -> int:
    host, port, path, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    if host != "127.0.0.1":
        sys.exit("idle_holder.py: only 127.0.0.1 is allowed")
    raise_descriptor_limit(n)
    # Watchdog: never outlive a crashed parent.
    threading.Timer(MAX_LIFETIME_S, lambda: os._exit(3)).start()

    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    held: list[socket.socket] = []
    failed = 0
    start = time.monotonic()
    poller = select.epoll()
    while len(held) + failed < n:
        batch, failed_to_start = connect_batch(host, port, min(BATCH, n - len(held) - failed))
        used, failed_to_use = use_once(poller, batch, request)
        held += used
        failed += failed_to_start + failed_to_use
    print(f"ready {len(held)} {failed} {time.monotonic() - start:.2f}", flush=True)
    hold(poller, held)
    for sock in held:
        sock.close()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
