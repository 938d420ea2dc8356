"""ZooKeeper logins and ACLs as the ACL, TLS and rollback tests use them: the daemon's owner
login, the workers' read access, a client per login, the tree's ACLs."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from kazoo.client import KazooClient
from kazoo.security import (
    ACL,
    Id,
    Permissions,
    make_digest_acl,
    make_digest_acl_credential,
)

ROOT = "/iota/orchestration"


DAEMON_PW = f"zk-{uuid.uuid4().hex}"


WORKER_PW = f"worker-{uuid.uuid4().hex}"


WORKER_ID = f"digest:{make_digest_acl_credential('worker', WORKER_PW)}"


OWNER = make_digest_acl("reconciler", DAEMON_PW, all=True)


WORLD = Id("world", "anyone")


WORLD_READ = ACL(Permissions.READ, WORLD)


AREA = Permissions.READ | Permissions.CREATE | Permissions.DELETE


def client(hosts: str, **kw: Any) -> KazooClient:
    c = KazooClient(hosts=hosts, timeout=10, **kw)
    c.start(timeout=15)
    return c


def close(c: KazooClient) -> None:
    with contextlib.suppress(Exception):
        c.stop()
        c.close()


def login(**extra: Any) -> dict[str, Any]:
    return {"zk_username": "reconciler", "zk_password": DAEMON_PW, **extra}


def converged(app: Any) -> Callable[[], bool]:
    def check() -> bool:
        state = app.daemon.state
        return (
            len(state.world.assignment("Thing") or {}) == 2
            and len(state.world.assignment("Rule") or {}) == 1
        )

    return check


@contextlib.contextmanager
def owner_client(hosts: str) -> Iterator[KazooClient]:
    """A client logged in as the daemon; removes `/iota` afterwards (an anonymous client, like
    the chroot fixture's, may not delete the daemon's nodes)."""
    c = client(hosts, auth_data=[("digest", f"reconciler:{DAEMON_PW}")])
    try:
        yield c
    finally:
        with contextlib.suppress(Exception):
            c.delete("/iota", recursive=True)
        close(c)


def tree(c: KazooClient, path: str = ROOT) -> dict[str, tuple[list[ACL], Any]]:
    """Every node under `path` (itself included): its ACL and stat."""
    acls, stat = c.get_acls(path)
    out = {path: (acls, stat)}
    for child in c.get_children(path):
        out.update(tree(c, f"{path}/{child}"))
    return out
