"""What one load-generator run measured, whichever generator ran it (wrk,
oha or curl): completed requests, rates, latency percentiles, errors, and
the CPU everybody used meanwhile (see ``cpu``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from benchlib.cpu import CpuUse


@dataclass
class LoadResult:
    """One run's figures; NaN where the generator does not measure one."""

    requests: int = 0
    req_per_s: float = float("nan")
    transfer_per_s: float = float("nan")  # bytes per second
    latency_avg_ms: float = float("nan")
    latency_p50_ms: float = float("nan")
    latency_p99_ms: float = float("nan")
    latency_p999_ms: float = float("nan")
    latency_max_ms: float = float("nan")
    connect_errors: int = 0
    read_errors: int = 0
    write_errors: int = 0
    timeout_errors: int = 0
    # wrk counts statuses outside 2xx and 3xx; our fixtures must all be 200.
    non_2xx_3xx: int = 0
    bytes_read: float = float("nan")  # heads and bodies, as wrk reports it
    exit_code: int = 0
    cpu: CpuUse = field(default_factory=CpuUse)

    @property
    def req_per_server_cpu_s(self) -> float:
        """Requests served per second of the server's own CPU time.

        Only comparable between runs where the server got similar CPU: when
        starved, it handles more ready events per wake-up and this rises.
        """
        return self.req_per_s / self.cpu.server if self.cpu.server > 0 else float("nan")

    @property
    def server_us_per_request(self) -> float:
        """Microseconds of the server's user + system CPU time per completed
        request: what a request costs the server, however fast the load
        generator is."""
        return self.cpu.server_s * 1e6 / self.requests if self.requests else float("nan")

    @property
    def bytes_per_response(self) -> float:
        return self.bytes_read / self.requests if self.requests else float("nan")

    @property
    def noisy(self) -> bool:
        return self.cpu.noisy

    @property
    def errors(self) -> int:
        return self.connect_errors + self.read_errors + self.write_errors + self.timeout_errors

    @property
    def valid(self) -> bool:
        return self.exit_code == 0 and self.errors == 0 and self.non_2xx_3xx == 0 and self.requests > 0
