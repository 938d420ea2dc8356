"""reconciler.domain.events: every SPEC message form, the malformed ones, and a fuzz of arbitrary
bytes."""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.domain.events import (
    Heartbeat,
    MalformedMessage,
    RowEvent,
    parse_heartbeat,
    parse_notification,
)


def enc(doc: Any) -> bytes:
    return json.dumps(doc).encode()


# --- cm/notify: the SPEC forms ------------------------------------------------------------


def test_create_gives_added_id() -> None:
    msg = {"o": "c", "t": "Thing", "k": {"id": "a1"}, "instance": {"id": "a1", "name": "x"}}
    assert parse_notification(enc(msg)) == RowEvent("Thing", added=frozenset({"a1"}))


def test_create_without_instance_row_is_still_a_create() -> None:
    # We only need the key; the row copy is informational.
    assert parse_notification(enc({"o": "c", "t": "Rule", "k": {"id": "r"}})) == RowEvent(
        "Rule", added=frozenset({"r"})
    )


def test_delete_gives_removed_id() -> None:
    msg = {"o": "d", "t": "Thing", "k": {"id": "a1"}}
    assert parse_notification(enc(msg)) == RowEvent("Thing", removed=frozenset({"a1"}))


def test_bulk_create_gives_all_keys_deduplicated() -> None:
    msg = {"o": "bc", "t": "Thing", "keys": [{"id": "a"}, {"id": "b"}, {"id": "a"}]}
    assert parse_notification(enc(msg)) == RowEvent("Thing", added=frozenset({"a", "b"}))


def test_bulk_delete_with_one_id_string() -> None:
    msg = {"o": "bd", "t": "Thing", "where": {"id": "a"}}
    assert parse_notification(enc(msg)) == RowEvent("Thing", removed=frozenset({"a"}))


def test_bulk_delete_with_id_list() -> None:
    msg = {"o": "bd", "t": "Rule", "where": {"id": ["a", "b", "c"]}}
    assert parse_notification(enc(msg)) == RowEvent("Rule", removed=frozenset({"a", "b", "c"}))


@pytest.mark.parametrize(
    "msg",
    [
        {"o": "u", "t": "Thing", "k": {"id": "a"}, "instance": {"id": "a"}},
        {"o": "bu", "t": "Thing", "where": {"id": ["a", "b"]}},
        {"o": "truncate", "t": "Thing"},
        # u/bu payloads are never read, so odd bodies are not malformed.
        {"o": "u", "t": "Thing"},
        {"o": "bu", "t": "Thing", "where": 3},
    ],
)
def test_updates_and_other_ops_change_nothing(msg: dict[str, Any]) -> None:
    assert parse_notification(enc(msg)) is None


def test_empty_bulks_change_nothing() -> None:
    assert parse_notification(enc({"o": "bc", "t": "Thing", "keys": []})) is None
    assert parse_notification(enc({"o": "bd", "t": "Thing", "where": {"id": []}})) is None


def test_other_tables_are_returned_for_the_loop_to_filter() -> None:
    msg = {"o": "c", "t": "DeviceMeta", "k": {"id": "m"}}
    assert parse_notification(enc(msg)) == RowEvent("DeviceMeta", added=frozenset({"m"}))


def test_integer_ids_become_strings() -> None:
    assert parse_notification(enc({"o": "c", "t": "Thing", "k": {"id": 42}})) == RowEvent(
        "Thing", added=frozenset({"42"})
    )
    msg = {"o": "bd", "t": "Thing", "where": {"id": [1, "x"]}}
    assert parse_notification(enc(msg)) == RowEvent("Thing", removed=frozenset({"1", "x"}))


def test_large_bulk_create() -> None:
    keys = [{"id": f"id-{i}"} for i in range(5000)]
    event = parse_notification(enc({"o": "bc", "t": "Thing", "keys": keys}))
    assert event is not None and len(event.added) == 5000 and not event.removed


# --- cm/notify: malformed -----------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00",  # not UTF-8
        b"[1, 2]",
        b'"c"',
        b"null",
        b"[" * 100_000,  # nesting deep enough to blow the parser's recursion limit
        enc({"t": "Thing", "k": {"id": "a"}}),  # no op
        enc({"o": "", "t": "Thing"}),
        enc({"o": 1, "t": "Thing"}),
        enc({"o": "c", "k": {"id": "a"}}),  # no table
        enc({"o": "c", "t": ["Thing"], "k": {"id": "a"}}),
        enc({"o": "c", "t": "Thing"}),  # c without k
        enc({"o": "c", "t": "Thing", "k": "a"}),
        enc({"o": "c", "t": "Thing", "k": {}}),
        enc({"o": "c", "t": "Thing", "k": {"id": ""}}),
        enc({"o": "c", "t": "Thing", "k": {"id": None}}),
        enc({"o": "c", "t": "Thing", "k": {"id": True}}),
        enc({"o": "c", "t": "Thing", "k": {"id": 1.5}}),
        enc({"o": "c", "t": "Thing", "k": {"id": ["a"]}}),
        enc({"o": "d", "t": "Thing", "where": {"id": "a"}}),  # d needs k
        enc({"o": "bc", "t": "Thing"}),  # bc without keys
        enc({"o": "bc", "t": "Thing", "keys": {"id": "a"}}),
        enc({"o": "bc", "t": "Thing", "keys": ["a"]}),
        enc({"o": "bc", "t": "Thing", "keys": [{"id": "a"}, {"id": ""}]}),
        enc({"o": "bd", "t": "Thing"}),  # bd without where
        enc({"o": "bd", "t": "Thing", "where": ["a"]}),
        enc({"o": "bd", "t": "Thing", "where": {}}),
        enc({"o": "bd", "t": "Thing", "where": {"id": ["a", None]}}),
        enc({"o": "bd", "t": "Thing", "where": {"id": {"in": ["a"]}}}),
    ],
)
def test_malformed_notifications_raise_malformed_message(payload: bytes) -> None:
    with pytest.raises(MalformedMessage) as info:
        parse_notification(payload)
    assert info.value.reason  # the caller logs it with a sample


