"""The invariant checker's own judgements, on layouts and pod lists made by hand: it must see
each kind of damage, or a clean chaos run means nothing."""

from __future__ import annotations

from tests.chaos.history import Lifetime, Lifetimes
from tests.chaos.invariants import Instance, KindSpec, kinds_of, layout_violations, pod_violations
from tests.chaos.podwatch import BlindWindow, Gone, blind_deletions

SPEC = KindSpec("Thing", "Thing", "iota-dac", "ns")


def test_an_id_on_two_instances_is_a_violation_naming_both() -> None:
    layout = {0: Instance(2, 5, ("a", "b")), 1: Instance(1, 5, ("b",))}
    assert layout_violations("Thing", layout, {"a", "b"}) == [
        "Thing: id b is on 2 instances [0, 1]"
    ]


def test_an_instance_over_its_count_or_with_a_wrong_used_is_a_violation() -> None:
    layout = {0: Instance(3, 2, ("a", "b", "c")), 1: Instance(0, 2, ("d",))}
    found = layout_violations("Thing", layout, {"a", "b", "c", "d"})
    assert found == ["Thing/0: 3 ids over its count 2", "Thing/1: used=0 but it holds 1 ids"]


def test_unassigned_rows_and_assigned_ids_without_rows_are_violations() -> None:
    layout = {0: Instance(1, 5, ("gone",))}
    found = layout_violations("Thing", layout, {"new"})
    assert found == [
        "Thing: 1 database ids on no instance, e.g. new",
        "Thing: 1 assigned ids with no row, e.g. gone",
    ]


def test_an_unknown_table_skips_only_the_row_checks() -> None:
    layout = {0: Instance(1, 1, ("a",)), 1: Instance(1, 1, ("a",))}
    assert layout_violations("Ghost", layout, None) == ["Ghost: id a is on 2 instances [0, 1]"]


def test_a_missing_pod_and_an_orphan_pod_are_violations_other_kinds_pods_are_not() -> None:
    pods = {"iota-dac-0": "u0", "iota-dac-7": "u7", "iota-rules-engine-1": "r1"}
    assert pod_violations(SPEC, {0, 1}, pods) == [
        "Thing/1: no pod iota-dac-1",
        "Thing: orphan pod iota-dac-7 (no instance 7)",
    ]


# Pod deletions against the instance history. Kafka is down from 100 to 110 s (a loose window
# up to 122 s); instances are followed from 50 s on, their pods judged with a settle of 6 s.
KAFKA = BlindWindow("Kafka down", {"ns"}, start=100.0, end=110.0, strict=False, tail=12.0)
SETTLE = 6.0


def judge(gone: list[Gone], windows: list[BlindWindow], lifetimes: Lifetimes) -> list[str]:
    return blind_deletions(gone, windows, lifetimes, [SPEC], SETTLE, now=300.0)


def test_a_worker_recreated_during_a_kafka_outage_is_a_violation_its_instance_stayed() -> None:
    stayed_put = {("Thing", 3): (Lifetime(0x30, first_seen=50.0, last_seen=200.0),)}
    killed = [Gone("ns", "iota-dac-3", "uid-old", 104.0, 104.5)]  # and created again
    assert judge(killed, [KAFKA], stayed_put) == [
        "pod ns/iota-dac-3 (uid uid-old) deleted while blind (Kafka down, +4.0..+4.5s from its "
        "start) though its instance Thing/3 stayed (czxid 48)"
    ]


def test_a_scale_down_then_a_scale_up_during_a_kafka_outage_is_no_violation() -> None:
    # Instance 4 removed at ~104 s, its pod deleted in the same pass; at 108 s a scale-up
    # creates instance 4 again (a new node: a new czxid) and a new pod iota-dac-4.
    removed_then_back = {
        ("Thing", 4): (
            Lifetime(0x40, first_seen=50.0, last_seen=103.8),
            Lifetime(0x90, first_seen=108.2, last_seen=200.0),
        )
    }
    scaled_down = [Gone("ns", "iota-dac-4", "uid-old", 103.9, 104.4)]
    assert judge(scaled_down, [KAFKA], removed_then_back) == []


def test_a_pod_deleted_before_its_instance_node_is_no_violation_within_the_settle_time() -> None:
    # The node's first removal failed; the next pass removed it 4 s after the pod went.
    removed_late = {("Thing", 4): (Lifetime(0x40, first_seen=50.0, last_seen=108.0),)}
    assert judge([Gone("ns", "iota-dac-4", "u4", 103.5, 104.0)], [KAFKA], removed_late) == []


def test_a_deletion_is_judged_once_its_instance_was_followed_past_the_settle_time() -> None:
    deleted = [Gone("ns", "iota-dac-3", "u3", 104.0, 104.5)]
    followed_to = {("Thing", 3): (Lifetime(0x30, first_seen=50.0, last_seen=108.0),)}
    assert judge(deleted, [KAFKA], followed_to) == []  # not yet: it may still be removed
    followed_to = {("Thing", 3): (Lifetime(0x30, first_seen=50.0, last_seen=111.0),)}
    assert len(judge(deleted, [KAFKA], followed_to)) == 1


def test_a_loose_window_judges_only_its_own_time_and_namespace() -> None:
    stayed_put = {("Thing", 3): (Lifetime(0x30, first_seen=0.0, last_seen=300.0),)}
    before = Gone("ns", "iota-dac-3", "u1", 90.0, 99.0)
    after_the_tail = Gone("ns", "iota-dac-3", "u2", 123.0, 123.5)
    elsewhere = Gone("other", "iota-dac-3", "u3", 104.0, 104.5)
    other_kind = Gone("ns", "iota-rules-engine-3", "u4", 104.0, 104.5)
    assert judge([before, after_the_tail, elsewhere, other_kind], [KAFKA], stayed_put) == []


def test_a_pod_deleted_while_the_database_is_frozen_is_a_violation_even_as_a_scale_down() -> None:
    frozen = BlindWindow("PostgreSQL SIGSTOP", {"ns"}, start=100.0, end=110.0)
    removed = {("Thing", 3): (Lifetime(0x30, first_seen=50.0, last_seen=103.8),)}
    scaled_down = [Gone("ns", "iota-dac-3", "uid-old", 104.0, 105.0)]
    assert judge(scaled_down, [frozen], removed) == [
        "pod ns/iota-dac-3 (uid uid-old) deleted while blind (PostgreSQL SIGSTOP, +4.0..+5.0s "
        "from its start)"
    ]
    before = [Gone("ns", "iota-dac-3", "uid-old", 90.0, 99.0)]
    assert judge(before, [frozen], removed) == []


def test_the_checker_reads_kinds_from_policy_yaml_itself() -> None:
    text = (
        "kinds:\n  Thing: {table: T, instanceName: iota-dac, template: x}\n"
        "  Rule: {table: R, instanceName: re, template: y, namespace: n2}\n"
    )
    assert kinds_of(text) == [
        KindSpec("Thing", "T", "iota-dac", "iota"),
        KindSpec("Rule", "R", "re", "n2"),
    ]
