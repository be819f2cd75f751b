"""The suite's scenarios: what the load generator requests, how, and which
figure counts.

Most scenarios are one wrk run. The others name their own load in `Load`:
oha at fixed offered rates (``oha``), overload with a prober beside it
(``overload``), many large downloads with curl (``downloads``). Scenarios
that belong together form a group (`Scenario.groups`), which
``--scenarios`` accepts as a name.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from benchlib.servers import Server
from benchlib.wrk import wrk_command

PIPELINE_LUA = Path(__file__).resolve().parent.parent / "pipeline.lua"
WORKING_SET_LUA = Path(__file__).resolve().parent.parent / "working_set.lua"
# The working-set script's seed: every run asks for the same sequence.
WORKING_SET_SEED = "20240605"
# The working-set scenarios also run against nginx as shipped (no
# open_file_cache) and with a cache big enough for 10,000 files.
NGINX_CACHE_VARIANTS = ("nginx-no-ofc", "nginx-ofc10k")
# The key of the closed-loop oha run whose slowest contender sets the
# offered rates of the fixed-rate scenarios.
RATE_MAX = "rate-max"


class Load(enum.Enum):
    """How the clients talk to the server during a scenario."""

    KEEPALIVE = "keep-alive connections, one request in flight each"
    CLOSE = "Connection: close, a new connection per request"
    REVALIDATE = "conditional requests with the server's own validators (304s)"
    PIPELINE = "16 requests per write (benches/pipeline.lua)"
    NEXT_TO_IDLE = "keep-alive load while 10,000 idle connections are held"
    WORKING_SET = "keep-alive, each request for a file drawn from many (benches/working_set.lua)"
    FIXED_RATE = "oha at a fixed offered rate, open loop, latency-corrected"
    STORM = "a storm of new connections, one request each, far past capacity, with a keep-alive prober"
    FLOOD = "far more keep-alive connections than needed, with a new-connection prober"
    DOWNLOADS = "curl --parallel: many large downloads at once, one connection each"


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
    # Connections in `--quick` (downloads: how many), if fewer.
    quick_connections: int | None = None
    groups: tuple[str, ...] = ()
    # WORKING_SET: the arguments of benches/working_set.lua (mode, files).
    lua_args: tuple[str, ...] = ()
    # FIXED_RATE: the offered rate as a fraction of the slowest contender's
    # maximum (RATE_MAX); None for RATE_MAX itself, which is closed loop.
    rate_fraction: float | None = None
    # STORM and FLOOD: the scenario whose load, at its ordinary concurrency,
    # gives the peak the goodput is compared with.
    peak: str = ""
    # Contenders this scenario also runs against, beyond the suite's own.
    extra_contenders: tuple[str, ...] = ()

    def connections_in(self, quick: bool) -> int:
        return self.quick_connections if quick and self.quick_connections else self.connections

    def wrk_command(
        self, wrk: str, server: Server, seconds: int, validators: list[str], *, quick: bool = False
    ) -> list[str]:
        """The wrk command of this scenario against `server`; `validators`
        are the server's conditional headers (used by REVALIDATE only)."""
        headers: list[str] = []
        if self.load in (Load.CLOSE, Load.STORM):
            headers = ["Connection: close"]
        elif self.load is Load.REVALIDATE:
            headers = validators
        script, script_args = None, ()
        if self.load is Load.PIPELINE:
            script = PIPELINE_LUA
        elif self.load is Load.WORKING_SET:
            script, script_args = WORKING_SET_LUA, (*self.lua_args, WORKING_SET_SEED)
        return wrk_command(
            wrk,
            f"{server.url_base}{self.path}",
            connections=self.connections_in(quick),
            seconds=seconds,
            request_timeout_s=self.request_timeout_s,
            headers=headers,
            script=script,
            script_args=script_args,
        )


