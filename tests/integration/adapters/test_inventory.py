"""Inventory against a real PostgreSQL and a real SQLite file.

The daemon sizes and assigns from what these return, so the important failure modes are
"reads the wrong table" (quoting), "hangs or lies during an outage" and "a missing table
looks like an outage".
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from reconciler.adapters.sql.inventory import (
    CLIENT_GRACE,
    CONNECT_TIMEOUT,
    Inventory,
    UnknownTable,
    create_tables,
    delete_ids,
    insert_ids,
)
from reconciler.domain.errors import SourceUnavailable

pytestmark = pytest.mark.integration


@pytest.fixture(params=["postgresql", "sqlite"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same behaviour is expected of both backends."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'inventory.db'}"


@pytest.fixture
def open_inventory() -> Iterator[Callable[[str], Inventory]]:
    """Inventories closed after the test (the pg_url database is dropped afterwards, which
    PostgreSQL refuses while connections are open)."""
    made: list[Inventory] = []

    def make(url: str) -> Inventory:
        made.append(Inventory(url))
        return made[-1]

    yield make
    for inv in made:
        inv.close()


def test_ids_and_count(db_url: str, open_inventory: Callable[[str], Inventory]) -> None:
    create_tables(db_url)
    things = {str(uuid.uuid4()) for _ in range(50)}
    assert insert_ids(db_url, "Thing", things) == 50
    insert_ids(db_url, "Rule", ["r1", "r2"])
    inv = open_inventory(db_url)

    assert inv.ids("Thing") == things
    assert inv.count("Thing") == 50
    assert inv.ids("Rule") == {"r1", "r2"}
    assert inv.count("Rule") == 2

    assert delete_ids(db_url, "Thing", sorted(things)[:10]) == 10
    assert inv.count("Thing") == 40
    assert inv.ids("Thing") == set(sorted(things)[10:])


def test_empty_table_is_empty_not_an_error(
    db_url: str, open_inventory: Callable[[str], Inventory]
) -> None:
    create_tables(db_url)
    inv = open_inventory(db_url)
    assert inv.ids("Rule") == frozenset()
    assert inv.count("Rule") == 0


def test_missing_table_error_names_the_table(
    db_url: str, open_inventory: Callable[[str], Inventory]
) -> None:
    inv = open_inventory(db_url)  # no tables created
    for call in (inv.ids, inv.count):
        with pytest.raises(UnknownTable, match='"Thing"') as caught:
            call("Thing")
        assert isinstance(caught.value, ValueError)
        assert not isinstance(caught.value, SourceUnavailable)
        assert caught.value.table == "Thing"


def test_mixed_case_table_names_are_quoted(
    db_url: str, open_inventory: Callable[[str], Inventory]
) -> None:
    """Unquoted, PostgreSQL folds Thing to thing: make a decoy `thing` to catch that."""
    create_tables(db_url)
    insert_ids(db_url, "Thing", ["real"])
    engine = sa.create_engine(Inventory(db_url).engine.url)
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(sa.text("CREATE TABLE thing (id text primary key)"))
                conn.execute(sa.text("INSERT INTO thing VALUES ('decoy')"))
            # SQLite names are case-insensitive: there a name with a quote in it shows
            # the identifier is escaped rather than pasted into the SQL.
            conn.execute(sa.text('CREATE TABLE "odd""name" (id text primary key)'))
            conn.execute(sa.text('INSERT INTO "odd""name" VALUES (\'quoted\')'))
    finally:
        engine.dispose()
    inv = open_inventory(db_url)
    assert inv.ids("Thing") == {"real"}
    assert inv.ids('odd"name') == {"quoted"}


def test_unreachable_server_raises_source_unavailable_quickly(
    open_inventory: Callable[[str], Inventory],
) -> None:
    inv = open_inventory("postgresql+psycopg://postgres@127.0.0.1:1/none")
    started = time.monotonic()
    with pytest.raises(SourceUnavailable):
        inv.ids("Thing")
    assert time.monotonic() - started < 5


def test_postgresql_outage_raises_source_unavailable_then_recovers(
    pg: Any, pg_url: str, open_inventory: Callable[[str], Inventory]
) -> None:
    create_tables(pg_url)
    insert_ids(pg_url, "Thing", ["a", "b"])
    inv = open_inventory(pg_url)
    assert inv.ids("Thing") == {"a", "b"}  # the pool now holds a connection

    pg.stop()
    try:
        for call in (inv.ids, inv.count):
            started = time.monotonic()
            with pytest.raises(SourceUnavailable):
                call("Thing")
            took = time.monotonic() - started
            print(f"\nSourceUnavailable after {took:.2f}s")
            assert took < 5  # connect_timeout is 3 s; a refused port is immediate
    finally:
        pg.start()
    # The same Inventory: the pooled connection that died with the server fails at once and
    # the read is retried on a fresh one.
    assert inv.ids("Thing") == {"a", "b"}
    assert inv.count("Thing") == 2


def test_frozen_postgresql_raises_source_unavailable_within_the_timeout_then_recovers(
    pg: Any, pg_url: str
) -> None:
    """SIGSTOP (the whole process group, backends too): the kernel still accepts connections
    and ACKs, nothing answers, and the server cannot enforce its own statement_timeout. The
    watchdog must end the read; after SIGCONT the same Inventory reads again."""
    create_tables(pg_url)
    insert_ids(pg_url, "Thing", ["a", "b"])
    timeout = 2.0
    inv = Inventory(pg_url, statement_timeout=timeout)
    try:
        assert inv.ids("Thing") == {"a", "b"}  # the pool now holds a connection
        pg.pause()
        try:
            took = {}
            # ids: the pooled connection, frozen mid-read; count: a new connection, whose
            # connect gets no answer (connect_timeout).
            for call in (inv.ids, inv.count):
                started = time.monotonic()
                with pytest.raises(SourceUnavailable) as caught:
                    call("Thing")
                took[call.__name__] = time.monotonic() - started
                print(
                    f"\nfrozen PostgreSQL: {call.__name__}() raised SourceUnavailable after "
                    f"{took[call.__name__]:.2f} s: {caught.value}"
                )
            assert timeout <= took["ids"] < timeout + CLIENT_GRACE + 0.5
            assert "no answer within 2 s" in str(caught.value) or took["count"] < 4
            assert took["count"] < max(timeout + CLIENT_GRACE, CONNECT_TIMEOUT) + 0.5
        finally:
            pg.resume()
        started = time.monotonic()
        assert inv.ids("Thing") == {"a", "b"}
        assert inv.count("Thing") == 2
        print(f"after SIGCONT: ids() and count() again in {time.monotonic() - started:.2f} s")
    finally:
        inv.close()


def test_a_read_blocked_by_a_lock_is_cancelled_by_the_server_and_the_connection_survives(
    pg_url: str,
) -> None:
    """A live server enforces statement_timeout itself (sent as a connect option): a SELECT
    stuck behind a migration's ACCESS EXCLUSIVE lock ends after the timeout, cleanly."""
    create_tables(pg_url)
    insert_ids(pg_url, "Thing", ["a"])
    inv = Inventory(pg_url, statement_timeout=1.0)
    locker = sa.create_engine(inv.engine.url)
    try:
        with inv.engine.connect() as conn:
            assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "1s"
        with locker.connect() as conn, conn.begin():
            conn.execute(sa.text('LOCK TABLE "Thing" IN ACCESS EXCLUSIVE MODE'))
            started = time.monotonic()
            with pytest.raises(SourceUnavailable, match="statement timeout"):
                inv.ids("Thing")
            took = time.monotonic() - started
            print(f"\nlocked table: SourceUnavailable after {took:.2f} s")
            assert 1.0 <= took < 1.0 + CLIENT_GRACE
        assert inv.ids("Thing") == {"a"}
        assert inv.engine.pool.checkedin() == 1  # the cancelled read kept its connection
    finally:
        locker.dispose()
        inv.close()


