"""Row events as hints (reconciler.reconcile.hints), message bounds (reconciler.domain.events) and
the
throttled log a flood of them writes to (reconciler.telemetry.logs)."""

from __future__ import annotations

import json

import pytest

from reconciler.domain.errors import SourceUnavailable
from reconciler.domain.events import OversizedMessage, RowEvent, parse_notification
from reconciler.reconcile.hints import CheckedRows, PendingRows, check_row_events
from reconciler.telemetry.logs import ThrottledLog
from tests.support.fakes import FakeClock, FakeRows


def test_the_database_decides_which_named_ids_are_added_and_removed() -> None:
    rows = FakeRows({"Thing": {"a", "b", "held"}})
    events = [
        RowEvent("Thing", added=frozenset({"a", "forged"})),
        RowEvent("Thing", removed=frozenset({"held", "gone"})),
    ]
    assert check_row_events(rows, events) == [
        CheckedRows(
            "Thing",
            present=frozenset({"a", "held"}),
            absent=frozenset({"forged", "gone"}),
            not_in_table=1,
            still_in_table=1,
        )
    ]


def test_a_create_then_delete_of_one_id_in_a_batch_is_settled_by_the_table_not_counted() -> None:
    rows = FakeRows({"Thing": set()})
    events = [
        RowEvent("Thing", added=frozenset({"x"})),
        RowEvent("Thing", removed=frozenset({"x"})),
    ]
    [checked] = check_row_events(rows, events)
    assert checked.absent == {"x"} and checked.not_in_table == checked.still_in_table == 0


def test_one_lookup_per_table_whatever_the_number_of_events() -> None:
    rows = FakeRows({"Thing": {"t"}, "Rule": {"r"}})
    events = [RowEvent("Thing", added=frozenset({f"t{i}"})) for i in range(50)]
    events += [RowEvent("Rule", removed=frozenset({f"r{i}"})) for i in range(50)]
    assert {c.table for c in check_row_events(rows, events)} == {"Thing", "Rule"}
    assert rows.lookups == 2


def test_a_database_that_cannot_answer_confirms_nothing() -> None:
    rows = FakeRows({"Thing": {"a"}}, down=True)
    with pytest.raises(SourceUnavailable):
        check_row_events(rows, [RowEvent("Thing", added=frozenset({"a"}))])


def bulk_create(n: int) -> bytes:
    keys = [{"id": f"id-{i}"} for i in range(n)]
    return json.dumps({"o": "bc", "t": "Thing", "keys": keys}).encode()


def test_a_message_over_the_byte_limit_is_refused_before_it_is_parsed() -> None:
    with pytest.raises(OversizedMessage) as refused:
        parse_notification(b"{" + b" " * 2000, max_bytes=1000)  # not even JSON: never read
    assert refused.value.label == "too-large"


def test_a_bulk_naming_more_ids_than_the_limit_is_refused() -> None:
    assert parse_notification(bulk_create(10), max_ids=10) is not None
    with pytest.raises(OversizedMessage) as refused:
        parse_notification(bulk_create(11), max_ids=10)
    assert refused.value.label == "too-many-ids"
    bulk_delete = {"o": "bd", "t": "Thing", "where": {"id": [str(i) for i in range(11)]}}
    with pytest.raises(OversizedMessage):
        parse_notification(json.dumps(bulk_delete).encode(), max_ids=10)


class Lines:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, object]]] = []

    def warning(self, event: str, **fields: object) -> None:
        self.lines.append((event, fields))


def test_a_flood_of_one_warning_writes_one_line_per_interval_with_the_count_it_dropped() -> None:
    clock, out = FakeClock(), Lines()
    throttled = ThrottledLog(out, every_seconds=10.0, clock=clock.mono)
    for _ in range(1000):
        throttled.warning("rejected", reason="too-large")
    clock.advance(10.0)
    throttled.warning("rejected", reason="too-large")
    throttled.warning("other")
    assert out.lines == [
        ("rejected", {"reason": "too-large"}),
        ("rejected", {"reason": "too-large", "suppressed": 999}),
        ("other", {}),
    ]


def test_waiting_hints_merge_per_table_and_only_the_first_wakes_the_loop() -> None:
    pending = PendingRows()
    wakes = [pending.add(RowEvent("Thing", added=frozenset({f"t{i % 10}"}))) for i in range(1000)]
    assert wakes == [True] + [False] * 999
    events, overflowed = pending.take()
    assert events == [RowEvent("Thing", added=frozenset(f"t{i}" for i in range(10)))]
    assert not overflowed
    assert pending.take() == ([], False)
    assert pending.add(RowEvent("Rule", removed=frozenset({"r"})))  # empty again: wake


def test_a_flood_past_the_bound_is_dropped_for_a_full_re_read() -> None:
    pending = PendingRows(max_ids=100)
    for i in range(50):
        pending.add(RowEvent("Thing", added=frozenset({f"a{i}", f"b{i}", f"c{i}"})))
    events, overflowed = pending.take()
    assert events == [] and overflowed
    assert pending.take() == ([], False)
