"""The bench's table (ours beside the baseline, the issue's goal), its markdown form and the
one summary line printed last."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

# The summary line's keys, in order (issue 15, then issue 28's).
KEYS = (
    "converged_ms",
    "converged_writes",
    "event_p50_ms",
    "event_p99_ms",
    "single_ids_per_s",
    "rss_1m_mb",
    "first_pass_1m_s",
    "converged_1m_ms",
    "churn_1m_p50_ms",
    "churn_1m_p99_ms",
    "churn_1m_cpu_pct",
    "failover_1m_s",
    "handoff_1m_s",
    "standby_rss_1m_mb",
)
# Decimals of each key in the line (and of its row in the table).
DECIMALS = {
    "converged_ms": 1,
    "converged_writes": 2,
    "event_p50_ms": 1,
    "event_p99_ms": 1,
    "single_ids_per_s": 0,
    "rss_1m_mb": 1,
    "first_pass_1m_s": 2,
    "converged_1m_ms": 1,
    "churn_1m_p50_ms": 1,
    "churn_1m_p99_ms": 1,
    "churn_1m_cpu_pct": 1,
    "failover_1m_s": 2,
    "handoff_1m_s": 2,
    "standby_rss_1m_mb": 1,
}


def percentile(xs: list[float], p: float) -> float:
    """The p-th percentile, linear between the closest ranks (numpy's default)."""
    if not xs:
        return math.nan
    s = sorted(xs)
    k = (len(s) - 1) * p / 100
    lo = math.floor(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def plain(x: float | None, decimals: int) -> str:
    """A number as the summary line wants it: no thousands separator, no exponent, trailing
    zeros of a whole number dropped (converged_writes=0); `nan` for a figure not measured."""
    if x is None or math.isnan(x):
        return "nan"
    text = f"{x:.{decimals}f}"
    if "." in text and float(text) == int(float(text)) and decimals > 1:
        return str(int(float(text)))
    return text


@dataclass(frozen=True)
class Row:
    measure: str
    ours: float | None
    base: float | None
    goal: str = ""
    base_is: str = ""
    key: str | None = None  # the summary line's key, if the row is one of its figures
    decimals: int = 1

    def cells(self) -> tuple[str, str, str, str, str]:
        def fmt(x: float | None) -> str:
            if x is None or math.isnan(x):
                return "-"
            return f"{x:,.{self.decimals}f}"

        return (self.measure, fmt(self.ours), fmt(self.base), self.goal, self.base_is)


HEADER = ("measure", "ours", "baseline", "goal (default sizes)", "baseline is")


def table(rows: list[Row]) -> str:
    cells = [HEADER, *(r.cells() for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    lines = []
    for c in cells:
        left = c[0].ljust(widths[0])
        nums = [c[i].rjust(widths[i]) for i in (1, 2)]
        rest = [c[i].ljust(widths[i]) for i in (3, 4)]
        lines.append("  ".join([left, *nums, *rest]).rstrip())
    return "\n".join(lines)


def markdown(rows: list[Row]) -> str:
    out = ["| " + " | ".join(HEADER) + " |", "|---|---:|---:|---|---|"]
    out += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(out)


def summary(rows: list[Row]) -> str:
    """`converged_ms=<x> converged_writes=<n> ...`: ours, every key, in the issue's order."""
    ours = {r.key: r.ours for r in rows if r.key}
    return " ".join(f"{k}={plain(ours.get(k), DECIMALS[k])}" for k in KEYS)


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else math.nan
