from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from reconciler.domain.slowstart import batch_sizes, slow_start


def test_batch_sizes() -> None:
    assert batch_sizes(0) == []
    assert batch_sizes(1) == [1]
    assert batch_sizes(10) == [1, 2, 4, 3]
    assert batch_sizes(500) == [1, 2, 4, 8, 16, 32, 64, 128, 245]
    assert batch_sizes(7, first_batch=3) == [3, 4]
    with pytest.raises(ValueError):
        batch_sizes(3, first_batch=0)


def _failing() -> int:
    raise RuntimeError("apiserver says no")


def test_first_call_fails_makes_one_call() -> None:
    calls = 0

    def call() -> int:
        nonlocal calls
        calls += 1
        raise RuntimeError("quota exceeded")

    succeeded, failed, skipped = slow_start([call] * 500)
    assert calls == 1
    assert succeeded == []
    assert [i for i, _ in failed] == [0]
    assert isinstance(failed[0][1], RuntimeError)
    assert skipped == list(range(1, 500))


def test_all_succeed_in_order() -> None:
    result = slow_start([(lambda i=i: i * 10) for i in range(10)])
    assert result.succeeded == [(i, i * 10) for i in range(10)]
    assert result.failed == [] and result.skipped == []


def test_failure_in_third_batch_finishes_batch_then_stops() -> None:
    # batches: [0] [1,2] [3,4,5,6] [7..14]; index 4 fails -> 3..6 all run, 7.. skipped
    ran: list[int] = []

    def make(i: int) -> Callable[[], int]:
        def run() -> int:
            ran.append(i)
            if i == 4:
                raise RuntimeError("boom")
            return i

        return run

    result = slow_start([make(i) for i in range(15)])
    assert sorted(ran) == list(range(7))
    assert [i for i, _ in result.succeeded] == [0, 1, 2, 3, 5, 6]
    assert [i for i, _ in result.failed] == [4]
    assert result.skipped == list(range(7, 15))


def test_parallel_batches_run_concurrently() -> None:
    # A batch of 4 can only pass this barrier if its 4 calls run at the same time.
    barrier = threading.Barrier(4, timeout=5)

    def make(i: int) -> Callable[[], int]:
        def run() -> int:
            if 3 <= i <= 6:
                barrier.wait()
            return i

        return run

    result = slow_start([make(i) for i in range(7)], max_workers=4)
    assert sorted(i for i, _ in result.succeeded) == list(range(7))


def test_empty() -> None:
    assert tuple(slow_start([])) == ([], [], [])


def test_failing_helper_first_batch_two() -> None:
    result = slow_start([_failing, lambda: 1, lambda: 2, lambda: 3], first_batch=2)
    assert [i for i, _ in result.failed] == [0]
    assert result.succeeded == [(1, 1)]
    assert result.skipped == [2, 3]
