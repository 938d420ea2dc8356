"""A kind's notes have one home (reconciler/runtime/kind_notes.py): `reconciler status` and
the fleet page say the same things, in the same order, each in its own style."""

from __future__ import annotations

from typing import Any

from reconciler.api.web.page import kind_section
from reconciler.cli.status_text import format_status
from reconciler.runtime.kind_notes import Topic, kind_notes

EVERYTHING: dict[str, Any] = {
    "rows": 10,
    "instances": 1,
    "capacity": 20,
    "unassigned": 0,
    "maxInstances": 5,
    "resourcePerInstance": 20,
    "error": "require instances more than the max: 6/5",
    "blind": ["kubernetes"],
    "degraded": {"heartbeats": "Kafka down"},
    "pin": {"instances": 0, "by": "alice"},
    "valve": {"engaged": True, "passes": 2, "reason": "would unassign 90% of ids"},
    "overrides": {"maxInstances": 5},
    "heartbeat": "2 silent",
    "autoscale": {"text": "cpu 40/60%: 1 -> 1"},
    "instanceList": [],
}


def test_every_note_is_found_once_in_one_order() -> None:
    notes = kind_notes("Thing", EVERYTHING)
    assert [n.topic for n in notes] == list(Topic)
    assert [n.alert for n in notes] == [True, True, True, False, True, False, False, False]


def test_a_quiet_kind_has_no_notes() -> None:
    assert kind_notes("Thing", {"blind": [], "degraded": {}, "valve": {"engaged": False}}) == []


def test_status_prints_each_note_in_the_order_the_page_shows_it() -> None:
    status = {
        "policy": {"path": "p.yaml", "sha256": "0" * 64},
        "lastPass": {"trigger": "tick", "ops": 0, "failed": []},
        "kinds": {"Thing": EVERYTHING},
    }
    text = format_status(status)
    lines = [line.strip() for line in text.splitlines()[4:9]]
    assert lines[0] == "ERROR: require instances more than the max: 6/5"
    assert lines[1] == "blind: kubernetes"
    assert lines[2] == "DEGRADED: cannot read heartbeats: Kafka down"
    assert lines[3] == "STOPPED by alice (`reconciler start Thing`: back to the policy)"
    assert lines[4].startswith("SAFETY VALVE: held for 2 pass(es): would unassign 90% of ids")
    page = kind_section("Thing", EVERYTHING)
    said = [
        "require instances more than the max",
        "blind: kubernetes",
        "degraded: cannot read heartbeats",
        "stopped by alice",
        "safety valve: held for 2 pass(es)",
        "overrides until policy.yaml changes: maxInstances=5",
        "heartbeats: 2 silent",
        "autoscale: cpu 40/60%",
    ]
    where = [page.index(s) for s in said]
    assert where == sorted(where)
