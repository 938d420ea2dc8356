"""The instance history on the rig's real ZooKeeper: an instance node deleted and created again
between two of its reads (one transaction: no read can fall in between) is two lifetimes, one
that stays is one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient

from tests.chaos.history import InstanceHistory, Lifetime
from tests.chaos.invariants import ROOT
from tests.support.polling import eventually

THING = f"{ROOT}/Thing"


@pytest.fixture
def kazoo(zk_hosts: str) -> Iterator[KazooClient]:
    client = KazooClient(hosts=zk_hosts, timeout=10)
    client.start(timeout=15)
    yield client
    client.stop()
    client.close()


@pytest.fixture
def history(zk_hosts: str, kazoo: KazooClient) -> Iterator[InstanceHistory]:
    kazoo.ensure_path(THING)
    for n in (3, 4):
        kazoo.create(f"{THING}/{n}", b"{}")
    followed = InstanceHistory(zk_hosts).start()
    yield followed
    followed.close()


def lives(history: InstanceHistory, n: int) -> tuple[Lifetime, ...]:
    return history.lifetimes().get(("Thing", n), ())


def test_an_instance_deleted_and_created_again_between_two_reads_is_two_lifetimes(
    history: InstanceHistory, kazoo: KazooClient
) -> None:
    (first,) = lives(history, 4)
    recreate = kazoo.transaction()
    recreate.delete(f"{THING}/4")
    recreate.create(f"{THING}/4", b"{}")
    recreate.commit()
    old, new = eventually(lambda: len(lives(history, 4)) == 2 and lives(history, 4))
    assert old.czxid == first.czxid != new.czxid
    assert old.last_seen < new.first_seen


def test_an_instance_that_stays_is_one_lifetime_followed_on(
    history: InstanceHistory, kazoo: KazooClient
) -> None:
    (start,) = lives(history, 3)
    kazoo.set(f"{THING}/3", b'{"used": 0}')  # a write to the node is no new node
    kazoo.create(f"{THING}/5", b"{}")  # a sibling created: the kind's children re-read
    eventually(lambda: lives(history, 5))
    later = eventually(
        lambda: history.followed_until() > start.first_seen + 1 and lives(history, 3)
    )
    assert [(life.czxid, life.first_seen) for life in later] == [(start.czxid, start.first_seen)]
    assert later[0].last_seen > start.first_seen + 1
