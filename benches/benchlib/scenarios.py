"""The suite's scenarios: what wrk requests, how, and which figure counts."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from benchlib.servers import Server
from benchlib.wrk import wrk_command

PIPELINE_LUA = Path(__file__).resolve().parent.parent / "pipeline.lua"


class Load(enum.Enum):
    """How the clients talk to the server during a scenario."""

    KEEPALIVE = "keep-alive connections, one request in flight each"
    CLOSE = "Connection: close, a new connection per request"
    REVALIDATE = "conditional requests with the server's own validators (304s)"
    PIPELINE = "16 requests per write (benches/pipeline.lua)"
    NEXT_TO_IDLE = "keep-alive load while 10,000 idle connections are held"


class Unit(enum.Enum):
    """Which wrk figure the scenario reports."""

    REQUESTS = "req/s"
    BYTES = "bytes/s"


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    path: str
    connections: int
    load: Load = Load.KEEPALIVE
    unit: Unit = Unit.REQUESTS
    # A request slower than this counts as a wrk timeout error.
    request_timeout_s: int = 2
    # Part of `--quick`.
    quick: bool = True

    def wrk_command(self, wrk: str, server: Server, seconds: int, validators: list[str]) -> list[str]:
        """The wrk command of this scenario against `server`; `validators`
        are the server's conditional headers (used by REVALIDATE only)."""
        headers: list[str] = []
        if self.load is Load.CLOSE:
            headers = ["Connection: close"]
        elif self.load is Load.REVALIDATE:
            headers = validators
        return wrk_command(
            wrk,
            f"{server.url_base}{self.path}",
            connections=self.connections,
            seconds=seconds,
            request_timeout_s=self.request_timeout_s,
            headers=headers,
            script=PIPELINE_LUA if self.load is Load.PIPELINE else None,
        )


SCENARIOS = [
    Scenario("small-50", "1 KiB, keep-alive, 50 conns", "/index.html", 50, quick=False),
    Scenario("small-256", "1 KiB, keep-alive, 256 conns", "/index.html", 256),
    Scenario("small-1000", "1 KiB, keep-alive, 1,000 conns", "/index.html", 1000, quick=False),
    Scenario("close", "1 KiB, new connection per request, 50 conns", "/index.html", 50, load=Load.CLOSE),
    Scenario(
        "304",
        "304 revalidation (If-None-Match + If-Modified-Since), 256 conns",
        "/index.html",
        256,
        load=Load.REVALIDATE,
    ),
    Scenario("pipeline16", "1 KiB, 16-deep pipelining, 50 conns", "/index.html", 50, load=Load.PIPELINE),
    Scenario("1m", "1 MiB file, 16 conns", "/1m.bin", 16, unit=Unit.BYTES, request_timeout_s=10),
    Scenario("64m", "64 MiB file, 4 conns", "/64m.bin", 4, unit=Unit.BYTES, request_timeout_s=30, quick=False),
    Scenario("idle10k", "1 KiB, 50 active conns while 10,000 idle are held", "/index.html", 50, load=Load.NEXT_TO_IDLE),
]


def scenario_by_key(key: str) -> Scenario:
    return next(s for s in SCENARIOS if s.key == key)
