"""The servers under test as child processes on 127.0.0.1: start, check,
stop.

Every server gets a free port, its own session (so Ctrl-C reaches only the
script, and a group kill reaches every process the server forked), stdout
and stderr in files (a pipe nobody reads fills up and would block the
server mid-benchmark) and an access log in the run's temporary directory.
nginx and lighttpd run from config files written there: the system services
are never touched.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchlib import procfs
from benchlib.host import CORES, HOST, MIOSERVE_BIN, free_port, log

# Every wait here is bounded, so a hung server cannot stall the run forever.
SERVER_START_TIMEOUT_S = 10.0
# Longer than mioserve's own SHUTDOWN_GRACE (5 s), so a server that is
# draining responses in flight is not killed before it could exit cleanly.
SERVER_STOP_GRACE_S = 10.0
HTTP_CHECK_TIMEOUT_S = 5.0

# Room for many connections, for the suite's idle scenario (10,000 held
# open next to 50 active): nginx's limit is per worker, lighttpd's and
# mioserve's in total.
NGINX_WORKER_CONNECTIONS = 16_384
SERVER_NOFILE = 20_000
MAX_CONNECTIONS = 16_000
# lighttpd refuses more connections than max-fds / 2 (it reserves a second
# descriptor per connection), so 20,000 would cap it at 10,000 connections,
# fewer than the idle scenario's 10,000 + 50. Started as root it raises its
# own limit to max-fds.
LIGHTTPD_MAX_FDS = 2 * MAX_CONNECTIONS + 100
# The idle scenario takes a few seconds to open the connections plus the load
# run; every server's keep-alive timeout must outlast that (nginx 10 s,
# mioserve 10 s by default, lighttpd 5 s by default: raised to 10 s).
KEEPALIVE_TIMEOUT_S = 10
# nginx's open_file_cache (descriptors and stat results of recently served
# files, per worker): the suite's nginx caches 1,000 files; the working-set
# scenarios add nginx as shipped (no cache) and with room for 10,000 files.
NGINX_OPEN_FILE_CACHE = "max=1000 inactive=20s"
NGINX_VARIANTS = {
    "nginx": NGINX_OPEN_FILE_CACHE,
    "nginx-no-ofc": None,
    "nginx-ofc10k": "max=10000 inactive=20s",
}


@dataclass
class Server:
    """One contender: a running child process that serves the fixture root."""

    name: str
    port: int
    proc: subprocess.Popen
    # Files holding the child's stdout/stderr (or error log), shown when the
    # server fails to start or misbehaves.
    logs: list[Path] = field(default_factory=list)
    access_log: Path | None = None
    exit_code: int | None = None

    @property
    def url_base(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def process_group(self) -> int:
        # start_new_session=True made the child a group leader.
        return self.proc.pid

    def pids(self) -> list[int]:
        """Every process of the server (nginx and lighttpd workers too)."""
        return procfs.group_pids(self.process_group)

    def rss_bytes(self) -> int:
        """Resident memory of all the server's processes."""
        return sum(procfs.rss_bytes(pid) for pid in self.pids())

    def log_tail(self, lines: int = 20) -> str:
        out = []
        for path in self.logs:
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {path.name} ---\n" + "\n".join(text))
        return "\n".join(out)


def spawn(name: str, command: list[str], tmp: Path) -> tuple[subprocess.Popen, Path, Path]:
    """Start `command` in its own session with stdout and stderr in files
    under `tmp`; returns the process and those two files."""
    stdout, stderr = tmp / f"{name}.stdout", tmp / f"{name}.stderr"
    log(f"starting {name}: {' '.join(command)}")
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
    return proc, stdout, stderr


