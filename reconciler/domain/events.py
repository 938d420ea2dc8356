"""Parse the two event streams: `cm/notify` row changes (MQTT) and `HeartBeat` (Kafka).

Pure functions, no client libraries: the adapters hand raw payload bytes here and get back a
value or `MalformedMessage`. Any other exception escaping from here would be a bug (the fuzz
tests in tests/unit/domain/test_events.py feed arbitrary bytes to check exactly that), because the
adapters call these on their network threads and must never die on a bad message.

Decisions the contracts leave open (docs/contracts.md "Change notifications" and "Heartbeats"):
- Row ids are non-empty strings (the database keys are string UUIDs). A JSON integer id is
  accepted and converted with `str()` (a database layer serialising a numeric key must not be
  lost); floats, booleans, null, objects and empty strings are malformed.
- `u`/`bu` and ops we do not know (the "anything else" form) change no assignment and give
  None; their payload is not validated beyond `o` and `t`, since we never read it.
- A `bc` with an empty key list or a `bd` with an empty id list is valid and changes nothing:
  None, so "RowEvent" always means "some ids were added or removed".
- Events for every table are returned; deciding which tables are orchestrated is the loop's
  job (it knows the policy), so this module stays free of configuration.
- Size is bounded before anything is parsed: a message over `max_bytes` or a bulk naming more
  than `max_ids` ids is `OversizedMessage` (its `label` is the metric's reason), so a forged
  giant `bc` costs a length check, not a parse and an assignment per id it names. The
  defaults leave room for the platform's largest bulks (a full instance's ids, many times
  over).
- A heartbeat is `resource` + `instanceId` (a string "3" or a number 3); the worker's timestamp
  is for logs only (the receive time is what counts), so its key may be `timestamp` or
  `Timestamp` (the Go worker's field name), it may be missing, and one that is not a time
  (not Unix seconds, as a number or as text, nor an RFC 3339 time as Go's `time.Time`
  marshals it) leaves `timestamp` None instead of losing the worker's sign of life.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "MAX_IDS",
    "MAX_MESSAGE_BYTES",
    "Heartbeat",
    "MalformedMessage",
    "OversizedMessage",
    "RowEvent",
    "parse_heartbeat",
    "parse_notification",
]

# Ops that add or remove rows; everything else is "no assignment change".
ADD_OPS = frozenset({"c", "bc"})
REMOVE_OPS = frozenset({"d", "bd"})
UPDATE_OPS = frozenset({"u", "bu"})

# Bounds of one cm/notify message (RECONCILER_MQTT_MAX_MESSAGE_BYTES, RECONCILER_MQTT_MAX_IDS).
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
MAX_IDS = 50_000

# Strict ASCII digits: int() alone would also take "+3", " 3", "3_0" and Unicode digits, which
# no worker sends and which would make two spellings of one instance id possible.
_INSTANCE_ID = re.compile(r"[0-9]+", re.ASCII)


class MalformedMessage(ValueError):
    """A payload that is not one of the contract's message forms; `reason` says what was
    wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OversizedMessage(ValueError):
    """A message refused for its size before it was read: `label` ("too-large",
    "too-many-ids") is the metric's reason, `reason` says by how much."""

    def __init__(self, label: str, reason: str) -> None:
        super().__init__(reason)
        self.label = label
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RowEvent:
    """Rows of `table` were created (`added`) or deleted (`removed`): a hint for the loop."""

    table: str
    added: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """One worker heartbeat. `timestamp` is the worker's clock (Unix seconds): for logs only,
    it may skew; None when the worker sent none, or none that reads as a time."""

    resource: str
    instance_id: int
    timestamp: float | None = None


def _load_object(payload: bytes) -> dict[str, Any]:
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise MalformedMessage(f"payload is {type(payload).__name__}, not bytes")
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError as e:
        raise MalformedMessage(f"not UTF-8: {e.reason} at byte {e.start}") from None
    try:
        doc = json.loads(text)
    # RecursionError: deeply nested arrays ("[[[[...") exhaust the parser's stack; ValueError
    # covers JSONDecodeError and integers too long to convert.
    except (ValueError, RecursionError) as e:
        raise MalformedMessage(f"invalid JSON: {str(e)[:80]}") from None
    if not isinstance(doc, dict):
        raise MalformedMessage(f"JSON {type(doc).__name__}, expected an object")
    return doc


