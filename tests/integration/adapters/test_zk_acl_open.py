"""`reconciler zk-acl open`'s adapter (reconciler/adapters/zookeeper/acl_open.py) on the rig's
ZooKeeper: which nodes it opens and which it leaves alone, and what it reports about nodes it
may not touch. The rollback as a whole: tests/integration/cli/test_zk_acl_rollback.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient
from kazoo.security import OPEN_ACL_UNSAFE, make_digest_acl

from reconciler.adapters.zookeeper.access import ZkAccess
from reconciler.adapters.zookeeper.acl_open import contenders, open_acls, survey
from reconciler.adapters.zookeeper.election import ZkElection
from reconciler.adapters.zookeeper.session import ZkSession
from tests.support.fleet import eventually
from tests.support.zk_acl import (
    DAEMON_PW,
    ROOT,
    WORLD_READ,
    client,
    close,
    owner_client,
    tree,
)

WORKERS = make_digest_acl("worker", "pw", all=True)  # a worker's own node, its own ACL


@pytest.fixture
def daemon_session(zk_hosts: str) -> Iterator[ZkSession]:
    """A session logged in as the daemon is (its nodes get the daemon's ACL)."""
    session = ZkSession(zk_hosts, access=ZkAccess("reconciler", DAEMON_PW))
    session.start()
    yield session
    session.stop()


@pytest.fixture
def owner(zk_hosts: str) -> Iterator[KazooClient]:
    with owner_client(zk_hosts) as c:
        yield c


def test_open_covers_the_ancestors_the_daemon_made_and_leaves_the_workers_nodes(
    zk_hosts: str, daemon_session: ZkSession, owner: KazooClient
) -> None:
    # An empty ZooKeeper: the daemon creates /iota and the root with its ACL.
    c = daemon_session.client
    c.ensure_path(f"{ROOT}/Thing/0")
    tmp = f"{ROOT}/Thing/0/tmp"
    c.create(tmp, b"", acl=daemon_session.node_acl(tmp))  # the readers may add nodes here
    c.create(f"{ROOT}/Thing/0/resources", b'{"ids":[]}')
    worker = client(zk_hosts)
    try:
        worker.create(f"{ROOT}/Thing/0/tmp/status", b"up", ephemeral=True)
        worker.create(f"{ROOT}/Thing/0/tmp/report", b"", acl=[WORKERS, WORLD_READ])
        found = survey(daemon_session)
        paths = [node.path for node in found.closed]
        assert paths == [
            "/iota",
            ROOT,
            f"{ROOT}/Thing",
            f"{ROOT}/Thing/0",
            f"{ROOT}/Thing/0/resources",
            f"{ROOT}/Thing/0/tmp",
        ]
        assert found.refused == [] and found.ephemeral == 0  # tmp's children: not walked
        report = open_acls(daemon_session, found.closed)
        assert sorted(report.changed) == sorted(paths)
        assert report.refused == [] and report.raced == []
        acls = tree(owner, "/iota")
        for path in paths:
            assert acls[path][0] == OPEN_ACL_UNSAFE, path
        assert acls[f"{ROOT}/Thing/0/tmp/report"][0] != OPEN_ACL_UNSAFE  # the worker's
        assert survey(daemon_session).closed == []
    finally:
        close(worker)


def test_nodes_another_identity_owns_are_reported_not_opened(
    daemon_session: ZkSession, owner: KazooClient
) -> None:
    c = daemon_session.client
    c.ensure_path(f"{ROOT}/Thing")
    c.create(f"{ROOT}/Rule", b"", acl=[WORKERS, WORLD_READ])  # readable, not ours to change
    found = survey(daemon_session)
    assert f"{ROOT}/Rule" in [node.path for node in found.closed]
    report = open_acls(daemon_session, found.closed)
    assert report.refused == [f"{ROOT}/Rule"]
    assert f"{ROOT}/Thing" in report.changed


def test_contenders_names_the_daemons_holding_an_election_node(
    daemon_session: ZkSession, owner: KazooClient
) -> None:
    assert contenders(daemon_session) == []  # no root yet
    election = ZkElection(daemon_session.client, daemon_session.root, "reconciler-0", lambda: None)
    election.start()
    try:
        eventually(lambda: contenders(daemon_session) == ["reconciler-0"], timeout=10)
    finally:
        election.release()
    assert contenders(daemon_session) == []
