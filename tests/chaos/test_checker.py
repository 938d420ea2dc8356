"""The invariant checker's own judgements, on layouts and pod lists made by hand: it must see
each kind of damage, or a clean chaos run means nothing."""

from __future__ import annotations

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


def test_a_pod_deleted_in_a_strict_window_is_a_violation_even_without_successor() -> None:
    window = BlindWindow("pg", {"ns"}, start=100.0, end=110.0)
    gone = [Gone("ns", "iota-dac-3", "uid-old", 104.0, 105.0)]
    assert len(blind_deletions(gone, [window], {"ns": {}})) == 1
    before = [Gone("ns", "iota-dac-3", "uid-old", 90.0, 99.0)]
    assert blind_deletions(before, [window], {"ns": {}}) == []


def test_a_loose_window_flags_a_recreated_pod_but_not_a_scale_down() -> None:
    window = BlindWindow("kafka", {"ns"}, start=100.0, end=110.0, strict=False, tail=5.0)
    gone = [Gone("ns", "iota-dac-3", "old", 112.0, 113.0)]
    assert blind_deletions(gone, [window], {"ns": {}}) == []
    assert len(blind_deletions(gone, [window], {"ns": {"iota-dac-3": "new"}})) == 1


def test_the_checker_reads_kinds_from_policy_yaml_itself() -> None:
    text = (
        "kinds:\n  Thing: {table: T, instanceName: iota-dac, template: x}\n"
        "  Rule: {table: R, instanceName: re, template: y, namespace: n2}\n"
    )
    assert kinds_of(text) == [
        KindSpec("Thing", "T", "iota-dac", "iota"),
        KindSpec("Rule", "R", "re", "n2"),
    ]
