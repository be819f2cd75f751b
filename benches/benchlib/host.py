"""The machine a benchmark runs on: paths, progress output, free ports,
and installing and building what a run needs."""

from __future__ import annotations

import os
import resource
import shutil
import socket
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
MIOSERVE_BIN = REPO_ROOT / "target" / "release" / "mioserve"
DOCS = REPO_ROOT / "docs"
HOST = "127.0.0.1"
CORES = os.cpu_count() or 1

APT_TIMEOUT_S = 600.0
CARGO_TIMEOUT_S = 1800.0


def log(message: str) -> None:
    """Progress goes to stderr, tagged with the script's name, so stdout
    carries only the result table."""
    print(f"[{Path(sys.argv[0]).stem}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    """Ask the kernel for a free loopback port.

    The port is released again before the server binds it; another process
    could grab it in between, but on a benchmark machine that does not happen
    and a failure would show up as a start-up error, not a wrong result.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def which(command: str) -> str | None:
    # /usr/sbin is not on a normal user's PATH, but that is where Debian puts
    # nginx and lighttpd.
    return shutil.which(command) or shutil.which(command, path="/usr/sbin:/usr/local/sbin:/sbin")


def ensure_installed(packages: dict[str, str]) -> dict[str, str]:
    """Paths of the commands in {command: Debian package}, installing the
    packages of missing ones with apt first."""
    missing = sorted({package for command, package in packages.items() if not which(command)})
    if missing:
        prefix = [] if os.geteuid() == 0 else ["sudo"]
        install = [*prefix, "apt-get", "install", "-y", *missing]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        log(f"installing {' '.join(missing)}: {' '.join(install)}")
        if subprocess.run(install, env=env, timeout=APT_TIMEOUT_S).returncode != 0:
            # Only refresh the package lists when the plain install failed; on
            # a fresh container the lists are often simply missing.
            log("install failed, running apt-get update and retrying")
            subprocess.run([*prefix, "apt-get", "update"], env=env, timeout=APT_TIMEOUT_S, check=True)
            subprocess.run(install, env=env, timeout=APT_TIMEOUT_S, check=True)
    paths = {command: which(command) for command in packages}
    still_missing = [command for command, path in paths.items() if not path]
    if still_missing:
        sys.exit(f"{Path(sys.argv[0]).name}: still missing after apt-get install: {' '.join(still_missing)}")
    return paths  # type: ignore[return-value]


def raise_open_files_limit() -> int:
    """Raise RLIMIT_NOFILE, soft and hard, as far as this machine allows, for
    this process and every child it starts (servers, wrk, oha, curl); the
    limit now in force.

    Root may raise the hard limit up to the kernel's ``fs.nr_open``; anyone
    may raise the soft limit up to the hard one.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        nr_open = int(Path("/proc/sys/fs/nr_open").read_text())
    except (OSError, ValueError):
        nr_open = hard
    for limit in (max(nr_open, hard), hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
            return limit
        except (ValueError, OSError):
            continue
    return soft


def cargo_build() -> None:
    log("cargo build --release")
    subprocess.run(["cargo", "build", "--release"], cwd=REPO_ROOT, timeout=CARGO_TIMEOUT_S, check=True)


def tool_version(command: list[str]) -> str:
    """The first line a program prints when asked for its version, or "?"."""
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0].strip() if text else "?"
