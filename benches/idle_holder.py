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

import resource
import select
import socket
import sys
import threading
import time
import os

BATCH = 250
RESPONSE_TIMEOUT_S = 10.0
MAX_LIFETIME_S = 300.0


def main() -> int:
    host, port, path, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    if host != "127.0.0.1":
        sys.exit("idle_holder.py: only 127.0.0.1 is allowed")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 100
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard) if hard != resource.RLIM_INFINITY else want, hard))
    # Watchdog: never outlive a crashed parent.
    threading.Timer(MAX_LIFETIME_S, lambda: os._exit(3)).start()

    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    socks: list[socket.socket] = []
    failed = 0
    start = time.monotonic()
    ep = select.epoll()
    while len(socks) + failed < n:
        batch = []
        for _ in range(min(BATCH, n - len(socks) - failed)):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect((host, port))
            except BlockingIOError:
                pass
            except OSError:
                failed += 1
                s.close()
                continue
            batch.append(s)
        # Wait for each connect, send the request, read until the response's
        # end (Content-Length bytes after the head). One response each.
        pending = {s.fileno(): [s, b"", False] for s in batch}
        for fd in pending:
            ep.register(fd, select.EPOLLOUT)
        deadline = time.monotonic() + RESPONSE_TIMEOUT_S
        while pending and time.monotonic() < deadline:
            for fd, ev in ep.poll(0.5):
                s, buf, sent = pending[fd]
                if not sent:
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                        ep.unregister(fd)
                        failed += 1
                        s.close()
                        del pending[fd]
                        continue
                    s.send(request)
                    pending[fd][2] = True
                    ep.modify(fd, select.EPOLLIN)
                    continue
                try:
                    chunk = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if not chunk:
                    ep.unregister(fd)
                    failed += 1
                    s.close()
                    del pending[fd]
                    continue
                buf += chunk
                pending[fd][1] = buf
                head_end = buf.find(b"\r\n\r\n")
                if head_end >= 0:
                    length = 0
                    for line in buf[:head_end].split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    if len(buf) >= head_end + 4 + length:
                        ep.unregister(fd)
                        socks.append(s)
                        del pending[fd]
        for fd, (s, _, _) in pending.items():
            ep.unregister(fd)
            failed += 1
            s.close()
    print(f"ready {len(socks)} {failed} {time.monotonic() - start:.2f}", flush=True)

    for fd_sock in socks:
        ep.register(fd_sock.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "check":
            # maxevents defaults to 1023 in Python: ask for all of them.
            closed = {fd for fd, _ in ep.poll(0, len(socks) + 1)}
            print(f"alive {len(socks) - len(closed)}", flush=True)
        elif cmd == "quit":
            break
    for s in socks:
        s.close()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
