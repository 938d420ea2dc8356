"""growth.fill with a slack of 1 levels loads at once, exactly as one id at a time would."""

from __future__ import annotations

import heapq

from hypothesis import given
from hypothesis import strategies as st

from reconciler.rules.growth import fill


def one_at_a_time(loads: dict[int, int], quota: dict[int, int], pool: int) -> dict[int, int]:
    """The heap fill of a slack of 1, id by id: the loads it ends with."""
    loads = dict(loads)
    heap = [(load, i) for i, load in loads.items() if load < quota[i]]
    heapq.heapify(heap)
    for _ in range(pool):
        if not heap:
            break
        load, i = heapq.heappop(heap)
        loads[i] = load + 1
        if load + 1 < quota[i]:
            heapq.heappush(heap, (load + 1, i))
    return loads


@given(
    st.lists(st.tuples(st.integers(0, 30), st.integers(1, 40)), min_size=1, max_size=12),
    st.integers(0, 400),
)
def test_levelling_reaches_the_loads_of_one_id_at_a_time(
    instances: list[tuple[int, int]], pool_size: int
) -> None:
    quota = {i: q for i, (_, q) in enumerate(instances)}
    loads = {i: min(load, quota[i]) for i, (load, _) in enumerate(instances)}
    held: dict[int, set[str]] = {i: {f"{i}-{k}" for k in range(n)} for i, n in loads.items()}
    pool = [f"p{k:04d}" for k in range(pool_size)]
    fill(held, quota, pool, slack=1)  # type: ignore[arg-type]
    assert {i: len(ids) for i, ids in held.items()} == one_at_a_time(loads, quota, pool_size)
    placed = [x for ids in held.values() for x in ids if x.startswith("p")]
    assert len(placed) == len(set(placed)) == min(pool_size, len(placed))  # each id once
