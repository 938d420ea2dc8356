"""The churn scenario's pure parts (bench/churn.py): the schedule it plays, how a latency is
read off the watcher's record, the placement check, the CPU read from /proc."""

from __future__ import annotations

import os
import time

import pytest

from bench.churn import cpu_seconds, latencies, placement, schedule
from bench.zkview import Presence


def test_schedule_deletes_only_rows_that_exist_and_never_grows_a_kind() -> None:
    initial = {"Thing": [f"t{i}" for i in range(2000)], "Rule": [f"r{i}" for i in range(2000)]}
    messages = schedule(initial, 4000, rate=500)
    alive = {k: set(v) for k, v in initial.items()}
    created_at: dict[str, int] = {}
    for k, (op, kind, rid) in enumerate(messages):
        if op == "c":
            assert rid not in alive[kind]
            alive[kind].add(rid)
            created_at[rid] = k
        else:
            assert rid in alive[kind], f"message {k} deletes {rid}, which does not exist"
            alive[kind].remove(rid)
            assert k - created_at.get(rid, -(10**9)) >= 2 * 500  # MIN_AGE at 500 msg/s
        assert len(alive[kind]) <= len(initial[kind])  # never over the policy's capacity
    ops = [m[0] for m in messages]
    assert 0.45 < ops.count("c") / len(ops) < 0.55
    assert any(m[2] in created_at for m in messages if m[0] == "d")  # stream rows deleted too
    assert {m[1] for m in messages} == {"Thing", "Rule"}


def test_latency_is_first_appearance_for_c_and_last_disappearance_for_d() -> None:
    records = [
        ("new", "c", "Thing", 10.0),
        ("old", "d", "Thing", 10.5),
        ("never", "c", "Rule", 11.0),
        ("back", "d", "Rule", 11.0),  # gone, then on an instance again: not deleted
        ("early", "d", "Rule", 12.0),  # gone only before its d: not seen
    ]
    appeared = {"new": 10.004, "old": 1.0, "back": 1.0, "early": 1.0}
    gone = {"old": 10.52, "back": 11.01, "early": 11.5}
    present = {"new": 1, "old": 0, "back": 1, "early": 1}
    seen = latencies(records, appeared, gone, present)
    assert seen.c_ms == [pytest.approx(4.0)]
    assert seen.d_ms == [pytest.approx(20.0)]
    assert (seen.unseen, seen.coalesced) == (3, 0)


def test_a_row_created_and_deleted_before_it_was_placed_is_coalesced_not_unseen() -> None:
    records = [("brief", "c", "Thing", 1.0), ("brief", "d", "Thing", 3.0)]
    seen = latencies(records, {}, {}, {})
    assert (seen.c_ms, seen.d_ms, seen.unseen, seen.coalesced) == ([], [], 0, 2)
    # Placed and never removed: its d is not seen.
    seen = latencies(records, {"brief": 1.01}, {}, {"brief": 1})
    assert (len(seen.c_ms), seen.unseen, seen.coalesced) == (1, 1, 0)


def test_placement_counts_missing_duplicated_and_extra_ids() -> None:
    rows = {"a", "b", "c", "d"}
    assert placement(rows, [["a", "b"], ["c", "d"]]) == (0, 0, 0)
    assert placement(rows, [["a", "b"], ["b", "x"]]) == (2, 1, 1)


def test_cpu_seconds_grows_with_work_done() -> None:
    before = cpu_seconds(os.getpid())
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    assert cpu_seconds(os.getpid()) - before >= 0.1


def test_presence_sees_an_id_gone_only_when_no_node_holds_it() -> None:
    seen = Presence(["a", "b"])
    seen.update("/0", ["a", "x"], 1.0)
    seen.update("/1", ["b"], 1.0)
    seen.update("/1", ["a", "b"], 2.0)  # a moved: on /1 before /0 is read again
    seen.update("/0", ["x"], 3.0)
    assert seen.count == {"a": 1, "b": 1} and "a" not in seen.gone
    seen.update("/1", ["b"], 4.0)
    assert seen.count["a"] == 0 and seen.gone["a"] == 4.0
    assert seen.appeared == {"a": 1.0, "b": 1.0}
    assert "x" not in seen.count  # not tracked
    seen.update("/1", [], 5.0)  # the instance deleted
    assert seen.gone["b"] == 5.0
