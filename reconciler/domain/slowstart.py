"""Slow-start batches, as the Kubernetes ReplicaSet controller creates pods.

Run many similar writes in batches of 1, 2, 4, 8, ... and stop after the first batch in
which anything failed: a healthy API gets the whole burst in a handful of round trips, a
failing one (quota, admission webhook down, apiserver overloaded) gets one call instead of
500. The skipped calls are simply planned again on a later tick.

Pure (no client import), so it is unit tested without a server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass
class SlowStartResult(Generic[T]):
    """Outcome per call, by index into the sequence given to `slow_start`."""

    succeeded: list[tuple[int, T]] = field(default_factory=list)  # (index, return value)
    failed: list[tuple[int, Exception]] = field(default_factory=list)  # (index, exception)
    skipped: list[int] = field(default_factory=list)  # never called: a batch before failed

    def __iter__(self) -> Iterator[Any]:  # lets callers unpack (succeeded, failed, skipped)
        return iter((self.succeeded, self.failed, self.skipped))


def batch_sizes(total: int, first_batch: int = 1) -> list[int]:
    """Sizes of the successive batches for `total` calls: 1, 2, 4, ... (the last one cut)."""
    if first_batch < 1:
        raise ValueError(f"first_batch must be >= 1, got {first_batch}")
    sizes: list[int] = []
    size, left = first_batch, total
    while left > 0:
        sizes.append(min(size, left))
        left -= sizes[-1]
        size *= 2
    return sizes


def slow_start(
    calls: Sequence[Callable[[], T]],
    first_batch: int = 1,
    *,
    max_workers: int = 1,
) -> SlowStartResult[T]:
    """Run `calls` in doubling batches; stop after the first batch with a failure.

    Every call of a batch runs even when one of them fails (they are already in flight in
    the ReplicaSet controller too); only later batches are skipped. With `max_workers` > 1
    the calls of a batch run concurrently, which is what makes slow start fast on a healthy
    API. A call "fails" by raising an Exception: wrap calls whose expected outcomes (e.g. a
    pod still terminating) should not stop the ramp so that they return instead.
    """
    result: SlowStartResult[T] = SlowStartResult()
    start = 0
    pool = ThreadPoolExecutor(max_workers=max_workers) if max_workers > 1 else None
    try:
        for size in batch_sizes(len(calls), first_batch):
            batch = range(start, start + size)
            start += size
            outcomes = _run_batch(calls, batch, pool)
            for i, ok, value in outcomes:
                if ok:
                    result.succeeded.append((i, value))  # type: ignore[arg-type]
                else:
                    result.failed.append((i, value))  # type: ignore[arg-type]
            if any(not ok for _, ok, _ in outcomes):
                result.skipped.extend(range(start, len(calls)))
                break
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    return result


def _run_batch(
    calls: Sequence[Callable[[], T]], batch: range, pool: ThreadPoolExecutor | None
) -> list[tuple[int, bool, object]]:
    def run(i: int) -> tuple[int, bool, object]:
        try:
            return i, True, calls[i]()
        except Exception as e:  # a failed call is data here; the caller reports it
            return i, False, e

    if pool is None or len(batch) == 1:
        return [run(i) for i in batch]
    return list(pool.map(run, batch))