def test_statement_timeout_joins_options_the_url_already_has(pg_url: str) -> None:
    url = sa.engine.make_url(pg_url).update_query_dict({"options": "-c search_path=public"})
    inv = Inventory(url, statement_timeout=2.5)
    try:
        with inv.engine.connect() as conn:
            assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "2500ms"
            assert conn.execute(sa.text("SHOW search_path")).scalar() == "public"
    finally:
        inv.close()


def test_100k_ids_insert_and_read(db_url: str, open_inventory: Callable[[str], Inventory]) -> None:
    create_tables(db_url)
    ids = [str(uuid.uuid4()) for _ in range(100_000)]

    started = time.perf_counter()
    insert_ids(db_url, "Thing", ids)
    inserted = time.perf_counter() - started

    inv = open_inventory(db_url)
    started = time.perf_counter()
    got = inv.ids("Thing")
    read = time.perf_counter() - started
    started = time.perf_counter()
    count = inv.count("Thing")
    counted = time.perf_counter() - started

    backend = inv.engine.dialect.name
    print(
        f"\n{backend}: insert 100k ids {inserted:.2f}s, ids() {read:.2f}s, "
        f"count() {counted * 1000:.0f} ms"
    )
    assert got == set(ids)
    assert count == 100_000


def test_row_event_lookups_work_on_a_uuid_column_too(pg_url: str) -> None:
    # A deployment whose ids are PostgreSQL `uuid`s: an id that is no UUID cannot be there,
    # and must not fail the lookup of the others.
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    held = [str(uuid.uuid4()) for _ in range(5)]
    with engine.begin() as conn:
        conn.execute(sa.text('CREATE TABLE "Thing" (id uuid PRIMARY KEY)'))
        for rid in held:
            conn.execute(
                sa.text('INSERT INTO "Thing" (id) VALUES (CAST(:id AS uuid))'), {"id": rid}
            )
    engine.dispose()
    inventory = Inventory(pg_url)
    try:
        asked = [*held[:3], str(uuid.uuid4()), "not-a-uuid"]
        assert inventory.present("Thing", asked) == set(held[:3])
        assert inventory.present("Thing", held) == set(held)
    finally:
        inventory.close()


def test_row_event_lookups_on_a_text_column_find_any_text(pg_url: str) -> None:
    create_tables(pg_url)
    held = [str(uuid.uuid4()) for _ in range(5)]
    insert_ids(pg_url, "Thing", [*held, "plain-text-id"])
    inventory = Inventory(pg_url)
    try:
        asked = [*held[:2], "plain-text-id", "absent"]
        assert inventory.present("Thing", asked) == {*held[:2], "plain-text-id"}
    finally:
        inventory.close()
