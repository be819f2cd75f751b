"""Numbers into report cells: medians that skip missing values, the formats
of each unit, ratios, and markdown table rows."""

from __future__ import annotations

import math
import statistics

NAN = float("nan")


def present(values: list[float]) -> list[float]:
    """`values` without the NaNs that stand for "not measured"."""
    return [v for v in values if not math.isnan(v)]


def median_or_nan(values: list[float]) -> float:
    values = present(values)
    return statistics.median(values) if values else NAN


# How each unit is shown; req/s and counts use the default.
_UNIT_FORMATS = {
    "bytes/s": lambda v: f"{v / 1e9:.2f} GB/s",
    "ms": lambda v: f"{v:.2f} ms",
    "µs": lambda v: f"{v:.2f} µs",
    "s": lambda v: f"{v:.3f} s",
    "B": lambda v: f"{v:,.0f} B",
    "calls": lambda v: f"{v:.2f}",
    "ratio": lambda v: f"{v:.3f}",
    "cores": lambda v: f"{v:.2f}",
}


def format_value(value: float, unit: str) -> str:
    """A figure in its unit's format: req/s, bytes/s (as GB/s), ms, µs, s, B,
    calls, ratio, cores or count."""
    if math.isnan(value):
        return "n/a"
    return _UNIT_FORMATS.get(unit, lambda v: f"{v:,.0f}")(value)


def format_median(values: list[float], spec: str) -> str:
    """The median of the measured values in format `spec`, or "n/a"."""
    median = median_or_nan(values)
    return "n/a" if math.isnan(median) else format(median, spec)


def ratio(numerator: float, denominator: float) -> str:
    if math.isnan(numerator) or math.isnan(denominator) or denominator <= 0:
        return "n/a"
    return f"{numerator / denominator:.2f}"


def markdown_row(cells: list[object]) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def markdown_header(titles: list[str], alignments: str) -> list[str]:
    """The header and rule lines; `alignments` has one letter per column,
    "l" (left) or "r" (right)."""
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in alignments) + "|"
    return [markdown_row(titles), rule]
