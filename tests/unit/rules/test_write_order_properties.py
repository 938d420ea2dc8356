"""Never two owners (issue 12): the planner's ZooKeeper writes, applied in order and stopped
after ANY of them (a SIGKILL between two writes), never leave an id on two instances; and
every write of an existing instance is a compare-and-set on the versions it was read with.

Pure: the plan's operations are applied with `model.applied`, one prefix at a time.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.domain.model import (
    Assignment,
    DeleteInstance,
    Instance,
    KindIntent,
    KindObserved,
    NodeVersions,
    Op,
    WriteInstance,
    applied,
)
from reconciler.policy.schema import KindPolicy
from reconciler.reconcile.planner import plan_kind
from reconciler.rules.write_order import instance_ops

NOW = 1_700_000_000.0


def policy(init: int, max_: int, per: int) -> KindPolicy:
    return KindPolicy(
        table="Thing",
        instance_name="iota-dac",
        template="t.yml",
        init_instances=init,
        max_instances=max_,
        resource_per_instance=per,
    )


def read_back(a: Assignment) -> Assignment:
    """`a` as ZooKeeper would hand it out: each instance with versions (all distinct)."""
    return {
        i: Instance(
            inst.instance_id,
            inst.ids,
            inst.count,
            inst.reload_times,
            versions=NodeVersions(7 * i + 1, 7 * i + 2, 7 * i + 3),
        )
        for i, inst in a.items()
    }


def owners(a: Assignment) -> Counter[str]:
    return Counter(rid for inst in a.values() for rid in inst.ids)


def store_ops(ops: list[Op]) -> list[Op]:
    return [op for op in ops if isinstance(op, WriteInstance | DeleteInstance)]


def assert_no_prefix_has_two_owners(start: Assignment, ops: list[Op]) -> Assignment:
    """Apply `ops` one by one; after each, no id has more owners than it had (at most 1
    where it had at most 1). Returns the end state."""
    before = owners(start)
    state = dict(start)
    for k, op in enumerate(store_ops(ops), 1):
        state = applied(state, [op])
        for rid, n in owners(state).items():
            assert n <= max(1, before[rid]), f"{rid} on {n} instances after write {k}: {op}"
    return state


@st.composite
def rescales(draw: st.DrawFn) -> tuple[KindPolicy, Assignment, frozenset[str], KindIntent]:
    """A converged layout, then other rows, another sizing policy and intent."""
    n = draw(st.integers(0, 240))
    rows = frozenset(f"id-{i:04d}" for i in range(n))
    first = policy(draw(st.integers(1, 8)), 100, draw(st.integers(1, 80)))
    ops, _ = plan_kind(first, KindObserved("Thing", rows, {}, None), NOW)
    start = read_back(applied({}, ops))
    deleted = (
        frozenset(draw(st.sets(st.sampled_from(sorted(rows)), max_size=40))) if rows else set()
    )
    added = frozenset(f"new-{i:04d}" for i in range(draw(st.integers(0, 60))))
    init = draw(st.integers(1, 12))
    second = policy(init, draw(st.integers(max(3, init), 100)), draw(st.integers(1, 80)))
    intent = KindIntent(
        scale_target=draw(st.one_of(st.none(), st.integers(1, 15))),
        rebalance=draw(st.booleans()),
        resize=draw(st.booleans()),
    )
    return second, start, (rows - deleted) | added, intent


@settings(max_examples=300, deadline=None)
@given(rescales())
def test_property_a_rescale_stopped_after_any_write_leaves_no_id_on_two_instances(w) -> None:
    p, start, rows, intent = w
    ops, _ = plan_kind(p, KindObserved("Thing", rows, start, None), NOW, intent)
    end = assert_no_prefix_has_two_owners(start, ops)
    assert all(n == 1 for n in owners(end).values())


@settings(max_examples=200, deadline=None)
@given(rescales())
def test_property_every_write_of_an_existing_instance_is_on_the_versions_read(w) -> None:
    p, start, rows, intent = w
    ops, _ = plan_kind(p, KindObserved("Thing", rows, start, None), NOW, intent)
    for op in store_ops(ops):
        if isinstance(op, DeleteInstance):
            assert op.versions == start[op.instance_id].versions
        elif op.create:
            assert op.instance.instance_id not in start and op.instance.versions is None
        else:
            assert op.instance.versions == start[op.instance.instance_id].versions


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.integers(0, 6),
        st.frozensets(st.sampled_from([f"id-{i}" for i in range(30)]), max_size=12),
        max_size=6,
    ),
    st.dictionaries(
        st.integers(0, 6),
        st.frozensets(st.sampled_from([f"id-{i}" for i in range(30)]), max_size=12),
        max_size=6,
    ),
)
def test_property_any_layout_to_any_other_never_adds_a_second_owner(before, after) -> None:
    # Arbitrary layouts, duplicates included (an older writer's crash): a prefix of the
    # writes never gives an id an owner more than it had, and the end is `after` exactly.
    start = read_back({i: Instance(i, ids, 12, 3) for i, ids in before.items()})
    seen: set[str] = set()
    final: dict[int, frozenset[str]] = {}
    for i in sorted(after):  # `final` itself has no duplicates, as the planner's never has
        final[i] = after[i] - seen
        seen |= final[i]
    ops = instance_ops("Thing", start, final, dict.fromkeys(final, 12))
    end = assert_no_prefix_has_two_owners(start, ops)
    assert {i: inst.ids for i, inst in end.items()} == final


def test_an_instance_that_gives_and_takes_is_written_twice_letting_go_first() -> None:
    start = read_back(
        {0: Instance(0, frozenset({"a", "b"}), 2, 5), 1: Instance(1, frozenset({"c"}), 2, 0)}
    )
    final = {0: frozenset({"a", "c"}), 1: frozenset({"b"})}  # a swap of b and c
    ops = instance_ops("Thing", start, final, {0: 2, 1: 2})
    assert [(op.instance.instance_id, sorted(op.instance.ids)) for op in ops] == [  # type: ignore[union-attr]
        (0, ["a"]),  # both let go of what the other takes ...
        (1, []),
        (0, ["a", "c"]),  # ... then both take
        (1, ["b"]),
    ]
    # Each id-set change is one _reload bump: both workers are told twice.
    assert [op.instance.reload_times for op in ops] == [6, 1, 7, 2]  # type: ignore[union-attr]
    assert_no_prefix_has_two_owners(start, ops)


def test_a_removed_instance_is_emptied_before_its_ids_go_elsewhere_then_deleted() -> None:
    start = read_back({i: Instance(i, frozenset({f"id-{i}"}), 1, 2) for i in range(3)})
    final = {0: frozenset({"id-0", "id-2"}), 1: frozenset({"id-1"})}
    ops = instance_ops("Thing", start, final, {0: 2, 1: 2})
    described = [
        (type(op).__name__, op.instance.instance_id, sorted(op.instance.ids))
        if isinstance(op, WriteInstance)
        else (type(op).__name__, op.instance_id, [])  # type: ignore[union-attr]
        for op in ops
    ]
    assert described == [
        ("WriteInstance", 2, []),  # emptied, _reload bumped: its worker lets go of id-2
        ("WriteInstance", 0, ["id-0", "id-2"]),
        ("WriteInstance", 1, ["id-1"]),  # count 1 -> 2, no id moves
        ("DeleteInstance", 2, []),
    ]
    assert ops[0].instance.reload_times == 3  # type: ignore[union-attr]
    assert ops[0].gives == {"id-2"} and ops[1].takes == {"id-2"}  # type: ignore[union-attr]
