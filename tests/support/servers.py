"""Fixtures that hand tests real servers (see docs/development.md, "The test rig").

Session-scoped servers start lazily, the first time a test asks for one, and stop at the end of
the session. A server that can't be provisioned or doesn't become ready fails the test with a
message naming the server, the command and its log file: nothing is skipped.

A pytest plugin (tests/conftest.py loads it), so that every test directory can ask for a
server: tests/integration, and the tests of rig/ and dashboards/ beside the code they test.
Every test under tests/integration, and every test that asks for a server, gets the marker
``integration``. A test that stops a server
(``zk.stop()``) may leave it stopped: it is started again after that test.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rig.kube import Kube
from rig.servers import Kafka, Mosquitto, Postgres, Prometheus, Server, ZooKeeper
from tests.support.serving import serve

_INTEGRATION = Path(__file__).resolve().parents[1] / "integration"
_started: list[Server] = []


# A test that asks for one of these (directly or through another fixture) needs the rig.
SERVER_FIXTURES = frozenset({"zk", "pg", "mqtt", "kafka", "prometheus", "kube"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if (
            SERVER_FIXTURES & set(getattr(item, "fixturenames", ()))
            or _INTEGRATION in Path(str(item.path)).resolve().parents
        ):
            item.add_marker(pytest.mark.integration)


def _serve(server: Server) -> Iterator[Any]:
    """A session server (see `serving.serve`), restarted after a test that stopped it."""
    yield from serve(server, _started)


@pytest.fixture(autouse=True)
def _restart_stopped_servers() -> Iterator[None]:
    """A test that stopped (or paused) a session server and did not start (or resume) it
    again leaves it running."""
    yield
    for server in list(_started):
        if server.paused:
            server.resume()
        if not server.running:
            server.start()


def _hex() -> str:
    return uuid.uuid4().hex[:10]


# ------------------------------------------------------------------ ZooKeeper


@pytest.fixture(scope="session")
def zk() -> Iterator[ZooKeeper]:
    """ZooKeeper: ``.hosts`` ("127.0.0.1:PORT"), ``.stop()``, ``.start()``, ``.log_path``."""
    yield from _serve(ZooKeeper())


@pytest.fixture
def zk_hosts(zk: ZooKeeper) -> Iterator[str]:
    """A connect string with a fresh chroot for this test: "127.0.0.1:PORT/t-<hex>"."""
    from kazoo.client import KazooClient

    zk.start()
    chroot = f"/t-{_hex()}"
    admin = KazooClient(hosts=zk.hosts, timeout=10)
    admin.start(timeout=15)
    try:
        admin.ensure_path(chroot)
    finally:
        admin.stop()
        admin.close()
    yield zk.hosts + chroot
    if zk.running:
        admin = KazooClient(hosts=zk.hosts, timeout=10)
        with contextlib.suppress(Exception):
            admin.start(timeout=5)
            admin.delete(chroot, recursive=True)
        with contextlib.suppress(Exception):
            admin.stop()
            admin.close()


@pytest.fixture
def kazoo_client(zk_hosts: str) -> Iterator[Any]:
    """A started KazooClient on ``zk_hosts`` (this test's chroot); stopped after the test."""
    from kazoo.client import KazooClient

    client = KazooClient(hosts=zk_hosts, timeout=10)
    client.start(timeout=15)
    yield client
    with contextlib.suppress(Exception):
        client.stop()
        client.close()


# ------------------------------------------------------------------ PostgreSQL


@pytest.fixture(scope="session")
def pg() -> Iterator[Postgres]:
    """PostgreSQL 15: ``.url`` (SQLAlchemy URL of db `postgres`), ``.stop()``, ``.start()``."""
    yield from _serve(Postgres())


@pytest.fixture
def pg_url(pg: Postgres) -> Iterator[str]:
    """SQLAlchemy URL of a fresh, empty database made for this test (dropped after)."""
    pg.start()
    name = f"t_{_hex()}"
    url = pg.create_database(name)
    yield url
    if pg.running:
        with contextlib.suppress(Exception):
            pg.drop_database(name)


# ------------------------------------------------------------------ MQTT


@pytest.fixture(scope="session")
def mqtt() -> Iterator[Mosquitto]:
    """Mosquitto: ``.host``, ``.port``, ``.url`` ("mqtt://127.0.0.1:PORT"), stop/start."""
    yield from _serve(Mosquitto())


# ------------------------------------------------------------------ Kafka


@pytest.fixture(scope="session")
def kafka() -> Iterator[Kafka]:
    """Kafka 4 (KRaft, one node): ``.bootstrap`` ("127.0.0.1:PORT"), ``.stop()``, ``.start()``."""
    logging.getLogger("kafka").setLevel(logging.WARNING)
    yield from _serve(Kafka())


# ------------------------------------------------------------------ Prometheus


@pytest.fixture(scope="session")
def prometheus() -> Iterator[Prometheus]:
    """Prometheus: ``.url``, ``.scrape(["127.0.0.1:PORT", ...])`` (1 s interval, reloads),
    ``.query(promql)`` -> result vector."""
    yield from _serve(Prometheus())


# ------------------------------------------------------------------ Kubernetes


@pytest.fixture(scope="session")
def kube() -> Iterator[Kube]:
    """etcd + kube-apiserver + kube-scheduler + kwok (see rig/kube.py for the identities).

    ``.url``, ``.token`` (admin), ``.tokens`` ({"admin", "reconciler", "nobody"}), ``.ca_file``,
    ``.kubeconfig``, ``.api_client(token=None)``, ``.node_names`` (kwok nodes, Ready, 16 CPU /
    32Gi / 110 pods each), ``.stop()``/``.start()`` (the apiserver only),
    ``.add_token(user, groups)``. Namespace ``iota`` exists from the start.
    """
    yield from _serve(Kube())


@pytest.fixture
def kube_namespace(kube: Kube) -> Iterator[str]:
    """A fresh namespace "iota-<hex>"; deleted (with its pods) after the test."""
    kube.start()
    name = f"iota-{_hex()}"
    kube.create_namespace(name)
    yield name
    if kube.running:
        with contextlib.suppress(Exception):
            kube.delete_namespace(name)