def test_one_bad_key_rejects_the_whole_bulk() -> None:
    # Half-applying a bulk would be a guess; the next tick re-reads the database anyway.
    msg = {"o": "bc", "t": "Thing", "keys": [{"id": "a"}, {"nope": 1}]}
    with pytest.raises(MalformedMessage, match=r"keys\[1\]"):
        parse_notification(enc(msg))


# --- HeartBeat ----------------------------------------------------------------------------


def test_heartbeat_spec_form() -> None:
    hb = parse_heartbeat(b'{"resource": "Thing", "instanceId": "3", "timestamp": "1700000000"}')
    assert hb == Heartbeat("Thing", 3, 1700000000.0)


def test_heartbeat_accepts_numbers() -> None:
    hb = parse_heartbeat(enc({"resource": "Rule", "instanceId": 0, "timestamp": 1700000000.25}))
    assert hb == Heartbeat("Rule", 0, 1700000000.25)


def test_heartbeat_ignores_extra_fields() -> None:
    hb = parse_heartbeat(
        enc({"resource": "Thing", "instanceId": "1", "timestamp": "5", "host": "pod-1"})
    )
    assert hb == Heartbeat("Thing", 1, 5.0)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"garbage",
        b"\x80",
        b"[]",
        enc({"instanceId": "3", "timestamp": "1"}),  # no resource
        enc({"resource": "", "instanceId": "3", "timestamp": "1"}),
        enc({"resource": 1, "instanceId": "3", "timestamp": "1"}),
        enc({"resource": "Thing", "timestamp": "1"}),  # no instanceId
        enc({"resource": "Thing", "instanceId": "", "timestamp": "1"}),
        enc({"resource": "Thing", "instanceId": "x", "timestamp": "1"}),
        enc({"resource": "Thing", "instanceId": "-1", "timestamp": "1"}),
        enc({"resource": "Thing", "instanceId": -1, "timestamp": "1"}),
        enc({"resource": "Thing", "instanceId": " 3", "timestamp": "1"}),
        enc({"resource": "Thing", "instanceId": "3_0", "timestamp": "1"}),
        enc({"resource": "Thing", "instanceId": "\u0663", "timestamp": "1"}),  # Arabic-Indic 3
        enc({"resource": "Thing", "instanceId": "1" * 5000, "timestamp": "1"}),
        enc({"resource": "Thing", "instanceId": 1.0, "timestamp": "1"}),
        enc({"resource": "Thing", "instanceId": True, "timestamp": "1"}),
        enc({"resource": "Thing", "instanceId": None, "timestamp": "1"}),
        enc({"Resource": "Thing", "InstanceId": "3"}),  # only the time's key has two spellings
    ],
)
def test_malformed_heartbeats_raise_malformed_message(payload: bytes) -> None:
    with pytest.raises(MalformedMessage):
        parse_heartbeat(payload)


# The Go worker's forms (SPEC "Heartbeats"): the key of its clock may be `Timestamp`, or there
# is none; `instanceId` may be text or a number. The receive time is what counts, so each one
# is a heartbeat of that instance.
@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"resource":"Thing","instanceId":"3"}', Heartbeat("Thing", 3, None)),
        (b'{"resource":"Thing","instanceId":3}', Heartbeat("Thing", 3, None)),
        (
            b'{"resource":"Thing","instanceId":3,"Timestamp":"1700000000"}',
            Heartbeat("Thing", 3, 1700000000.0),
        ),
        (
            b'{"resource":"Thing","instanceId":"3","Timestamp":1700000000}',
            Heartbeat("Thing", 3, 1700000000.0),
        ),
        (
            b'{"resource":"Thing","instanceId":"3","timestamp":"1700000000"}',
            Heartbeat("Thing", 3, 1700000000.0),
        ),
        # Go's time.Time marshals as RFC 3339, with up to nine fraction digits
        (
            b'{"resource":"Thing","instanceId":3,"Timestamp":"2023-11-14T22:13:20.123456789Z"}',
            Heartbeat("Thing", 3, 1700000000.123456),
        ),
        (
            b'{"resource":"Rule","instanceId":0,"Timestamp":"2023-11-14T23:13:20+01:00"}',
            Heartbeat("Rule", 0, 1700000000.0),
        ),
    ],
)
def test_go_worker_heartbeat_forms_are_heartbeats(payload: bytes, expected: Heartbeat) -> None:
    assert parse_heartbeat(payload) == expected


