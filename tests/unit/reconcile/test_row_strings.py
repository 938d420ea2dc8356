"""An assignment read from ZooKeeper ends up in the rows' string objects (reconcile/row_strings.py):
the pass plans with it and the store keeps it, at the same versions, so nothing is re-planned
and no second copy of the ids stays; a write that raced the read is not undone."""

from __future__ import annotations

from pathlib import Path

from reconciler.domain.ids import same_ids
from reconciler.domain.model import Assignment, Instance, WriteInstance
from tests.support.fakes import FakeLeadership, FakeStore
from tests.support.pass_world import World


def _folder(tmp_path: Path, name: str) -> Path:
    (tmp_path / name).mkdir()
    return tmp_path / name


def _standby(folder: Path, leader: World) -> World:
    """A second daemon on the leader's ZooKeeper, with its own rows (other string objects)."""
    standby = World(folder)
    standby.store = standby.ports.store = leader.store
    standby.ports.leadership = FakeLeadership(leading=False)
    return standby


def _in_rows_strings(world: World, kind: str, assignment: Assignment) -> bool:
    rows = world.state.rows.get(kind)
    assert rows is not None
    row_of = {x: x for x in rows}
    return all(x is row_of[x] for inst in assignment.values() for x in inst.ids)


def test_a_standby_holds_the_assignment_in_its_rows_strings_at_the_same_versions(
    tmp_path: Path,
) -> None:
    leader = World(_folder(tmp_path, "leader"))
    leader.converge()
    standby = _standby(_folder(tmp_path, "standby"), leader)
    before = leader.store.read("Thing")
    theirs = {x: x for x in standby.rows.tables["Thing"]}
    assert not any(x is theirs[x] for inst in before.values() for x in inst.ids)

    first = standby.run()

    assert not any(isinstance(op, WriteInstance) for op in first.plan.ops)
    kept = leader.store.read("Thing")
    assert _in_rows_strings(standby, "Thing", kept)
    assert all(same_ids(kept[i].ids, x.ids) and kept[i] == x for i, x in before.items())
    assert {i: x.versions for i, x in kept.items()} == {i: x.versions for i, x in before.items()}
    seen = standby.state.world.assignment("Thing")
    assert seen is not None and _in_rows_strings(standby, "Thing", seen)
    hits = standby.state.plan_memo.hits
    standby.run()
    assert standby.state.plan_memo.hits > hits  # the same versions: the last plan still holds
    assert all(x.ids is kept[i].ids for i, x in leader.store.read("Thing").items())


class _WrittenAfterRead(FakeStore):
    """The leader rewrites instance 0 right after the standby's read, before it adopts."""

    written: Instance | None = None

    def read(self, kind: str) -> Assignment:
        got = super().read(kind)
        if kind == "Thing" and self.written is None:
            now = got[0]
            smaller = Instance(0, now.ids - {min(now.ids)}, now.count, versions=now.versions)
            self.written = self.write_instance(kind, smaller, create=False)
        return got


def test_a_write_between_the_read_and_the_adoption_is_not_undone(tmp_path: Path) -> None:
    leader = World(_folder(tmp_path, "leader"))
    leader.converge()
    racing = _WrittenAfterRead(data=leader.store.data, _versions=leader.store._versions)
    leader.store = leader.ports.store = racing
    standby = _standby(_folder(tmp_path, "standby"), leader)

    standby.run()

    assert racing.written is not None and racing.data["Thing"][0] is racing.written
    others = {i: x for i, x in racing.data["Thing"].items() if i != 0}
    assert others and _in_rows_strings(standby, "Thing", others)  # adopted, all but the one
