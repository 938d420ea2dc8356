"""tests/chaos/run.py's Summary: each violation counted once, however often it is judged."""

from __future__ import annotations

from tests.chaos.run import Summary

GONE = "pod ns/iota-dac-0 (uid d8465a5a) deleted while blind (kafka partition, +5.3..+5.9s)"


def test_a_violation_judged_again_with_another_daemon_state_counts_once() -> None:
    summary = Summary()
    first = summary.add("kafka_slow", [f"{GONE} (daemon sources {{}}, last pass {{'at': 1}})"])
    again = summary.add(
        "sigkill_mid_apply", [f"{GONE} (daemon sources {{}}, last pass {{'at': 2}})"]
    )
    assert len(first) == 1 and again == []
    assert len(summary.violations) == 1 and summary.violations[0].startswith("kafka_slow: ")


def test_different_violations_are_each_counted() -> None:
    summary = Summary()
    summary.add("a", [GONE])
    summary.add("b", [GONE.replace("iota-dac-0", "iota-dac-1")])
    assert len(summary.violations) == 2
