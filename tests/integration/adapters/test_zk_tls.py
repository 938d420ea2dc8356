"""TLS to ZooKeeper's secure port (issue 13, SECURITY.md "ZooKeeper"): a second ZooKeeper
from the rig serving `secureClientPort` (`ZooKeeper(tls=True)`: the Netty connection factory,
PEM stores, a throw-away CA, client certificates required). Clients that trust another CA or
show no certificate are refused; the daemon speaks TLS with its certificate and its digest
login, and converges.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.handlers.threading import KazooTimeoutError

from reconciler.adapters.zookeeper.access import same_acl
from rig.servers import ZooKeeper
from tests.support.daemon import running, settings_for
from tests.support.fleet import eventually, read_layout, seed, write_policy
from tests.support.serving import serve
from tests.support.zk_acl import (
    DAEMON_PW,
    OWNER,
    ROOT,
    WORLD_READ,
    client,
    close,
    converged,
    login,
)


@pytest.fixture(scope="module")
def tls_zk() -> Iterator[ZooKeeper]:
    yield from serve(ZooKeeper(tls=True))


def tls_client(server: ZooKeeper, **kw: Any) -> KazooClient:
    assert server.tls_hosts is not None
    c = KazooClient(
        hosts=server.tls_hosts,
        timeout=3,
        use_ssl=True,
        check_hostname=True,
        connection_retry={"max_tries": 1},
        **kw,
    )
    try:
        c.start(timeout=5)
    except BaseException:
        close(c)
        raise
    return c


def test_clients_without_the_ca_or_a_certificate_are_refused(tls_zk: ZooKeeper) -> None:
    pki = tls_zk.pki
    assert pki is not None
    cert = {"certfile": str(pki.client_cert), "keyfile": str(pki.client_key)}
    with pytest.raises(KazooTimeoutError):
        tls_client(tls_zk, ca=str(pki.other_ca), **cert)  # the server is not who it claims
    with pytest.raises(KazooTimeoutError):
        tls_client(tls_zk, ca=str(pki.ca))  # no client certificate: ssl.clientAuth=need
    good = tls_client(tls_zk, ca=str(pki.ca), **cert)
    try:
        assert "zookeeper" in good.get_children("/")
    finally:
        close(good)


def test_the_daemon_over_tls_with_its_login_converges(
    tls_zk: ZooKeeper, pg_url: str, kube: Any, kube_namespace: str, tmp_path: Path
) -> None:
    pki = tls_zk.pki
    assert pki is not None and tls_zk.tls_hosts is not None
    seed(pg_url, things=20, rules=5)
    policy = write_policy(
        tmp_path / "policy.yaml",
        kube_namespace,
        Thing={"initInstances": 2},
        Rule={"initInstances": 1},
    )
    chroot = f"/tls-{uuid.uuid4().hex[:8]}"
    admin = client(tls_zk.hosts)  # the plain port, for the chroot
    admin.ensure_path(chroot)
    settings = settings_for(
        tls_zk.tls_hosts + chroot,
        pg_url,
        kube,
        policy,
        **login(
            zk_tls_ca_file=pki.ca, zk_tls_cert_file=pki.client_cert, zk_tls_key_file=pki.client_key
        ),
    )
    try:
        with running(settings) as d:
            eventually(converged(d.app), timeout=30)
            assert d.app.zk.session.client.use_ssl
        owner = client(tls_zk.hosts + chroot, auth_data=[("digest", f"reconciler:{DAEMON_PW}")])
        try:
            layout = read_layout(owner, "Thing")
            assert sum(len(i["ids"]) for i in layout.values()) == 20
            acls, _ = owner.get_acls(f"{ROOT}/Thing/0/resources")
            assert same_acl(acls, [OWNER, WORLD_READ])
            owner.delete("/iota", recursive=True)
        finally:
            close(owner)
    finally:
        with contextlib.suppress(Exception):
            admin.delete(chroot, recursive=True)
        close(admin)
