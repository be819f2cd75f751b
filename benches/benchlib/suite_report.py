"""The suite's results: one `Run` per measurement, summary rows per figure
and contender, the markdown tables, the targets, and the files
``bench-results.csv``, ``bench-results.json``, ``bench-chart.svg`` (req/s),
``bench-chart-cpu.svg`` (server CPU per request) and
``bench-chart-latency.svg`` (latency against offered load)."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from benchlib.idle import IdleMemory
from benchlib.load import LoadResult
from benchlib.scenarios import SCENARIOS, Load, Unit, scenario_by_key
from benchlib.tables import NAN, format_value, markdown_header, markdown_row, median_or_nan, present, ratio


@dataclass
class Run:
    """One attempt of one scenario on one contender."""

    scenario: str
    contender: str
    round: int
    attempt: int
    # False for an attempt repeated because other processes disturbed it.
    kept: bool
    value: float  # the scenario's figure (req/s or bytes/s); NaN: nothing measured
    load: LoadResult
    idle: IdleMemory | None
    problem: str
    # The scenario's own figures by name (see FIGURES): latency percentiles,
    # goodput, fairness...
    figures: dict[str, float] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        # Overload floods are expected to time out and be refused; what
        # counts there is goodput, the prober and the checks (the problem).
        if scenario_by_key(self.scenario).load in (Load.STORM, Load.FLOOD):
            return self.load.requests > 0 and not self.problem
        return self.load.valid and not self.problem


# Run.figures by name: title, unit, lower is better. Each becomes a summary
# row "SCENARIO:NAME" per contender.
FIGURES = {
    "p50_ms": ("p50 latency", "ms", True),
    "p99_ms": ("p99 latency", "ms", True),
    "p999_ms": ("p99.9 latency", "ms", True),
    "max_ms": ("max latency", "ms", True),
    "offered_req_per_s": ("offered rate", "req/s", False),
    "peak_req_per_s": ("peak before the flood", "req/s", False),
    "goodput_ratio": ("goodput / peak", "ratio", False),
    "probe_p99_ms": ("prober p99 latency", "ms", True),
    "probe_max_ms": ("prober max latency", "ms", True),
    "probe_failures": ("prober failed requests", "count", True),
    "flood_errors": ("flood socket errors (wrk)", "count", True),
    "idle_cores_after": ("server cores with no load after the flood", "cores", True),
    "cpu_s_per_gb": ("server CPU per GB sent", "s", True),
    "jain": ("Jain's fairness index of download rates", "ratio", False),
}


def _summary_row(metric: str, title: str, unit: str, lower_is_better: bool, contender: str,
                 values: list[float], cores: tuple[float, float, float] = (NAN, NAN, NAN),
                 cpu_us: list[float] | None = None) -> dict:  # fmt: skip
    values = present(values)
    cpu_us = present(cpu_us or [])
    return {
        "metric": metric, "title": title, "unit": unit, "lower_is_better": lower_is_better,
        "contender": contender, "runs": len(values), "median": median_or_nan(values),
        "min": min(values) if values else NAN, "max": max(values) if values else NAN,
        "server_cores": cores[0], "wrk_cores": cores[1], "other_cores": cores[2],
        "cpu_us_per_request": median_or_nan(cpu_us),
        "cpu_us_min": min(cpu_us) if cpu_us else NAN, "cpu_us_max": max(cpu_us) if cpu_us else NAN,
    }  # fmt: skip


def _figure_rows(kept: list[Run], contenders: list[str]) -> list[dict]:
    """A row "SCENARIO:FIGURE" per contender for each of Run.figures."""
    rows = []
    for scenario in SCENARIOS:
        for figure, (title, unit, lower_is_better) in FIGURES.items():
            for name in contenders:
                values = [r.figures[figure] for r in kept
                          if r.scenario == scenario.key and r.contender == name and figure in r.figures]  # fmt: skip
                if values:
                    rows.append(_summary_row(f"{scenario.key}:{figure}", f"{title}, {scenario.key}", unit,
                                             lower_is_better, name, values))  # fmt: skip
    return rows


def summary_rows(kept: list[Run], contenders: list[str], syscalls: dict[str, dict]) -> list[dict]:
    """One row per (metric, contender): median, min, max, unit, lower_is_better."""
    rows = []

    def runs_of(scenario: str, contender: str) -> list[Run]:
        return [r for r in kept if r.scenario == scenario and r.contender == contender]

    for scenario in SCENARIOS:
        for name in contenders:
            runs = runs_of(scenario.key, name)
            if runs:
                cores = tuple(
                    median_or_nan([getattr(r.load.cpu, who) for r in runs]) for who in ("server", "wrk", "other")
                )
                values = [r.value for r in runs]
                cpu_us = [r.load.server_us_per_request for r in runs]
                rows.append(_summary_row(scenario.key, scenario.title, scenario.unit.value, False, name, values, cores,
                                         cpu_us))  # fmt: skip
    rows += _figure_rows(kept, contenders)
    for name in contenders:
        if runs := runs_of("small-256", name):
            rows.append(_summary_row("p50-256", "p50 latency, 1 KiB at 256 conns", "ms", True, name,
                                     [r.load.latency_p50_ms for r in runs]))  # fmt: skip
            rows.append(_summary_row("p99-256", "p99 latency, 1 KiB at 256 conns", "ms", True, name,
                                     [r.load.latency_p99_ms for r in runs]))  # fmt: skip
    for name in contenders:
        if runs := runs_of("idle10k", name):
            rows.append(_summary_row("rss-idle", "RSS per idle keep-alive connection", "B", True, name,
                                     [r.idle.rss_per_idle_conn if r.idle else NAN for r in runs]))  # fmt: skip
    for name in contenders:
        if name in syscalls:
            rows.append(_summary_row("syscalls", "syscalls per keep-alive request (strace -c, ab -k -c50)", "calls",
                                     True, name, [syscalls[name]["per_request"]]))  # fmt: skip
    return rows


def results_table(rows: list[dict], contenders: list[str], lighttpd_name: str) -> str:
    lines = markdown_header(
        ["scenario", "contender", "runs", "median", "min–max", "vs nginx", "vs lighttpd", "server µs/req",
         "µs/req vs nginx", "server / load gen. / other cores"],
        "llrrrrrrrl",
    )  # fmt: skip
    by_key = {(r["metric"], r["contender"]): r for r in rows}
    for metric in dict.fromkeys(r["metric"] for r in rows):
        for name in contenders:
            row = by_key.get((metric, name))
            if not row:
                continue
            unit = row["unit"]
            nginx_median = by_key.get((metric, "nginx"), {}).get("median", NAN)
            lighttpd_median = by_key.get((metric, lighttpd_name), {}).get("median", NAN)
            better = "lower" if row["lower_is_better"] else "higher"
            title = f"{row['title']} ({unit}, {better} is better)"
            cores = (
                ""
                if math.isnan(row["server_cores"])
                else f"{row['server_cores']:.2f} / {row['wrk_cores']:.2f} / {row['other_cores']:.2f}"
            )
            is_mioserve = name.startswith("mioserve")
            cpu_us = row.get("cpu_us_per_request", NAN)
            nginx_cpu_us = by_key.get((metric, "nginx"), {}).get("cpu_us_per_request", NAN)
            lines.append(
                markdown_row(
                    [
                        title if name == contenders[0] else "",
                        name,
                        row["runs"],
                        format_value(row["median"], unit),
                        f"{format_value(row['min'], unit)}–{format_value(row['max'], unit)}",
                        ratio(row["median"], nginx_median) if is_mioserve else "",
                        ratio(row["median"], lighttpd_median) if is_mioserve else "",
                        "" if math.isnan(cpu_us) else f"{cpu_us:.2f}",
                        ratio(cpu_us, nginx_cpu_us) if is_mioserve and not math.isnan(cpu_us) else "",
                        cores,
                    ]
                )
            )
    return "\n".join(lines)


@dataclass(frozen=True)
class Target:
    metric: str
    # None: an absolute threshold; a contender ("lighttpd": whichever
    # lighttpd ran) or "self": a ratio to its median.
    against: str | None
    at_least: bool  # True: value >= threshold; False: value <= threshold
    threshold: float
    description: str
    # Which figure of the rows: "median" or "cpu_us_per_request".
    figure: str = "median"
    # The row the ratio is taken against, if not `metric` itself.
    baseline_metric: str | None = None

    def is_met(self, value: float) -> bool:
        if math.isnan(value):
            return False
        return value >= self.threshold if self.at_least else value <= self.threshold


TARGETS = [
    Target("small-256", "nginx", True, 1.4, "1 KiB at 256 conns ≥ 1.4× nginx"),
    Target("small-256", "lighttpd", True, 1.05, "1 KiB at 256 conns ≥ 1.05× lighttpd"),
    Target("pipeline16", "nginx", True, 5.0, "16-deep pipelining ≥ 5× nginx"),
    Target("304", "nginx", True, 1.3, "304 ≥ 1.3× nginx"),
    Target("304", "lighttpd", True, 1.0, "304 ≥ lighttpd"),
    Target("close", "nginx", True, 1.05, "new connection per request ≥ 1.05× nginx"),
    Target("1m", "nginx", True, 1.0, "1 MiB ≥ 1.0× nginx (bytes/s)"),
    Target("64m", "nginx", True, 1.0, "64 MiB ≥ 1.0× nginx (bytes/s)"),
    Target("p99-256", "nginx", False, 1.0, "p99 at 256 conns ≤ nginx"),
    Target("rss-idle", None, False, 468, "RSS per idle connection ≤ 468 B"),
    Target("syscalls", None, False, 2.2, "syscalls per keep-alive request ≤ 2.2"),
    # Issue 16.
    *(
        Target(key, "nginx", False, 0.65, f"server CPU per request, {key} ≤ 0.65× nginx", "cpu_us_per_request")
        for key in ("small-256", "16k", "304", "pipeline16")
    ),
    Target("close", "nginx", False, 0.8, "server CPU per request, close ≤ 0.8× nginx", "cpu_us_per_request"),
    Target("rate-75:p999_ms", "nginx", False, 0.5, "p99.9 at 75 % load ≤ 0.5× nginx"),
    Target("rate-90:p99_ms", "nginx", False, 1.0, "p99 at 90 % load ≤ nginx's p99 at 50 %",
           baseline_metric="rate-50:p99_ms"),
    *(
        target
        for mode in ("uniform", "zipf")
        for target in (
            Target(f"ws-{mode}-100k", "nginx-no-ofc", True, 1.3, f"100k files, {mode} ≥ 1.3× nginx without open_file_cache"),
            Target(f"ws-{mode}-100k", "nginx-ofc10k", True, 1.0, f"100k files, {mode} ≥ nginx with open_file_cache max=10000"),
            Target(f"ws-{mode}-1k", "self", True, 0.9, f"{mode}: 1,000 files ≥ 0.9× 500 files (no step at a cache's size)",
                   baseline_metric=f"ws-{mode}-500"),
        )
    ),
    Target("conn-10k", "nginx", True, 1.3, "10,000 active conns ≥ 1.3× nginx"),
    Target("conn-10k:p99_ms", "nginx", False, 1.0, "p99 at 10,000 active conns ≤ nginx"),
    *(
        target
        for key in ("overload-close", "overload-keepalive")
        for target in (
            Target(f"{key}:goodput_ratio", None, True, 0.9, f"{key}: goodput ≥ 90 % of peak"),
            Target(f"{key}:probe_max_ms", None, False, 1000, f"{key}: prober max latency ≤ 1 s"),
        )
    ),
    Target("downloads", "nginx", True, 1.0, "500 × 16 MiB ≥ nginx (bytes/s)"),
    Target("downloads:cpu_s_per_gb", "nginx", False, 0.8, "500 × 16 MiB: server CPU per GB ≤ 0.8× nginx"),
    Target("downloads:jain", None, True, 0.95, "500 × 16 MiB: Jain's fairness index ≥ 0.95"),
]  # fmt: skip


def targets_table(rows: list[dict], lighttpd_name: str) -> tuple[str, list[dict]]:
    """The targets as a markdown table (met if either mioserve contender meets
    it), and one verdict per target and mioserve contender for the JSON."""
    by_key = {(r["metric"], r["contender"]): r for r in rows}
    lines = markdown_header(["target", "mioserve-1", "mioserve-2", "met?"], "lrrl")
    verdicts = []
    for target in TARGETS:
        cells, met_by_any = [], False
        for name in ("mioserve-1", "mioserve-2"):
            row = by_key.get((target.metric, name))
            if not row:
                cells.append("n/a")
                continue
            figure = row[target.figure]
            if target.against:
                against = {"lighttpd": lighttpd_name, "self": name}.get(target.against, target.against)
                baseline = by_key.get((target.baseline_metric or target.metric, against))
                value = figure / baseline[target.figure] if baseline and baseline[target.figure] else NAN
                shown = f"{value:.2f}×"
            else:
                value = figure
                shown = format_value(value, row["unit"])
            met = target.is_met(value)
            met_by_any |= met
            cells.append(shown + (" ✓" if met else ""))
            verdicts.append({"target": target.description, "contender": name, "value": value, "met": met})
        verdict = "not run" if all(c == "n/a" for c in cells) else ("**met**" if met_by_any else "missed")
        lines.append(markdown_row([target.description, *cells, verdict]))
    return "\n".join(lines), verdicts


CSV_COLUMNS = [
    "scenario", "contender", "round", "attempt", "kept", "value", "unit", "req_per_s",
    "transfer_bytes_per_s", "p50_ms", "p99_ms", "p999_ms", "max_ms", "requests", "bytes_per_response",
    "errors", "non_2xx_3xx", "server_cores", "wrk_cores", "other_cores", "server_us_per_request",
    "rss_before", "rss_idle", "rss_per_idle_conn", "idle_alive_after", "figures", "problem",
]  # fmt: skip


def write_csv(path: Path, runs: list[Run]) -> None:
    """Every attempt, kept or repeated, one row each."""
    units = {s.key: s.unit.value for s in SCENARIOS}
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for r in runs:
            idle, load = r.idle, r.load
            writer.writerow([
                r.scenario, r.contender, r.round, r.attempt, int(r.kept), f"{r.value:.0f}", units[r.scenario],
                f"{load.req_per_s:.0f}", f"{load.transfer_per_s:.0f}", load.latency_p50_ms,
                load.latency_p99_ms, load.latency_p999_ms, load.latency_max_ms, load.requests,
                f"{load.bytes_per_response:.0f}", load.errors, load.non_2xx_3xx, f"{load.cpu.server:.3f}",
                f"{load.cpu.wrk:.3f}", f"{load.cpu.other:.3f}", f"{load.server_us_per_request:.3f}",
                idle.rss_before if idle else "", idle.rss_idle if idle else "",
                idle.rss_per_idle_conn if idle else "", idle.alive_after if idle else "",
                json.dumps(r.figures) if r.figures else "", r.problem,
            ])  # fmt: skip


def write_json(path: Path, header: str, lighttpd_choice: str, rows: list[dict], verdicts: list[dict],
               syscalls: dict[str, dict], notes: list[str]) -> None:  # fmt: skip
    document = {
        "header": header, "lighttpd_choice": lighttpd_choice, "summary": rows, "targets": verdicts,
        "syscalls": syscalls, "notes": notes,
    }  # fmt: skip
    path.write_text(json.dumps(document, indent=1, default=str) + "\n")


BAR_COLOURS = ["#d95f02", "#e6ab02", "#1b9e77", "#7570b3", "#66a61e", "#e7298a"]


def chart_paths(path: Path) -> list[Path]:
    """The req/s chart at `path`, then the CPU and latency charts beside it."""
    return [path, path.with_name(f"{path.stem}-cpu.svg"), path.with_name(f"{path.stem}-latency.svg")]


def write_charts(rows: list[dict], contenders: list[str], path: Path) -> None:
    """req/s per scenario, server CPU per request per scenario, and latency
    against offered load (if the fixed-rate scenarios ran)."""
    rate_path, cpu_path, latency_path = chart_paths(path)
    _bar_chart(rows, contenders, rate_path, "median",
               "mioserve vs nginx vs lighttpd: median per scenario (higher is better)",
               "bars scaled per scenario to the best contender; labels: req/s, or GB/s for bytes/s scenarios")  # fmt: skip
    _bar_chart(rows, contenders, cpu_path, "cpu_us_per_request",
               "server CPU time per request, µs (user + system, lower is better)",
               "bars scaled per scenario to the most expensive contender; from /proc/PID/stat around each run")  # fmt: skip
    if any(r["metric"].startswith("rate-") for r in rows):
        _latency_chart(rows, contenders, latency_path)


def _bar_label(scenario_unit: Unit, figure: str, value: float) -> str:
    if figure == "cpu_us_per_request":
        return f"{value:.1f}" if value < 100 else f"{value:,.0f}"
    return f"{value / 1e9:.1f}G" if scenario_unit is Unit.BYTES else f"{value / 1000:.0f}k"


def _bar_chart(rows: list[dict], contenders: list[str], path: Path, figure: str, title: str, subtitle: str) -> None:
    """Grouped bars of `figure` of each scenario's rows, one bar per contender."""
    scenarios = [s for s in SCENARIOS if any(r["metric"] == s.key for r in rows)]
    by_key = {(r["metric"], r["contender"]): r for r in rows}
    bar_width, left, top, plot_height = 22, 70, 50, 260
    group_width = max(120, bar_width * len(contenders) + 12)
    plot_right = left + group_width * len(scenarios)
    width = plot_right + 180
    height = top + plot_height + 80
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="20" font-size="14" font-weight="bold">{title}</text>',
        f'<text x="{left}" y="36" fill="#555">{subtitle}</text>',
        f'<line x1="{left}" y1="{top + plot_height}" x2="{plot_right}" y2="{top + plot_height}" stroke="black"/>',
    ]  # fmt: skip
    for i, scenario in enumerate(scenarios):
        values = [by_key.get((scenario.key, c), {}).get(figure, NAN) for c in contenders]
        best = max(present(values) or [1]) or 1
        group_left = left + i * group_width + (group_width - bar_width * len(contenders)) / 2
        for j, value in enumerate(values):
            if math.isnan(value):
                continue
            bar_height = plot_height * value / best
            x = group_left + j * bar_width
            y = top + plot_height - bar_height
            colour = BAR_COLOURS[j % len(BAR_COLOURS)]
            svg.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_width - 3}" height="{bar_height:.1f}" fill="{colour}"/>'
            )
            svg.append(
                f'<text x="{x + (bar_width - 3) / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle" font-size="9">{_bar_label(scenario.unit, figure, value)}</text>'
            )
        svg.append(
            f'<text x="{left + i * group_width + group_width / 2:.1f}" y="{top + plot_height + 15}" text-anchor="middle">{scenario.key}</text>'
        )
    _legend(svg, contenders, plot_right + 20, top + 10)
    svg.append("</svg>")
    path.write_text("\n".join(svg) + "\n")


