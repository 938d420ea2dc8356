"""The inventory: which resource ids exist (SPEC "Inventory"), read with SQLAlchemy Core.

PostgreSQL (`postgresql+psycopg://...`) in production, SQLite (`sqlite:///path`) as the
embedded default. Tables `Thing` and `Rule` have a string primary key `id`; the daemon only
ever reads `id` and `COUNT(*)`.

Why it is shaped this way:
- Table names are mixed case, so they must be quoted ("Thing", not thing): we always quote
  with the dialect's own rules rather than formatting SQL by hand.
- An unreachable database raises `SourceUnavailable` quickly (psycopg connect_timeout,
  pool_pre_ping drops connections that died with the server), so the loop marks the rows
  "blind" and keeps going instead of hanging or, worse, reading "no rows" and deleting
  every instance.
- A missing table is a configuration error, not an outage: `UnknownTable` (a ValueError)
  names it, so nobody waits for it to "come back"; it is a `Terminal` error of the ports.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from itertools import islice

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.sql import quoted_name

from reconciler.ports import SourceUnavailable, Terminal

log = logging.getLogger(__name__)

ORCHESTRATED_TABLES = ("Thing", "Rule")

# Seconds: long enough for a loaded server, short enough that an outage costs one tick.
CONNECT_TIMEOUT = 3

_UNDEFINED_TABLE = "42P01"  # PostgreSQL SQLSTATE undefined_table


class UnknownTable(Terminal, ValueError):
    """The table does not exist in the database (a configuration error, not an outage)."""

    def __init__(self, table: str, where: str) -> None:
        self.table = table
        super().__init__(f'table "{table}" does not exist in {where}')


def _url(url: str | URL) -> URL:
    """Parse `url`; a bare postgresql:// URL gets the psycopg (v3) driver, the one installed
    (SQLAlchemy would otherwise look for psycopg2)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _engine(url: str | URL) -> Engine:
    parsed = _url(url)
    backend = parsed.get_backend_name()
    options: dict[str, object] = {}
    if backend == "postgresql":
        options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
        # The loop reads from one thread: a small pool, and never queue long for it.
        options.update(pool_size=2, max_overflow=2, pool_timeout=CONNECT_TIMEOUT)
    elif backend == "sqlite":
        # Seconds to wait on another writer's lock (the demo inserts while the daemon reads).
        options["connect_args"] = {"timeout": CONNECT_TIMEOUT}
    # pool_pre_ping: a connection that died with the server is replaced, not used.
    return sa.create_engine(parsed, pool_pre_ping=True, **options)


def _table(name: str) -> sa.TableClause:
    # quote=True: always "Thing", never folded to thing by the database.
    return sa.table(quoted_name(name, quote=True), sa.column("id"))


def _missing_table(error: sa_exc.DBAPIError) -> bool:
    orig = error.orig
    if getattr(orig, "sqlstate", None) == _UNDEFINED_TABLE:
        return True
    # sqlite3 has no error codes for this; its message is stable.
    return type(orig).__module__.startswith("sqlite3") and "no such table" in str(orig)


class Inventory:
    """Read-only view of the orchestrated tables."""

    def __init__(self, url: str | URL) -> None:
        self.engine = _engine(url)
        self.where = self.engine.url.render_as_string(hide_password=True)

    def ids(self, table: str) -> frozenset[str]:
        """All ids of `table`, as text (a uuid column comes back in its canonical form)."""
        rows = self._run(table, sa.select(_table(table).c.id))
        return frozenset(str(row[0]) for row in rows)

    def count(self, table: str) -> int:
        """`SELECT COUNT(*)` of `table`."""
        rows = self._run(table, sa.select(sa.func.count()).select_from(_table(table)))
        return int(rows[0][0])

    def _run(self, table: str, statement: sa.Select[tuple[object, ...]]) -> list[sa.Row]:
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(statement).all())
        except sa_exc.DBAPIError as exc:
            if _missing_table(exc):
                raise UnknownTable(table, self.where) from exc
            if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError) or (
                exc.connection_invalidated
            ):
                raise SourceUnavailable(f"database {self.where}: {exc.orig}") from exc
            raise
        except (sa_exc.DisconnectionError, sa_exc.TimeoutError) as exc:
            raise SourceUnavailable(f"database {self.where}: {exc}") from exc

    def close(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()


# -- helpers for tests and the demo --------------------------------------------------------


def _metadata() -> sa.MetaData:
    metadata = sa.MetaData()
    for name in ORCHESTRATED_TABLES:
        sa.Table(name, metadata, sa.Column("id", sa.String(64), primary_key=True))
    return metadata


def create_tables(url: str | URL) -> None:
    """Create `Thing` and `Rule` (id only) if they do not exist."""
    engine = _engine(url)
    try:
        _metadata().create_all(engine, checkfirst=True)
    finally:
        engine.dispose()


def _chunks(ids: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(ids)
    while chunk := list(islice(it, size)):
        yield chunk


def insert_ids(url: str | URL, table: str, ids: Iterable[str]) -> int:
    """Insert `ids` into `table` in one transaction; returns how many.

    PostgreSQL gets COPY (100k rows in well under a second); others get an executemany,
    which SQLAlchemy turns into multi-row INSERTs."""
    engine = _engine(url)
    total = 0
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                quoted = engine.dialect.identifier_preparer.quote_identifier(table)
                cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                with cursor.copy(f"COPY {quoted} (id) FROM STDIN") as copy:
                    for value in ids:
                        copy.write_row((value,))
                        total += 1
            else:
                statement = sa.insert(_table(table))
                for chunk in _chunks(ids, 10_000):
                    conn.execute(statement, [{"id": value} for value in chunk])
                    total += len(chunk)
    finally:
        engine.dispose()
    return total


def delete_ids(url: str | URL, table: str, ids: Iterable[str]) -> int:
    """Delete rows by id from `table`; returns how many rows went."""
    engine = _engine(url)
    target = _table(table)
    total = 0
    try:
        with engine.begin() as conn:
            for chunk in _chunks(ids, 10_000):
                result = conn.execute(sa.delete(target).where(target.c.id.in_(chunk)))
                total += result.rowcount
    finally:
        engine.dispose()
    return total
