"""The rig's servers for `python -m bench`, started once and shared by every scenario.

Each daemon run gets a fresh ZooKeeper chroot and Kubernetes namespace (`Slot`), so runs never
see each other's assignment or pods; each scenario gets its own database.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from kazoo.client import KazooClient

from reconciler.adapters.sql.inventory import create_tables
from rig.kube import Kube
from rig.servers import Mosquitto, Postgres, ZooKeeper

# 200 worker pods at 0.2-0.25 CPU each (the templates' requests) do not fit the rig's default
# two 16-CPU kwok nodes: the 1M scenario would leave pods Pending and measure that instead.
KUBE_NODES = 4


def psycopg_url(url: str) -> str:
    """The SQLAlchemy URL the rig hands out, as psycopg takes it."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@dataclass
class World:
    zk: ZooKeeper
    pg: Postgres
    mq: Mosquitto
    kube: Kube
    tmp: Path
    admin: KazooClient  # creates and removes the chroots

    def database(self, things: Iterable[str], rules: Iterable[str]) -> Database:
        name = f"bench_{uuid.uuid4().hex[:8]}"
        url = self.pg.create_database(name)
        create_tables(url)
        db = Database(url)
        db.copy("Thing", things)
        db.copy("Rule", rules)
        return db

    @contextmanager
    def slot(self, tag: str) -> Iterator[Slot]:
        """A fresh ZooKeeper chroot and namespace for one daemon; both removed afterwards
        (ZooKeeper holds the whole assignment in its heap: 1M ids are ~40 MB of JSON)."""
        hexed = uuid.uuid4().hex[:6]
        chroot = f"/bench-{tag}-{hexed}"
        namespace = f"bench-{tag}-{hexed}".lower()
        self.admin.ensure_path(chroot)
        self.kube.create_namespace(namespace)
        try:
            yield Slot(self.zk.hosts + chroot, namespace, self.tmp / f"{tag}-{hexed}")
        finally:
            with contextlib.suppress(Exception):
                self.admin.delete(chroot, recursive=True)
            with contextlib.suppress(Exception):
                self.kube.delete_namespace(namespace)


@dataclass
class Slot:
    zk_hosts: str  # with the chroot
    namespace: str
    work: Path


class Database:
    """One scenario's database: bulk COPY, and single inserts on a kept connection (a new
    engine per row would cost more than the event it precedes)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn = psycopg.connect(psycopg_url(url), autocommit=True)
        self.copy_seconds = 0.0

    def copy(self, table: str, ids: Iterable[str]) -> int:
        start = time.perf_counter()
        n = 0
        with (
            self.conn.transaction(),
            self.conn.cursor() as cur,
            cur.copy(f'COPY "{table}" (id) FROM STDIN') as copy,
        ):
            for value in ids:
                copy.write_row((value,))
                n += 1
        self.copy_seconds += time.perf_counter() - start
        return n

    def insert(self, table: str, rid: str) -> None:
        self.conn.execute(f'INSERT INTO "{table}" (id) VALUES (%s)', (rid,))

    def ids(self, table: str) -> list[str]:
        return [r[0] for r in self.conn.execute(f'SELECT id FROM "{table}"')]

    def delete_some(self, table: str, n: int) -> None:
        """Delete `n` rows of the table, whichever."""
        self.conn.execute(
            f'DELETE FROM "{table}" WHERE id IN (SELECT id FROM "{table}" LIMIT %s)', (n,)
        )

    def count(self, table: str) -> int:
        row = self.conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()
        assert row is not None
        return int(row[0])

    def close(self) -> None:
        self.conn.close()


def uuids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


@contextmanager
def world() -> Iterator[World]:
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        zk = stack.enter_context(ZooKeeper())
        pg = stack.enter_context(Postgres())
        mq = stack.enter_context(Mosquitto())
        kube = stack.enter_context(Kube(node_count=KUBE_NODES))
        admin = KazooClient(hosts=zk.hosts, timeout=10)
        admin.start(timeout=15)
        stack.callback(admin.close)
        stack.callback(admin.stop)
        yield World(zk, pg, mq, kube, tmp, admin)