def _legend(svg: list[str], contenders: list[str], x: float, y: float) -> None:
    for j, contender in enumerate(contenders):
        colour = BAR_COLOURS[j % len(BAR_COLOURS)]
        svg.append(f'<rect x="{x}" y="{y + j * 18}" width="12" height="12" fill="{colour}"/>')
        svg.append(f'<text x="{x + 18}" y="{y + j * 18 + 10}">{contender}</text>')


def _latency_chart(rows: list[dict], contenders: list[str], path: Path) -> None:
    """The classic latency-vs-load chart: p99 (solid) and p99.9 (dashed)
    against the offered rate as a share of the slowest maximum, log scale."""
    by_key = {(r["metric"], r["contender"]): r for r in rows}
    fractions = [(s.key, s.rate_fraction) for s in SCENARIOS if s.rate_fraction is not None]
    series = {
        (name, figure): [(f, by_key.get((f"{key}:{figure}", name), {}).get("median", NAN)) for key, f in fractions]
        for name in contenders
        for figure in ("p99_ms", "p999_ms")
    }
    values = [v for points in series.values() for _, v in points if not math.isnan(v) and v > 0]
    if not values:
        return
    low, high = 10 ** math.floor(math.log10(min(values))), 10 ** math.ceil(math.log10(max(values)))
    left, top, plot_width, plot_height = 70, 50, 520, 300
    width, height = left + plot_width + 200, top + plot_height + 60

    def x_of(fraction: float) -> float:
        return left + plot_width * fraction

    def y_of(ms: float) -> float:
        return top + plot_height * (1 - math.log10(ms / low) / math.log10(high / low))

    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="20" font-size="14" font-weight="bold">latency at fixed offered rates (oha, open loop, latency-corrected; lower is better)</text>',
        f'<text x="{left}" y="36" fill="#555">1 KiB keep-alive, 256 conns; x: offered rate / slowest contender\'s maximum; y: ms, log scale; solid p99, dashed p99.9</text>',
        f'<line x1="{left}" y1="{top + plot_height}" x2="{left + plot_width}" y2="{top + plot_height}" stroke="black"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_height}" stroke="black"/>',
    ]  # fmt: skip
    decade = low
    while decade <= high:
        y = y_of(decade)
        svg.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_width}" y2="{y:.1f}" stroke="#ddd"/>')
        svg.append(f'<text x="{left - 5}" y="{y + 4:.1f}" text-anchor="end">{decade:g} ms</text>')
        decade *= 10
    for _, fraction in fractions:
        svg.append(
            f'<text x="{x_of(fraction):.1f}" y="{top + plot_height + 15}" text-anchor="middle">{fraction:.0%}</text>'
        )
    for (name, figure), points in series.items():
        colour = BAR_COLOURS[contenders.index(name) % len(BAR_COLOURS)]
        dash = ' stroke-dasharray="5,3"' if figure == "p999_ms" else ""
        drawn = " ".join(f"{x_of(f):.1f},{y_of(v):.1f}" for f, v in points if not math.isnan(v) and v > 0)
        if drawn:
            svg.append(f'<polyline points="{drawn}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
    _legend(svg, contenders, left + plot_width + 20, top + 10)
    svg.append("</svg>")
    path.write_text("\n".join(svg) + "\n")
