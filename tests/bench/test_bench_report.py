"""The bench's pure helpers: percentiles, the summary line, the metrics window and the count of
ZooKeeper writes from node stats (bench/report.py, bench/daemon.py, bench/zkview.py)."""

from __future__ import annotations

import math

import pytest

from bench.daemon import mean_pass_ms, parse_metrics
from bench.report import KEYS, Row, markdown, percentile, plain, summary, table
from bench.zkview import NodeStamp, writes_between


def test_percentile_interpolates_between_ranks() -> None:
    xs = [float(x) for x in range(1, 101)]  # 1..100
    assert percentile(xs, 50) == pytest.approx(50.5)
    assert percentile(xs, 99) == pytest.approx(99.01)
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_plain_numbers() -> None:
    assert plain(0.0, 2) == "0"
    assert plain(0.25, 2) == "0.25"
    assert plain(123.44, 1) == "123.4"
    assert plain(231.0, 1) == "231.0"
    assert plain(12345.6, 0) == "12346"  # no thousands separator
    assert plain(None, 1) == "nan"
    assert plain(math.nan, 1) == "nan"


def test_summary_has_every_key_in_order() -> None:
    rows = [
        Row("a", 123.44, 999.0, key="converged_ms"),
        Row("b", 0.0, 72.0, key="converged_writes", decimals=2),
        Row("c", 5000.4, None, key="single_ids_per_s", decimals=0),
        Row("d", 1.0, 2.0),  # not a summary figure
    ]
    line = summary(rows)
    assert [part.split("=")[0] for part in line.split()] == list(KEYS)
    assert line.startswith("converged_ms=123.4 converged_writes=0 event_p50_ms=nan")
    assert "single_ids_per_s=5000 " in line


def test_table_and_markdown_show_ours_beside_the_baseline() -> None:
    rows = [Row("converged pass, ms", 1234.5, 1700.25, "<= 150", "full read")]
    text = table(rows)
    assert "1,234.5" in text and "1,700.2" in text and "<= 150" in text
    md = markdown(rows).splitlines()
    assert md[0].startswith("| measure | ours | baseline |")
    assert md[2] == "| converged pass, ms | 1,234.5 | 1,700.2 | <= 150 | full read |"


METRICS = """\
# TYPE reconciler_reconciles_total counter
reconciler_reconciles_total{trigger="tick"} %(ticks)s
reconciler_reconciles_total{trigger="pod"} 2.0
# TYPE reconciler_reconcile_duration_seconds histogram
reconciler_reconcile_duration_seconds_bucket{le="+Inf"} %(count)s
reconciler_reconcile_duration_seconds_count %(count)s
reconciler_reconcile_duration_seconds_sum %(sum)s
# TYPE reconciler_operations_total counter
reconciler_operations_total{op="WriteInstance",resource="Thing",result="ok"} 4.0
reconciler_operations_total{op="CreatePod",resource="Thing",result="ok"} 3.0
"""


def test_metrics_window_and_idle() -> None:
    before = parse_metrics(METRICS % {"ticks": 5.0, "count": 7.0, "sum": 3.5}, 0.0)
    after = parse_metrics(METRICS % {"ticks": 10.0, "count": 12.0, "sum": 4.5}, 1.0)
    assert before.idle and after.idle
    assert mean_pass_ms(before, after) == pytest.approx(200.0)
    assert after.ticks() == 10.0
    assert after.operations() == 7.0
    assert after.total("reconciler_operations_total", op="WriteInstance") == 4.0
    running = parse_metrics(METRICS % {"ticks": 11.0, "count": 12.0, "sum": 4.5}, 2.0)
    assert not running.idle  # a tick counted, its pass not observed yet
    with pytest.raises(ValueError):
        mean_pass_ms(after, after)


def test_writes_between_counts_versions_creates_and_deletes() -> None:
    before = {
        "/a": NodeStamp(1, 1, 0),
        "/b": NodeStamp(2, 5, 3),
        "/gone": NodeStamp(3, 3, 0),
        "/again": NodeStamp(4, 4, 0),
    }
    after = {
        "/a": NodeStamp(1, 1, 0),  # untouched
        "/b": NodeStamp(2, 9, 5),  # written twice
        "/new": NodeStamp(10, 11, 1),  # created, then written once
        "/again": NodeStamp(12, 12, 0),  # deleted and created again
    }
    assert writes_between(before, before) == 0
    assert writes_between(before, after) == 2 + 2 + 1 + 2


def test_a_crash_is_no_pass_in_flight() -> None:
    text = METRICS % {"ticks": 5.0, "count": 7.0, "sum": 3.5}
    text += 'reconciler_reconciles_total{trigger="crashed"} 1.0\n'
    assert parse_metrics(text, 0.0).idle


def test_summary_ends_with_the_churn_and_failover_fields_in_order() -> None:
    rows = [
        Row("a", 123.44, None, key="converged_ms"),
        Row("p50", 7.25, None, key="churn_1m_p50_ms"),
        Row("p99", 41.0, None, key="churn_1m_p99_ms"),
        Row("cpu", 33.333, None, key="churn_1m_cpu_pct"),
        Row("kill", 11.456, None, key="failover_1m_s", decimals=2),
        Row("term", 0.25, None, key="handoff_1m_s", decimals=2),
        Row("rss", 201.04, None, key="standby_rss_1m_mb"),
    ]
    parts = summary(rows).split()
    assert [p.split("=")[0] for p in parts[:8]] == [
        "converged_ms",
        "converged_writes",
        "event_p50_ms",
        "event_p99_ms",
        "single_ids_per_s",
        "rss_1m_mb",
        "first_pass_1m_s",
        "converged_1m_ms",
    ]
    assert parts[8:] == [
        "churn_1m_p50_ms=7.2",
        "churn_1m_p99_ms=41.0",
        "churn_1m_cpu_pct=33.3",
        "failover_1m_s=11.46",
        "handoff_1m_s=0.25",
        "standby_rss_1m_mb=201.0",
    ]
