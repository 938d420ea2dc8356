"""What the loop counts as a burst of row events (gathered before the next pass) and what
as a steady stream (each pass takes what arrived meanwhile, never held back)."""

from __future__ import annotations

from reconciler.runtime.wake import BURST_RATE, in_burst


def test_a_steady_stream_of_churn_is_not_a_burst() -> None:
    # 500 messages a second, two of them during a 4 ms pass
    assert not in_burst(2, 0.004)


def test_singles_published_back_to_back_are_a_burst() -> None:
    assert in_burst(60, 0.005)  # 12,000 a second


def test_no_event_during_the_pass_is_no_burst() -> None:
    assert not in_burst(0, 0.0)


def test_the_rate_decides_not_the_count() -> None:
    assert in_burst(int(BURST_RATE), 1.0)
    assert not in_burst(int(BURST_RATE) - 1, 1.0)
