"""The rollback of docs/migration.md "Rolling back", run as an operator would on the rig: a
daemon with a ZooKeeper login and RECONCILER_ZK_ALIGN_ACLS takes over an old-world layout
(every node open), closes it to clients without the login and adds nodes of its own; it is
stopped, `reconciler zk-acl open` runs, and a client without a login (the old orchestrator:
plain kazoo) writes the layout again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import OPEN_ACL_UNSAFE

from reconciler.adapters.sql.inventory import insert_ids
from tests.support.fleet import eventually, fleet, read_layout, seed, uuids, write_policy
from tests.support.processes import DaemonProcess
from tests.support.zk_acl import DAEMON_PW, ROOT, client, close, owner_client, tree

CLI = Path(sys.executable).parent / "reconciler"


def zk_acl(
    tmp_path: Path, zk_hosts: str, *args: str, answer: str = ""
) -> subprocess.CompletedProcess[str]:
    """`reconciler zk-acl ARGS` with the daemon's ZooKeeper settings, as the operator runs it."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "RECONCILER_ZK_HOSTS": zk_hosts,
        "RECONCILER_ZK_USERNAME": "reconciler",
        "RECONCILER_ZK_PASSWORD": DAEMON_PW,
    }
    res = subprocess.run(
        [str(CLI), "zk-acl", *args],
        capture_output=True,
        text=True,
        input=answer,
        env=env,
        cwd=tmp_path,  # no .env from the repository
        timeout=60,
    )
    assert "Traceback" not in res.stderr, res.stderr
    return res


def refused(action: Any) -> bool:
    try:
        action()
    except NoAuthError:
        return True
    return False


def not_open(c: KazooClient) -> list[str]:
    return sorted(
        path
        for path, (acls, stat) in tree(c, "/iota").items()
        if acls != OPEN_ACL_UNSAFE and not stat.ephemeralOwner
    )


def test_the_rollback_steps_let_the_old_orchestrator_write_its_layout_again(
    tmp_path: Path,
    zk_hosts: str,
    kazoo_client: KazooClient,
    pg_url: str,
    kube: Any,
    kube_namespace: str,
) -> None:
    seed(pg_url, things=30, rules=5)
    policy = write_policy(
        tmp_path / "policy.yaml",
        kube_namespace,
        tick=1,
        Thing={"initInstances": 2},
        Rule={"initInstances": 1, "resourcePerInstance": 10},
    )
    with fleet(zk_hosts, pg_url, kube.api_client(), policy) as old:  # the old world: all open
        old.tick()
        old.tick()
    worker = kazoo_client
    worker.create(f"{ROOT}/Thing/0/tmp/status", b"up", ephemeral=True)  # a worker's session
    inherited = tree(worker)
    assert all(acls == OPEN_ACL_UNSAFE for acls, _ in inherited.values())

    secured = {
        "RECONCILER_ZK_USERNAME": "reconciler",
        "RECONCILER_ZK_PASSWORD": DAEMON_PW,
        "RECONCILER_ZK_ALIGN_ACLS": "true",
    }
    daemon = DaemonProcess(tmp_path, zk_hosts, pg_url, kube, policy, "secured-0", env=secured)
    with owner_client(zk_hosts) as owner:
        try:
            aligned = eventually(
                lambda: [e for e in daemon.events() if e.get("event") == "zookeeper ACLs in line"],
                timeout=60,
            )
            assert aligned[0]["changed"] == len(inherited) - 1  # all but the worker's node
            insert_ids(pg_url, "Rule", uuids(10))  # past Rule/0's room: the daemon adds Rule/1
            eventually(lambda: len(read_layout(owner, "Rule")) == 2, timeout=60)
            assert refused(lambda: worker.set(f"{ROOT}/Thing/0", b'{"used":0,"count":1}'))
            # While a daemon runs, `open` refuses: it would keep creating closed nodes.
            busy = zk_acl(tmp_path, zk_hosts, "open", "--yes")
            assert busy.returncode == 2, busy.stderr
            assert "secured-0" in busy.stderr and "stop every daemon first" in busy.stderr
        finally:
            daemon.close()  # step 1: stop the reconciler (SIGTERM: it releases leadership)
        assert daemon.proc.returncode == 0
        closed = not_open(owner)
        assert f"{ROOT}/Rule/1/resources" in closed and f"{ROOT}/_leader" in closed
        print(f"nodes closed after the secured daemon: {len(closed)}")

        # step 2: `reconciler zk-acl open` (a dry run first lists the nodes, changes none)
        dry = zk_acl(tmp_path, zk_hosts, "open", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert f"{len(closed)} would open" in dry.stdout
        listed = [line.split()[0] for line in dry.stdout.splitlines() if line.startswith("  /")]
        assert sorted(listed) == closed
        assert not_open(owner) == closed
        declined = zk_acl(tmp_path, zk_hosts, "open", answer="n\n")
        assert declined.returncode == 1 and f"Open these {len(closed)} nodes" in declined.stdout
        assert not_open(owner) == closed
        res = zk_acl(tmp_path, zk_hosts, "open", "--yes")
        assert res.returncode == 0, res.stdout + res.stderr
        assert f"opened {len(closed)} nodes" in res.stdout
        assert not_open(owner) == []
        assert worker.get_acls(f"{ROOT}/Thing/0/tmp/status")[0] == OPEN_ACL_UNSAFE
        again = zk_acl(tmp_path, zk_hosts, "open", "--yes")
        assert again.returncode == 0 and "nothing to do" in again.stdout

        # step 3: the old orchestrator, without a login, writes its layout again
        orchestrator = client(zk_hosts)
        try:
            thing = f"{ROOT}/Thing"
            orchestrator.set(f"{thing}/0", json.dumps({"used": 0, "count": 5000}).encode())
            orchestrator.set(f"{thing}/0/resources", b'{"ids":[]}')
            orchestrator.set(f"{thing}/1/_reload", b'{"times":1}')
            orchestrator.set(f"{ROOT}/Rule/1", b'{"used":0,"count":10}')  # the daemon's own
            orchestrator.create(f"{thing}/1/tmp/status", b"up", ephemeral=True)
            tx = orchestrator.transaction()
            tx.create(f"{thing}/2", b'{"used":0,"count":5000}')
            tx.create(f"{thing}/2/tmp", b"")
            tx.create(f"{thing}/2/_reload", b'{"times":0}')
            tx.create(f"{thing}/2/resources", b'{"ids":[]}')
            assert not any(isinstance(r, Exception) for r in tx.commit())
            orchestrator.delete(f"{ROOT}/Rule/1", recursive=True)
            orchestrator.delete(f"{thing}/2", recursive=True)
            assert sorted(read_layout(orchestrator, "Thing")) == [0, 1]
        finally:
            close(orchestrator)
        shown = zk_acl(tmp_path, zk_hosts, "show")
        assert shown.returncode == 0 and "not open: 0;" in shown.stdout, shown.stdout
        print(dry.stdout, res.stdout, shown.stdout, sep="\n")