def test_lowercase_timestamp_wins_when_both_spellings_are_sent() -> None:
    doc = {"resource": "Thing", "instanceId": "3", "timestamp": "5", "Timestamp": "7"}
    assert parse_heartbeat(enc(doc)).timestamp == 5.0


def test_an_unreadable_timestamp_falls_back_to_the_other_spelling() -> None:
    doc = {"resource": "Thing", "instanceId": "3", "timestamp": None, "Timestamp": "7"}
    assert parse_heartbeat(enc(doc)).timestamp == 7.0


@pytest.mark.parametrize(
    "stamp",
    [
        b'"yesterday"',
        b'"nan"',
        b'"inf"',
        b"-5",
        b"null",
        b"false",
        b"{}",
        b'"2023-11-14T22:13:20"',  # no zone: not an instant
        b'"2023-11-14"',
        b"1e999",
        b"9" * 400,
    ],
)
def test_a_heartbeat_whose_time_is_unreadable_still_counts(stamp: bytes) -> None:
    # The worker is alive whatever its clock says: losing the heartbeat would get a healthy
    # pod recreated for silence.
    payload = b'{"resource": "Thing", "instanceId": "3", "timestamp": ' + stamp + b"}"
    assert parse_heartbeat(payload) == Heartbeat("Thing", 3, None)


# --- fuzz: any input gives a value or MalformedMessage, never another exception -----------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)

# Messages shaped like the SPEC forms with arbitrary values in their fields: random bytes
# almost never get past json.loads, so this is what reaches the field checks.
near_notifications = st.fixed_dictionaries(
    {"o": st.sampled_from(["c", "u", "d", "bc", "bu", "bd", "x"]) | json_values},
    optional={
        "t": st.sampled_from(["Thing", "Rule"]) | json_values,
        "k": st.fixed_dictionaries({}, optional={"id": json_values}) | json_values,
        "keys": st.lists(st.fixed_dictionaries({}, optional={"id": json_values}) | json_values),
        "where": st.fixed_dictionaries({}, optional={"id": json_values}) | json_values,
    },
)
near_heartbeats = st.fixed_dictionaries(
    {},
    optional={
        "resource": st.sampled_from(["Thing", "Rule"]) | json_values,
        "instanceId": st.from_regex(r"\A-?[0-9]{0,12}\Z") | json_values,
        "timestamp": st.from_regex(r"\A[0-9.e+-]{0,12}\Z") | json_values,
        "Timestamp": st.from_regex(r"\A[0-9T:.Z+-]{0,30}\Z") | json_values,
    },
)


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


@settings(max_examples=500)
@given(st.binary(max_size=256))
def test_fuzz_any_bytes_never_raise_anything_else(data: bytes) -> None:
    for parse in (parse_notification, parse_heartbeat):
        with contextlib.suppress(MalformedMessage):
            parse(data)


@settings(max_examples=1000)
@given(near_notifications)
def test_fuzz_notification_shapes(doc: dict[str, Any]) -> None:
    try:
        event = parse_notification(_dumps(doc))
    except MalformedMessage:
        return
    if event is not None:
        # Anything accepted carries only non-empty string ids, on one side only.
        assert isinstance(event.table, str) and event.table
        assert bool(event.added) != bool(event.removed)
        assert all(isinstance(i, str) and i for i in event.added | event.removed)


@settings(max_examples=1000)
@given(near_heartbeats)
def test_fuzz_heartbeat_shapes(doc: dict[str, Any]) -> None:
    try:
        hb = parse_heartbeat(_dumps(doc))
    except MalformedMessage:
        return
    assert hb.instance_id >= 0 and hb.resource
    if hb.timestamp is not None:
        assert math.isfinite(hb.timestamp) and hb.timestamp >= 0


@given(st.sets(st.text(min_size=1, max_size=10), min_size=1, max_size=20))
def test_roundtrip_bulk_ids(ids: set[str]) -> None:
    created = parse_notification(enc({"o": "bc", "t": "Thing", "keys": [{"id": i} for i in ids]}))
    deleted = parse_notification(enc({"o": "bd", "t": "Thing", "where": {"id": sorted(ids)}}))
    assert created == RowEvent("Thing", added=frozenset(ids))
    assert deleted == RowEvent("Thing", removed=frozenset(ids))


def test_ignored_reason_names_why_a_message_changes_nothing() -> None:
    from reconciler.domain.events import ignored_reason

    assert ignored_reason(b'{"o": "u", "t": "Thing", "k": {"id": "a"}}') == "update"
    assert ignored_reason(b'{"o": "bu", "t": "Thing", "where": {"id": "a"}}') == "update"
    assert ignored_reason(b'{"o": "bc", "t": "Thing", "keys": []}') == "empty-bulk"
    assert ignored_reason(b'{"o": "truncate", "t": "Thing"}') == "unknown-op"
