"""Many large downloads at once: ``curl --parallel`` fetching the same big
file N times over N connections, with the aggregate rate, the server's CPU
per gigabyte and how fairly the server shared its bandwidth.

Fairness is Jain's index over the per-download average rates,
(Σx)² / (n · Σx²): 1.0 when every download got the same rate, 1/n when one
got everything. A server that serves connections in a fixed order, or lets
one connection's big file starve the others, shows here.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from benchlib.cpu import CpuUse, cpu_snapshot, cpu_use
from benchlib.servers import Server

DOWNLOADS_EXTRA_TIMEOUT_S = 30.0
# Each transfer writes one line: status, bytes received, average bytes/s.
WRITE_OUT = r"%{http_code} %{size_download} %{speed_download}\n"


def jain_index(rates: list[float]) -> float:
    """Jain's fairness index of `rates`: 1.0 = all equal, 1/n = one takes all."""
    squares = sum(rate * rate for rate in rates)
    return sum(rates) ** 2 / (len(rates) * squares) if squares > 0 else float("nan")


@dataclass
class DownloadsResult:
    downloads: int  # asked for
    complete: int  # 200 with the whole file
    total_bytes: int
    wall_s: float
    rates: list[float] = field(default_factory=list)  # bytes/s of each complete download
    cpu: CpuUse = field(default_factory=CpuUse)
    exit_code: int = 0

    @property
    def bytes_per_s(self) -> float:
        return self.total_bytes / self.wall_s if self.wall_s > 0 else float("nan")

    @property
    def server_cpu_s_per_gb(self) -> float:
        """Seconds of the server's CPU per 10⁹ bytes sent."""
        return self.cpu.server_s / (self.total_bytes / 1e9) if self.total_bytes else float("nan")

    @property
    def fairness(self) -> float:
        return jain_index(self.rates) if self.rates else float("nan")

    @property
    def valid(self) -> bool:
        return self.exit_code == 0 and self.complete == self.downloads


def curl_config(url: str, downloads: int, path: Path) -> None:
    """A curl config file (``-K``) asking for `url` `downloads` times, each
    body thrown away."""
    path.write_text(f'url = "{url}"\noutput = "/dev/null"\n' * downloads)


def run_downloads(
    curl: str, server: Server, url_path: str, file_bytes: int, downloads: int, timeout_s: float, tmp: Path
) -> tuple[DownloadsResult, str]:
    """`downloads` concurrent GETs of `url_path` (a file of `file_bytes`),
    one connection each, all started at once; their result and curl's
    error output."""
    config = tmp / f"downloads-{downloads}.curl"
    curl_config(f"{server.url_base}{url_path}", downloads, config)
    command = [
        curl, "--silent", "--show-error",
        "--parallel", "--parallel-immediate", "--parallel-max", str(downloads),
        "--max-time", f"{timeout_s:.0f}", "--write-out", WRITE_OUT, "--config", str(config),
    ]  # fmt: skip
    before = cpu_snapshot(server.process_group)
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s + DOWNLOADS_EXTRA_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return DownloadsResult(downloads, 0, 0, float("nan"), exit_code=-1), "curl did not finish"
    after = cpu_snapshot(server.process_group)
    rates, total = [], 0
    for line in out.stdout.splitlines():
        status, size, speed = line.split()
        total += int(size)
        if status == "200" and int(size) == file_bytes:
            rates.append(float(speed))
    use = cpu_use(before, after)
    result = DownloadsResult(downloads, len(rates), total, use.wall_s, rates, use, out.returncode)
    return result, out.stderr