def _require_str(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedMessage(f"field {key!r} missing or not a non-empty string")
    return value


def _row_id(value: object, where: str) -> str:
    # bool is a subclass of int: true/false are not ids.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value:
        return value
    raise MalformedMessage(f"{where}: id missing or not a non-empty string")


def _key_id(key: object, where: str) -> str:
    """The id of a `{"id": ...}` key object (the `k` field, or one entry of `keys`)."""
    if not isinstance(key, dict):
        raise MalformedMessage(f"{where}: expected an object with an id")
    return _row_id(key.get("id"), where)


def _bounded(values: list[Any], max_ids: int, where: str) -> list[Any]:
    if len(values) > max_ids:
        raise OversizedMessage("too-many-ids", f"{where}: {len(values)} ids, limit {max_ids}")
    return values


def parse_notification(
    payload: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES, max_ids: int = MAX_IDS
) -> RowEvent | None:
    """Parse one `cm/notify` message.

    Returns a RowEvent for creates (`c`, `bc`) and deletes (`d`, `bd`) that name at least one
    id, None for messages that change no assignment (`u`, `bu`, other ops, empty bulks), and
    raises MalformedMessage for anything that is not a contract form, OversizedMessage for one
    over `max_bytes` or naming more than `max_ids` ids.
    """
    if isinstance(payload, bytes | bytearray | memoryview) and len(payload) > max_bytes:
        raise OversizedMessage("too-large", f"{len(payload)} bytes, limit {max_bytes}")
    doc = _load_object(payload)
    op = _require_str(doc, "o")
    table = _require_str(doc, "t")

    ids: frozenset[str]
    if op in ("c", "d"):
        ids = frozenset({_key_id(doc.get("k"), "k")})
    elif op == "bc":
        keys = doc.get("keys")
        if not isinstance(keys, list):
            raise MalformedMessage("bc: field 'keys' missing or not a list")
        keys = _bounded(keys, max_ids, "bc")
        ids = frozenset(_key_id(k, f"keys[{i}]") for i, k in enumerate(keys))
    elif op == "bd":
        where = doc.get("where")
        if not isinstance(where, dict):
            raise MalformedMessage("bd: field 'where' missing or not an object")
        raw = where.get("id")
        if isinstance(raw, list):
            raw = _bounded(raw, max_ids, "bd")
            ids = frozenset(_row_id(v, f"where.id[{i}]") for i, v in enumerate(raw))
        else:
            ids = frozenset({_row_id(raw, "where.id")})
    else:
        return None  # u, bu and unknown ops: no assignment change

    if not ids:
        return None
    if op in ADD_OPS:
        return RowEvent(table=table, added=ids)
    return RowEvent(table=table, removed=ids)


def ignored_reason(payload: bytes) -> str:
    """Why a message that parse_notification() returned None for changes nothing, as a
    bounded metric label: "update" (u, bu), "empty-bulk", or "unknown-op"."""
    op = _load_object(payload).get("o")
    if op in UPDATE_OPS:
        return "update"
    return "empty-bulk" if op in ADD_OPS | REMOVE_OPS else "unknown-op"


def _instance_id(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise MalformedMessage("instanceId is negative")
        return value
    if isinstance(value, str) and _INSTANCE_ID.fullmatch(value):
        # Bounded: a 5,000-digit "instance id" is garbage, and int() would refuse it anyway.
        if len(value) > 9:
            raise MalformedMessage("instanceId too large")
        return int(value)
    raise MalformedMessage("field 'instanceId' missing or not an integer")


# Keys the worker's clock may come under: the contract's `timestamp`, and `Timestamp`, the Go
# worker's struct field name when it has no JSON tag. The first that reads as a time wins.
TIMESTAMP_KEYS = ("timestamp", "Timestamp")


def _timestamp(value: object) -> float | None:
    """Unix seconds from a number, numeric text or an RFC 3339 time; None for anything else
    (absent, null, garbage, negative, not finite, out of range)."""
    ts: float
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            ts = float(value)  # an int too large for a float raises OverflowError
        elif isinstance(value, str):
            try:
                ts = float(value)
            except ValueError:
                ts = _rfc3339(value)
        else:
            return None
    except (OverflowError, ValueError):
        return None
    return ts if math.isfinite(ts) and ts >= 0 else None


def _rfc3339(text: str) -> float:
    """Go's `time.Time` marshals as RFC 3339 ("2023-11-14T22:13:20.123456789Z"); ValueError
    for anything else, including a time without a zone (no instant)."""
    if len(text) > 40:
        raise ValueError(text)
    parsed = datetime.fromisoformat(text)  # 3.11: "Z" and any number of fraction digits
    if parsed.tzinfo is None:
        raise ValueError(text)
    return parsed.timestamp()


def parse_heartbeat(payload: bytes) -> Heartbeat:
    """Parse one `HeartBeat` value: {"resource": "Thing", "instanceId": "3", "timestamp": "..."}.

    `resource` and `instanceId` are required (MalformedMessage otherwise); the timestamp is
    not: see the module docstring."""
    doc = _load_object(payload)
    resource = _require_str(doc, "resource")
    instance_id = _instance_id(doc.get("instanceId"))
    stamps = (_timestamp(doc.get(key)) for key in TIMESTAMP_KEYS)
    timestamp = next((ts for ts in stamps if ts is not None), None)
    return Heartbeat(resource=resource, instance_id=instance_id, timestamp=timestamp)
