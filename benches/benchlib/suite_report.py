"""The suite's results: one `Run` per measurement, summary rows per figure
and contender, the markdown tables, the targets, and the files
``bench-results.csv``, ``bench-results.json`` and ``bench-chart.svg``."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

from benchlib.idle import IdleMemory
from benchlib.scenarios import SCENARIOS, Unit
from benchlib.tables import NAN, format_value, markdown_header, markdown_row, median_or_nan, present, ratio
from benchlib.wrk import WrkResult


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
    wrk: WrkResult
    idle: IdleMemory | None
    problem: str

    @property
    def valid(self) -> bool:
        return self.wrk.valid and not self.problem


def _summary_row(metric: str, title: str, unit: str, lower_is_better: bool, contender: str,
                 values: list[float], cores: tuple[float, float, float] = (NAN, NAN, NAN)) -> dict:  # fmt: skip
    values = present(values)
    return {
        "metric": metric, "title": title, "unit": unit, "lower_is_better": lower_is_better,
        "contender": contender, "runs": len(values), "median": median_or_nan(values),
        "min": min(values) if values else NAN, "max": max(values) if values else NAN,
        "server_cores": cores[0], "wrk_cores": cores[1], "other_cores": cores[2],
    }  # fmt: skip


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
                    median_or_nan([getattr(r.wrk.cpu, who) for r in runs]) for who in ("server", "wrk", "other")
                )
                values = [r.value for r in runs]
                rows.append(_summary_row(scenario.key, scenario.title, scenario.unit.value, False, name, values, cores))
    for name in contenders:
        if runs := runs_of("small-256", name):
            rows.append(_summary_row("p50-256", "p50 latency, 1 KiB at 256 conns", "ms", True, name,
                                     [r.wrk.latency_p50_ms for r in runs]))  # fmt: skip
            rows.append(_summary_row("p99-256", "p99 latency, 1 KiB at 256 conns", "ms", True, name,
                                     [r.wrk.latency_p99_ms for r in runs]))  # fmt: skip
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
        ["scenario", "contender", "runs", "median", "min–max", "vs nginx", "vs lighttpd", "server / wrk / other cores"],
        "llrrrrrl",
    )
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
                        cores,
                    ]
                )
            )
    return "\n".join(lines)


@dataclass(frozen=True)
class Target:
    metric: str
    # None: an absolute threshold; "nginx" or "lighttpd": a ratio to its median.
    against: str | None
    at_least: bool  # True: value >= threshold; False: value <= threshold
    threshold: float
    description: str

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
]


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
            if target.against:
                baseline = by_key.get((target.metric, lighttpd_name if target.against == "lighttpd" else "nginx"))
                value = row["median"] / baseline["median"] if baseline and baseline["median"] else NAN
                shown = f"{value:.2f}×"
            else:
                value = row["median"]
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
    "transfer_bytes_per_s", "p50_ms", "p99_ms", "requests", "bytes_per_response", "errors",
    "non_2xx_3xx", "server_cores", "wrk_cores", "other_cores", "rss_before", "rss_idle",
    "rss_per_idle_conn", "idle_alive_after", "problem",
]  # fmt: skip


def write_csv(path: Path, runs: list[Run]) -> None:
    """Every attempt, kept or repeated, one row each."""
    units = {s.key: s.unit.value for s in SCENARIOS}
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for r in runs:
            idle = r.idle
            writer.writerow([
                r.scenario, r.contender, r.round, r.attempt, int(r.kept), f"{r.value:.0f}", units[r.scenario],
                f"{r.wrk.req_per_s:.0f}", f"{r.wrk.transfer_per_s:.0f}", r.wrk.latency_p50_ms,
                r.wrk.latency_p99_ms, r.wrk.requests, f"{r.wrk.bytes_per_response:.0f}", r.wrk.errors,
                r.wrk.non_2xx_3xx, f"{r.wrk.cpu.server:.3f}", f"{r.wrk.cpu.wrk:.3f}", f"{r.wrk.cpu.other:.3f}",
                idle.rss_before if idle else "", idle.rss_idle if idle else "",
                idle.rss_per_idle_conn if idle else "", idle.alive_after if idle else "", r.problem,
            ])  # fmt: skip


def write_json(path: Path, header: str, lighttpd_choice: str, rows: list[dict], verdicts: list[dict],
               syscalls: dict[str, dict], notes: list[str]) -> None:  # fmt: skip
    document = {
        "header": header, "lighttpd_choice": lighttpd_choice, "summary": rows, "targets": verdicts,
        "syscalls": syscalls, "notes": notes,
    }  # fmt: skip
    path.write_text(json.dumps(document, indent=1, default=str) + "\n")


BAR_COLOURS = ["#d95f02", "#e6ab02", "#1b9e77", "#7570b3", "#66a61e"]


def write_chart(rows: list[dict], contenders: list[str], path: Path) -> None:
    """Grouped bars: req/s per scenario (bytes/s scenarios in GB/s, own scale)."""
    scenarios = [s for s in SCENARIOS if any(r["metric"] == s.key for r in rows)]
    by_key = {(r["metric"], r["contender"]): r for r in rows}
    group_width, bar_width, left, top, plot_height = 120, 22, 70, 50, 260
    plot_right = left + group_width * len(scenarios)
    width = plot_right + 180
    height = top + plot_height + 80
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="20" font-size="14" font-weight="bold">mioserve vs nginx vs lighttpd: median per scenario (higher is better)</text>',
        f'<text x="{left}" y="36" fill="#555">bars scaled per scenario to the best contender; labels: req/s, or GB/s for 1 MiB / 64 MiB</text>',
        f'<line x1="{left}" y1="{top + plot_height}" x2="{plot_right}" y2="{top + plot_height}" stroke="black"/>',
    ]  # fmt: skip
    for i, scenario in enumerate(scenarios):
        medians = [by_key.get((scenario.key, c), {}).get("median", NAN) for c in contenders]
        best = max(present(medians) or [1])
        group_left = left + i * group_width + (group_width - bar_width * len(contenders)) / 2
        for j, median in enumerate(medians):
            if math.isnan(median):
                continue
            bar_height = plot_height * median / best
            x = group_left + j * bar_width
            y = top + plot_height - bar_height
            label = f"{median / 1e9:.1f}G" if scenario.unit is Unit.BYTES else f"{median / 1000:.0f}k"
            svg.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_width - 3}" height="{bar_height:.1f}" fill="{BAR_COLOURS[j % 5]}"/>'
            )
            svg.append(
                f'<text x="{x + (bar_width - 3) / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle" font-size="9">{label}</text>'
            )
        svg.append(
            f'<text x="{left + i * group_width + group_width / 2:.1f}" y="{top + plot_height + 15}" text-anchor="middle">{scenario.key}</text>'
        )
    for j, contender in enumerate(contenders):
        y = top + 10 + j * 18
        svg.append(f'<rect x="{plot_right + 20}" y="{y}" width="12" height="12" fill="{BAR_COLOURS[j % 5]}"/>')
        svg.append(f'<text x="{plot_right + 38}" y="{y + 10}">{contender}</text>')
    svg.append("</svg>")
    path.write_text("\n".join(svg) + "\n")