def wait_until_listening(server: Server, ready_line: tuple[Path, re.Pattern] | None = None) -> None:
    """Wait until the server accepts a TCP connection on its port.

    With `ready_line` (a file and a pattern with a `port` group) we also wait
    for the server's start-up line, which tells the address it really bound
    (it is the authority, not our guess).
    """
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with status {server.proc.returncode} during start-up\n" + server.log_tail()
            )
        if ready_line is not None:
            path, pattern = ready_line
            match = pattern.search(path.read_text(errors="replace")) if path.exists() else None
            if match is None:
                time.sleep(0.05)
                continue
            server.port = int(match.group("port"))
            ready_line = None
        try:
            with socket.create_connection((HOST, server.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{server.name} did not start within {SERVER_START_TIMEOUT_S} s\n" + server.log_tail())


def start_mioserve(threads: int, root: Path, tmp: Path, extra_args: list[str] | None = None) -> Server:
    name = f"mioserve-{threads}"
    access_log = tmp / f"{name}-access.log"
    command = [
        str(MIOSERVE_BIN), str(root),
        "--bind", HOST,
        "--port", str(free_port()),
        "--threads", str(threads),
        "--log", str(access_log),
        *(extra_args or []),
    ]  # fmt: skip
    proc, stdout, stderr = spawn(name, command, tmp)
    server = Server(name, 0, proc, [stdout, stderr], access_log)
    # On stderr (stdout carries only access-log lines), e.g.
    # "mioserve: serving /tmp/x on http://127.0.0.1:8888 (2 workers); access log: /tmp/y"
    ready = re.compile(r"on http://[^\s:]+:(?P<port>\d+)")
    wait_until_listening(server, (stderr, ready))
    line = stderr.read_text(errors="replace").strip().splitlines()
    log(f"  {line[0] if line else '(no start-up line)'}")
    return server


def nginx_config(
    root: Path,
    tmp: Path,
    port: int,
    workers: int,
    worker_connections: int = 1024,
    rlimit_nofile: int | None = None,
    name: str = "nginx",
    open_file_cache: str | None = NGINX_OPEN_FILE_CACHE,
) -> str:
    """A static-file nginx tuned the way a careful operator would tune it.

    Everything nginx writes (pid, error log, access log, temp dirs) stays
    inside `tmp`, so it runs next to, never instead of, a system nginx.
    Its pid and log files are named after `name`, so variants can run side
    by side; `open_file_cache` is the directive's value (None: no cache).
    """
    # nginx drops to `nobody` by default when started as root, and `nobody`
    # cannot read our 0700 temp dir. Outside root the directive is ignored
    # with a warning, so only emit it when it matters.
    user = "user root;\n" if os.geteuid() == 0 else ""
    # Holding many idle connections needs more than the default descriptor
    # limit and connection slots per worker.
    rlimit = f"worker_rlimit_nofile {rlimit_nofile};\n" if rlimit_nofile else ""
    cache = f"open_file_cache {open_file_cache};\n    open_file_cache_valid 30s;\n    " if open_file_cache else ""
    return f"""\
{user}{rlimit}worker_processes {workers};
pid {tmp}/{name}.pid;
error_log {tmp}/{name}-error.log warn;

events {{
    worker_connections {worker_connections};
}}

http {{
    types {{
        text/html                html;
        text/css                 css;
        image/png                png;
        application/octet-stream bin;
    }}
    default_type application/octet-stream;

    client_body_temp_path {tmp}/nginx-client-body;
    proxy_temp_path       {tmp}/nginx-proxy;
    fastcgi_temp_path     {tmp}/nginx-fastcgi;
    uwsgi_temp_path       {tmp}/nginx-uwsgi;
    scgi_temp_path        {tmp}/nginx-scgi;

    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    {cache}keepalive_requests 1000000;
    keepalive_timeout {KEEPALIVE_TIMEOUT_S}s;
    access_log {tmp}/{name}-access.log combined buffer=64k flush=1s;

    server {{
        listen {HOST}:{port} reuseport;
        root {root};
        index index.html;
    }}
}}
"""


def start_nginx(nginx: str, root: Path, tmp: Path, workers: int, name: str = "nginx", **config) -> Server:
    """Start a private nginx called `name`; `config` goes to `nginx_config`
    (connection limits, open_file_cache)."""
    port = free_port()
    conf = tmp / f"{name}.conf"
    conf.write_text(nginx_config(root, tmp, port, workers, name=name, **config))
    error_log = tmp / f"{name}-error.log"
    # -p: prefix for relative paths; -e: error log used *before* the config is
    # read (otherwise nginx first tries /var/log/nginx/error.log);
    # daemon off: stay a direct child so we own its lifetime.
    command = [nginx, "-p", str(tmp), "-e", str(error_log), "-c", str(conf), "-g", "daemon off;"]
    proc, stdout, stderr = spawn(name, command, tmp)
    server = Server(name, port, proc, [stdout, stderr, error_log], tmp / f"{name}-access.log")
    wait_until_listening(server)
    return server


def lighttpd_config(root: Path, tmp: Path, port: int, workers: int) -> str:
    """lighttpd 1.4 serving the root the way the nginx config does.

    Everything it writes stays in `tmp`; the system service is never used.
    """
    # No server.username: started as root, lighttpd keeps running as root (it
    # only warns), which it must to read the script's 0700 temporary directory.
    worker = f"server.max-worker = {workers}\n" if workers > 1 else ""
    mimetypes = (
        '".html" => "text/html", ".css" => "text/css", ".png" => "image/png", ".bin" => "application/octet-stream"'
    )
    return f"""\
server.modules = ("mod_accesslog")
server.document-root = "{root}"
server.bind = "{HOST}"
server.port = {port}
server.errorlog = "{tmp}/lighttpd-{workers}-error.log"
server.event-handler = "linux-sysepoll"
server.network-backend = "sendfile"
server.max-fds = {LIGHTTPD_MAX_FDS}
server.max-connections = {MAX_CONNECTIONS}
server.max-keep-alive-requests = 1000000
server.max-keep-alive-idle = {KEEPALIVE_TIMEOUT_S}
server.stat-cache-engine = "simple"
index-file.names = ("index.html")
mimetype.assign = ({mimetypes})
accesslog.filename = "{tmp}/lighttpd-{workers}-access.log"
{worker}"""


def start_lighttpd(lighttpd: str, root: Path, tmp: Path, workers: int) -> Server:
    """lighttpd as one process (workers = 1) or with server.max-worker forks."""
    name = "lighttpd" if workers == 1 else f"lighttpd-w{workers}"
    port = free_port()
    conf = tmp / f"{name}.conf"
    conf.write_text(lighttpd_config(root, tmp, port, workers))
    proc, stdout, stderr = spawn(name, [lighttpd, "-D", "-f", str(conf)], tmp)  # -D: foreground, stays our child
    server = Server(
        name,
        port,
        proc,
        [stdout, stderr, tmp / f"lighttpd-{workers}-error.log"],
        tmp / f"lighttpd-{workers}-access.log",
    )
    wait_until_listening(server)
    if workers > 1:
        time.sleep(0.5)  # let the forked workers come up before measuring
    return server


def start_with_room_for_idle(name: str, tools: dict[str, str], root: Path, tmp: Path) -> Server:
    """Start contender `name` (mioserve-N, one of NGINX_VARIANTS, lighttpd
    or lighttpd-wN), each configured for many connections: nginx with a
    worker per core, lighttpd-wN with a worker per core."""
    if name in NGINX_VARIANTS:
        return start_nginx(
            tools["nginx"],
            root,
            tmp,
            CORES,
            name,
            worker_connections=NGINX_WORKER_CONNECTIONS,
            rlimit_nofile=SERVER_NOFILE,
            open_file_cache=NGINX_VARIANTS[name],
        )
    if name.startswith("lighttpd"):
        return start_lighttpd(tools["lighttpd"], root, tmp, 1 if name == "lighttpd" else CORES)
    # mioserve's default limit is (ulimit -n - reserve) / 2, just under 10,000
    # here: it assumes two descriptors per connection (socket + file being
    # sent). Like nginx's worker_connections and lighttpd's max-connections,
    # it gets an explicit limit with room for the idle scenario.
    return start_mioserve(mioserve_threads(name), root, tmp, ["--max-connections", str(MAX_CONNECTIONS)])


def mioserve_threads(name: str) -> int:
    """N of a contender named mioserve-N."""
    return int(name.split("-", 1)[1])


def stop_server(server: Server) -> None:
    """SIGTERM, wait, then SIGKILL the whole process group.

    Every server treats SIGTERM as "shut down now" (nginx: fast shutdown).
    The group kill catches workers if the master died first.
    """
    if server.proc.poll() is None:
        try:
            server.proc.send_signal(signal.SIGTERM)
            server.proc.wait(timeout=SERVER_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            log(f"{server.name} ignored SIGTERM for {SERVER_STOP_GRACE_S} s, killing it")
        except ProcessLookupError:
            pass
    # The group id is the child's pid, so this reaches only processes this
    # script started.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(server.process_group, signal.SIGKILL)
    try:
        server.exit_code = server.proc.wait(timeout=SERVER_STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        server.exit_code = None


def stop_all(servers: dict[str, Server], tmp: Path, keep_tmp: bool) -> None:
    """Stops every server, reports its exit status and access-log line count,
    and removes the temporary directory unless asked to keep it."""
    for server in servers.values():
        stop_server(server)
    for name, server in servers.items():
        count = "?"
        if server.access_log and server.access_log.exists():
            with open(server.access_log, "rb") as f:
                count = f"{sum(1 for _ in f):,}"
        log(f"{name} stopped, exit status {server.exit_code}, access log lines {count}")
    if keep_tmp:
        log(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def check_server(server: Server, files: dict[str, bytes]) -> list[str]:
    """Fetch every fixture and a missing path; return a list of problems.

    A fast server that serves the wrong bytes is not a result, so each
    contender must pass this before its numbers mean anything.
    """
    problems = []
    conn = http.client.HTTPConnection(HOST, server.port, timeout=HTTP_CHECK_TIMEOUT_S)
    try:
        # One keep-alive connection for all requests, as wrk will use.
        for url, expected in [*files.items(), ("/does-not-exist.html", None)]:
            conn.request("GET", url)
            response = conn.getresponse()
            body = response.read()
            if expected is None:
                if response.status != 404:
                    problems.append(f"GET {url}: status {response.status}, expected 404")
            elif response.status != 200:
                problems.append(f"GET {url}: status {response.status}, expected 200")
            elif body != expected:
                problems.append(f"GET {url}: body of {len(body)} bytes differs from the {len(expected)}-byte file")
            if response.will_close:
                conn.close()
    except (OSError, http.client.HTTPException) as e:
        problems.append(f"request failed: {e!r}")
    finally:
        conn.close()
    return problems


def conditional_headers(server: Server) -> tuple[list[str], str]:
    """The server's own validators for /index.html as request headers
    (If-None-Match, If-Modified-Since), and a problem if they do not give a
    bodiless 304 (empty: they do)."""
    conn = http.client.HTTPConnection(HOST, server.port, timeout=HTTP_CHECK_TIMEOUT_S)
    try:
        conn.request("GET", "/index.html")
        plain = conn.getresponse()
        plain.read()
        etag, last_modified = plain.getheader("ETag"), plain.getheader("Last-Modified")
        headers = []
        if etag:
            headers.append(f"If-None-Match: {etag}")
        if last_modified:
            headers.append(f"If-Modified-Since: {last_modified}")
        conn.request("GET", "/index.html", headers=dict(h.split(": ", 1) for h in headers))
        conditional = conn.getresponse()
        body = conditional.read()
        if conditional.status == 304 and not body:
            return headers, ""
        return headers, f"conditional GET gave {conditional.status}, {len(body)} body bytes"
    finally:
        conn.close()
