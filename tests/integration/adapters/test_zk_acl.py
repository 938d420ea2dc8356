"""ZooKeeper with digest ACLs switched on (issue 13, SECURITY.md "ZooKeeper").

On the rig's ZooKeeper: the daemon, logged in with its digest identity, converges as before
and every node it creates carries its ACL; an anonymous client reads (readers = anyone) but
cannot set, create or delete anything of the layout; with the readers restricted to a
worker's identity, an anonymous client cannot even read and the worker can; the open nodes an
older orchestrator left are brought in line by the leader; a wrong password is refused,
named, never printed. TLS: test_zk_tls.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import (
    ACL,
    OPEN_ACL_UNSAFE,
    Id,
    Permissions,
)

from reconciler.adapters.sql.inventory import insert_ids
from reconciler.adapters.zookeeper.access import ZkAccess, same_acl
from reconciler.adapters.zookeeper.acl_align import align_acls
from reconciler.adapters.zookeeper.session import ZkSession
from reconciler.adapters.zookeeper.store import ZkStore, ZkTransactionError
from reconciler.domain.errors import SourceUnavailable
from reconciler.domain.model import Instance
from tests.support.daemon import running, settings_for
from tests.support.fleet import eventually, fleet, read_layout, seed, uuids, write_policy
from tests.support.zk_acl import (
    AREA,
    DAEMON_PW,
    OWNER,
    ROOT,
    WORKER_ID,
    WORKER_PW,
    WORLD,
    WORLD_READ,
    client,
    close,
    converged,
    login,
    owner_client,
    tree,
)


@pytest.fixture
def owner(zk_hosts: str) -> Iterator[KazooClient]:
    with owner_client(zk_hosts) as c:
        yield c


def is_tmp(path: str) -> bool:
    parts = path.removeprefix(ROOT + "/").split("/")
    return len(parts) == 3 and parts[2] == "tmp" and not parts[0].startswith("_")


def expected(path: str, readers: list[Id]) -> list[ACL]:
    perms = AREA if is_tmp(path) else Permissions.READ
    return [OWNER, *(ACL(perms, r) for r in readers)]


def refused(action: Callable[[], object]) -> bool:
    try:
        action()
    except NoAuthError:
        return True
    return False


def test_the_daemon_with_its_login_converges_and_anonymous_clients_only_read(
    zk_hosts: str,
    owner: KazooClient,
    kazoo_client: KazooClient,
    pg_url: str,
    kube: Any,
    kube_namespace: str,
    tmp_path: Path,
) -> None:
    seed(pg_url, things=40, rules=5)
    policy = write_policy(
        tmp_path / "policy.yaml",
        kube_namespace,
        tick=1,
        Thing={"initInstances": 2},
        Rule={"initInstances": 1},
    )
    with running(settings_for(zk_hosts, pg_url, kube, policy, **login())) as d:
        eventually(converged(d.app), timeout=30)
        # Every node the daemon made carries its ACL: the layout, the kinds, the election.
        nodes = tree(owner, "/iota")
        assert {f"{ROOT}/Thing/1/tmp", f"{ROOT}/_leader"} <= set(nodes)
        for path, (acls, stat) in nodes.items():
            if stat.ephemeralOwner:  # the leader's lock node: the default ACL too
                assert same_acl(acls, [OWNER, WORLD_READ]), path
            else:
                assert same_acl(acls, expected(path, [WORLD])), path

        anonymous = kazoo_client
        layout = read_layout(anonymous, "Thing")  # readers = anyone: the workers read
        assert sum(len(i["ids"]) for i in layout.values()) == 40
        base = f"{ROOT}/Thing/0"
        attempts: dict[str, Callable[[], object]] = {
            "set resources": lambda: anonymous.set(f"{base}/resources", b'{"ids":[]}'),
            "set instance": lambda: anonymous.set(base, b'{"used":0,"count":1}'),
            "set _reload": lambda: anonymous.set(f"{base}/_reload", b'{"times":99}'),
            "create instance": lambda: anonymous.create(f"{ROOT}/Thing/7", b"{}"),
            "create kind": lambda: anonymous.create(f"{ROOT}/Forged", b""),
            "create child": lambda: anonymous.create(f"{base}/extra", b""),
            "delete _reload": lambda: anonymous.delete(f"{base}/_reload"),
            "delete tmp": lambda: anonymous.delete(f"{base}/tmp"),
            "delete instance": lambda: anonymous.delete(base, recursive=True),
            "delete leader": lambda: anonymous.delete(f"{ROOT}/_leader", recursive=True),
            "pin": lambda: anonymous.create(f"{ROOT}/_scale", b""),
            "open the ACL": lambda: anonymous.set_acls(base, OPEN_ACL_UNSAFE),
        }
        allowed = [what for what, attempt in attempts.items() if not refused(attempt)]
        assert allowed == []
        # The workers' corner: a status node under tmp is theirs to keep (SPEC layout).
        anonymous.create(f"{base}/tmp/status", b"", ephemeral=True)
        assert read_layout(anonymous, "Thing") == read_layout(owner, "Thing")

        # Still converging as before: new rows are assigned through the ACL'd nodes.
        new = uuids(6)
        insert_ids(pg_url, "Thing", new)

        def assigned() -> bool:
            ids = {i for inst in read_layout(anonymous, "Thing").values() for i in inst["ids"]}
            return set(new) <= ids

        eventually(assigned, timeout=30)


def test_restricted_readers_shut_out_anonymous_clients_and_let_the_worker_read(
    zk_hosts: str,
    owner: KazooClient,
    kazoo_client: KazooClient,
    pg_url: str,
    kube: Any,
    kube_namespace: str,
    tmp_path: Path,
) -> None:
    seed(pg_url, things=20, rules=5)
    policy = write_policy(
        tmp_path / "policy.yaml",
        kube_namespace,
        Thing={"initInstances": 2},
        Rule={"initInstances": 1},
    )
    settings = settings_for(zk_hosts, pg_url, kube, policy, **login(zk_readers=WORKER_ID))
    with running(settings) as d:
        eventually(converged(d.app), timeout=30)
        worker_id = Id("digest", WORKER_ID.removeprefix("digest:"))
        for path, (acls, stat) in tree(owner).items():
            if not stat.ephemeralOwner:
                assert same_acl(acls, expected(path, [worker_id])), path

        anonymous = kazoo_client
        assert refused(lambda: anonymous.get_children(f"{ROOT}/Thing"))
        assert refused(lambda: anonymous.get(f"{ROOT}/Thing/0/resources"))
        worker = client(zk_hosts, auth_data=[("digest", f"worker:{WORKER_PW}")])
        try:
            layout = read_layout(worker, "Thing")
            assert sum(len(i["ids"]) for i in layout.values()) == 20
            assert refused(lambda: worker.set(f"{ROOT}/Thing/0/resources", b'{"ids":[]}'))
            assert refused(lambda: worker.create(f"{ROOT}/Thing/9", b"{}"))
            # its status node, ephemeral: the daemon sees the worker's session alive
            worker.create(f"{ROOT}/Thing/0/tmp/status", b"up", ephemeral=True)
            assert refused(lambda: anonymous.create(f"{ROOT}/Thing/1/tmp/status", b""))
            assert d.app.zk.read("Thing")[0].worker_session
        finally:
            close(worker)


def test_open_nodes_left_by_the_old_orchestrator_are_brought_in_line(
    zk_hosts: str,
    owner: KazooClient,
    kazoo_client: KazooClient,
    pg_url: str,
    kube: Any,
    kube_namespace: str,
    tmp_path: Path,
) -> None:
    seed(pg_url, things=30, rules=5)
    policy = write_policy(
        tmp_path / "policy.yaml",
        kube_namespace,
        Thing={"initInstances": 2},
        Rule={"initInstances": 1},
    )
    # The layout as a daemon without a login (or the old orchestrator) leaves it: all open,
    # and already what the policy asks, so the new daemon has nothing to write.
    with fleet(zk_hosts, pg_url, kube.api_client(), policy) as old:
        old.tick()
        old.tick()
    anonymous = kazoo_client
    anonymous.create(f"{ROOT}/Thing/0/tmp/status", b"up", ephemeral=True)  # a worker's
    anonymous.create(f"{ROOT}/Thing/1/tmp/report", b"")  # a worker's, persistent
    before = tree(anonymous)
    assert all(acls == OPEN_ACL_UNSAFE for acls, _ in before.values())
    persistent_daemon_nodes = [
        p for p, (_, s) in before.items() if not s.ephemeralOwner and "/tmp/" not in p
    ]

    with running(settings_for(zk_hosts, pg_url, kube, policy, **login(zk_align_acls=True))) as d:
        keeper = d.app.acl_keeper
        assert keeper is not None
        report = eventually(lambda: keeper.last, timeout=30)
        eventually(converged(d.app), timeout=30)
        assert sorted(report.changed) == sorted(persistent_daemon_nodes)
        assert report.checked == len(persistent_daemon_nodes) + 1  # and the new _leader
        assert report.refused == [] and report.raced == []
        after = tree(owner)
        for path in persistent_daemon_nodes:
            assert same_acl(after[path][0], expected(path, [WORLD])), path
        # the workers' own nodes keep the ACL their worker chose
        assert after[f"{ROOT}/Thing/0/tmp/status"][0] == OPEN_ACL_UNSAFE
        assert after[f"{ROOT}/Thing/1/tmp/report"][0] == OPEN_ACL_UNSAFE
        assert refused(lambda: anonymous.set(f"{ROOT}/Thing/0/resources", b'{"ids":[]}'))
        assert refused(lambda: anonymous.delete(f"{ROOT}/Thing/1/_reload"))
        # a converged layout: the alignment was the only change (no data written)
        assert all(after[p][1].version == before[p][1].version for p in persistent_daemon_nodes)


def test_without_align_acls_existing_nodes_keep_their_acls_and_new_ones_get_the_daemons(
    zk_hosts: str,
    owner: KazooClient,
    kazoo_client: KazooClient,
    pg_url: str,
    kube: Any,
    kube_namespace: str,
    tmp_path: Path,
) -> None:
    """RECONCILER_ZK_ALIGN_ACLS is off by default: the old orchestrator's open nodes stay open
    (it could still write them after a rollback); what the daemon creates carries its ACL."""
    seed(pg_url, things=30, rules=5)
    policy = write_policy(
        tmp_path / "policy.yaml",
        kube_namespace,
        tick=1,
        Thing={"initInstances": 2},
        Rule={"initInstances": 1, "resourcePerInstance": 10},
    )
    with fleet(zk_hosts, pg_url, kube.api_client(), policy) as old:
        old.tick()
        old.tick()
    anonymous = kazoo_client
    before = tree(anonymous)
    assert all(acls == OPEN_ACL_UNSAFE for acls, _ in before.values())

    with running(settings_for(zk_hosts, pg_url, kube, policy, **login())) as d:
        assert d.app.acl_keeper is None
        eventually(converged(d.app), timeout=30)
        insert_ids(pg_url, "Rule", uuids(10))  # past Rule/0's room: the daemon adds Rule/1
        eventually(lambda: len(read_layout(anonymous, "Rule")) == 2, timeout=30)
        after = tree(owner)
    for path in before:
        assert after[path][0] == OPEN_ACL_UNSAFE, path
    created = sorted(set(after) - set(before))
    assert f"{ROOT}/Rule/1/resources" in created and f"{ROOT}/_leader" in created
    for path in created:
        if not after[path][1].ephemeralOwner:
            assert same_acl(after[path][0], expected(path, [WORLD])), path
    # a client without the login still writes the inherited layout, not the daemon's nodes
    anonymous.set(f"{ROOT}/Thing/0/_reload", b'{"times":9}')
    assert refused(lambda: anonymous.set(f"{ROOT}/Rule/1", b'{"used":0,"count":10}'))


def test_a_wrong_password_is_refused_as_unavailable_naming_the_setting(
    zk_hosts: str, owner: KazooClient
) -> None:
    """ZooKeeper takes any digest login: a wrong password is another identity, refused at
    its first write (readers = anyone) or read (readers restricted). A refused write is a
    failed transaction naming the node, a refused read SourceUnavailable (the pass is
    blind); both name the setting to check, never the password."""
    right = ZkStore(ZkSession(zk_hosts, access=ZkAccess("reconciler", DAEMON_PW)))
    wrong_pw = f"wrong-{uuid.uuid4().hex}"
    wrong = ZkStore(ZkSession(zk_hosts, access=ZkAccess("reconciler", wrong_pw)))
    for store in (right, wrong):
        store.session.start()
    refusals: list[Exception] = []
    try:
        written = right.write_instance("Thing", Instance(0, frozenset({"a"}), 5), create=True)
        assert wrong.read("Thing")[0].ids == {"a"}  # anyone reads
        with pytest.raises(ZkTransactionError, match=r"NoAuthError at .*/Thing/0") as write:
            wrong.write_instance("Thing", replace(written, ids=frozenset()), create=False)
        with pytest.raises(ZkTransactionError, match=r"NoAuthError at .*/Thing/0/") as delete:
            wrong.delete_instance("Thing", 0)
        refusals += [write.value, delete.value]
        # The readers restricted to a worker (the leader's alignment): now it cannot read.
        restricted = ZkSession(zk_hosts, access=ZkAccess("reconciler", DAEMON_PW, (WORKER_ID,)))
        restricted.start()
        try:
            report = align_acls(restricted)
        finally:
            restricted.stop()
        assert report.checked == len(report.changed) == 6  # root, kind, instance, 3 children
        with pytest.raises(SourceUnavailable) as read:
            wrong.read("Thing")
        refusals.append(read.value)
        assert "read Thing: not allowed (NoAuthError)" in str(read.value)
        for refusal in refusals:
            text = str(refusal)
            assert "logged in as reconciler: check RECONCILER_ZK_PASSWORD" in text
            assert wrong_pw not in text
        assert right.read("Thing")[0].ids == {"a"}  # nothing changed
    finally:
        for store in (right, wrong):
            store.session.stop()