SCENARIOS = [
    Scenario("small-50", "1 KiB, keep-alive, 50 conns", "/index.html", 50, quick=False),
    Scenario("small-256", "1 KiB, keep-alive, 256 conns", "/index.html", 256),
    Scenario("16k", "16 KiB, keep-alive, 256 conns", "/16k.bin", 256),
    Scenario(
        "small-1000", "1 KiB, keep-alive, 1,000 conns", "/index.html", 1000, quick=False, groups=("connections",)
    ),
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
    # Latency at fixed offered rates: oha's maximum first, then 25-90 % of
    # the slowest contender's maximum.
    Scenario(RATE_MAX, "1 KiB, oha closed loop, 256 conns (the maximum)", "/index.html", 256, load=Load.FIXED_RATE,
             groups=("latency",)),
    *(
        Scenario(f"rate-{percent}", f"1 KiB at {percent} % of the slowest maximum, oha open loop, 256 conns",
                 "/index.html", 256, load=Load.FIXED_RATE, rate_fraction=percent / 100, groups=("latency",))
        for percent in (25, 50, 75, 90)
    ),
    # The working set: 100,000 files, and 500 / 1,000 around the 512-entry
    # cache mioserve had when these were chosen (it now holds 8,192 entries
    # of this size, so a step there would be a regression).
    *(
        Scenario(f"ws-{mode}-{label}", f"{files:,} files of 4 KiB, {title}, keep-alive, 256 conns", "/", 256,
                 load=Load.WORKING_SET, lua_args=(mode, str(files)), quick=files == 100_000,
                 groups=("working-set",), extra_contenders=NGINX_CACHE_VARIANTS)
        for mode, title in (("uniform", "uniform"), ("zipf", "Zipf(1.0)"))
        for files, label in ((500, "500"), (1_000, "1k"), (100_000, "100k"))
    ),
    # Active connections from 10 to 10,000 (small-1000 above is the 1,000 step).
    Scenario("conn-10", "1 KiB, keep-alive, 10 conns", "/index.html", 10, groups=("connections",)),
    Scenario("conn-100", "1 KiB, keep-alive, 100 conns", "/index.html", 100, quick=False, groups=("connections",)),
    Scenario("conn-10k", "1 KiB, keep-alive, 10,000 conns", "/index.html", 10_000, request_timeout_s=5,
             groups=("connections",)),
    Scenario("overload-close", "1 KiB, storm of new connections, 2,000 conns (peak: close)", "/index.html", 2_000,
             load=Load.STORM, peak="close", request_timeout_s=5, groups=("overload",)),
    Scenario("overload-keepalive", "1 KiB, keep-alive flood, 5,000 conns (peak: small-256)", "/index.html", 5_000,
             load=Load.FLOOD, peak="small-256", request_timeout_s=5, groups=("overload",)),
    Scenario("downloads", "500 concurrent downloads of 16 MiB (curl --parallel)", "/16m.bin", 500,
             load=Load.DOWNLOADS, unit=Unit.BYTES, request_timeout_s=120, quick_connections=100,
             groups=("downloads",)),
]  # fmt: skip


def scenario_by_key(key: str) -> Scenario:
    return next(s for s in SCENARIOS if s.key == key)


def select_scenarios(names: list[str], quick: bool) -> list[Scenario]:
    """The scenarios named by key or group (all of a group's, even in
    --quick), or with no names every scenario (in --quick, the quick ones),
    in suite order; a fixed-rate scenario brings RATE_MAX, which sets its
    rate."""
    if not names:
        return [s for s in SCENARIOS if s.quick or not quick]
    unknown = [n for n in names if not any(n == s.key or n in s.groups for s in SCENARIOS)]
    if unknown:
        raise ValueError(f"unknown scenario or group: {', '.join(unknown)}")
    chosen = {s.key for s in SCENARIOS if s.key in names or set(s.groups) & set(names)}
    if any(s.rate_fraction is not None for s in SCENARIOS if s.key in chosen):
        chosen.add(RATE_MAX)
    return [s for s in SCENARIOS if s.key in chosen]


GROUPS = sorted({group for s in SCENARIOS for group in s.groups})
