"""The inventory: which resource ids exist (docs/contracts.md "Inventory"), read with SQLAlchemy
Core.

PostgreSQL (`postgresql+psycopg://...`) in production, SQLite (`sqlite:///path`) as the
embedded default. Tables `Thing` and `Rule` have a string primary key `id`; the daemon only
ever reads `id` and `COUNT(*)`.

Why it is shaped this way:
- Table names are mixed case, so they must be quoted ("Thing", not thing): we always quote
  with the dialect's own rules rather than formatting SQL by hand.
- An unreachable database raises `SourceUnavailable` quickly (psycopg connect_timeout), so
  the loop marks the rows "blind" and keeps going instead of hanging or, worse, reading "no
  rows" and deleting every instance.
- Every read has a deadline, `statement_timeout` seconds (RECONCILER_DATABASE_TIMEOUT). A live
  server cancels a slower statement itself (PostgreSQL `statement_timeout`, sent as a connect
  option; a lock held by a migration counts too). A server that does not answer at all
  (frozen, SIGSTOPped, a black-holed network: the kernel still ACKs, so TCP never fails)
  cannot cancel anything, and psycopg has no client-side deadline: `deadline.py` shuts
  the connection's socket down `CLIENT_GRACE` seconds later, which ends the blocked read
  with "server closed the connection" (SQLite: `interrupt()`). A pass's read ends sooner when
  the pass has less of its budget left (reconciler/domain/call_limit.py).
- Reads run in autocommit: each is one statement, so a transaction would only add a BEGIN
  and a ROLLBACK round trip to every row event's hint check.
- Pooled connections are not pinged before use (a ping to a frozen server would hang outside
  any deadline); a connection that died with a restarted server fails at once and the read
  is retried once on a fresh connection, under the same deadline.
- A missing table is a configuration error, not an outage: `UnknownTable` (a ValueError)
  names it, so nobody waits for it to "come back"; it is a `Terminal` error of the ports.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import rows as psycopg_rows
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Dialect, Engine, make_url
from sqlalchemy.sql import quoted_name

from reconciler.adapters.sql.deadline import ReadDeadline
from reconciler.domain import call_limit
from reconciler.domain.errors import SourceUnavailable, Terminal
from reconciler.domain.ids import SortedIds

# The logger name is part of the log format operators filter on: it does not follow the
# module when code moves (docs/architecture.md "Logs").
log = logging.getLogger("reconciler.adapters.inventory")

ORCHESTRATED_TABLES = ("Thing", "Rule")

# Seconds: long enough for a loaded server, short enough that an outage costs one tick.
CONNECT_TIMEOUT = 3
# Seconds a read may take (RECONCILER_DATABASE_TIMEOUT's default).
STATEMENT_TIMEOUT = 10.0
# Seconds after the statement timeout before the watchdog drops a connection whose server
# did not cancel the statement itself (a live server's clean cancel keeps the connection).
CLIENT_GRACE = 1.0

_UNDEFINED_TABLE = "42P01"  # PostgreSQL SQLSTATE undefined_table
# Ids per lookup statement: far below PostgreSQL's 65,535 bind parameters.
LOOKUP_CHUNK = 10_000
# Rows per chunk when a whole table's ids are streamed (libpq >= 17 has chunked mode; an
# older libpq answers all rows at once).
STREAM_CHUNK = 10_000
_CHUNKED = psycopg.pq.version() >= 170000


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


def _engine(url: str | URL, statement_timeout: float | None = None) -> Engine:
    parsed = _url(url)
    backend = parsed.get_backend_name()
    options: dict[str, object] = {}
    if backend == "postgresql":
        connect_args: dict[str, object] = {"connect_timeout": CONNECT_TIMEOUT}
        if statement_timeout is not None:
            connect_args["options"] = _with_statement_timeout(parsed, statement_timeout)
        options["connect_args"] = connect_args
        if statement_timeout is not None:
            # The daemon's reads (the Inventory) are single statements: autocommit spares
            # each one a BEGIN and, back in the pool, a ROLLBACK (two round trips on the path
            # of every row event's hint check).
            options["isolation_level"] = "AUTOCOMMIT"
        # The loop reads from one thread: a small pool, and never queue long for it.
        options.update(pool_size=2, max_overflow=2, pool_timeout=CONNECT_TIMEOUT)
    elif backend == "sqlite":
        # Seconds to wait on another writer's lock (the demo inserts while the daemon reads).
        options["connect_args"] = {"timeout": CONNECT_TIMEOUT}
    return sa.create_engine(parsed, **options)


def _with_statement_timeout(url: URL, seconds: float) -> str:
    """libpq `options` with `-c statement_timeout=<ms>`, after any the URL already has."""
    given = url.query.get("options", "")
    given = given if isinstance(given, str) else " ".join(given)
    ms = max(1, round(seconds * 1000))
    return f"{given} -c statement_timeout={ms}".strip()


def _scalars(
    conn: sa.Connection,
    statement: sa.Select[tuple[object, ...]],
    where: str = "",
    params: tuple[Any, ...] | None = None,
) -> list[Any]:
    """The first column of every row, fetched by psycopg itself (no SQLAlchemy Row);
    `where`, with psycopg `%s` placeholders for `params`, is appended to the statement."""
    sql = _compiled(statement, conn.dialect) + where
    raw: Any = conn.connection.dbapi_connection
    try:
        with raw.cursor(row_factory=psycopg_rows.scalar_row) as cursor:
            if not where and _CHUNKED:
                # A whole table: streamed in chunks (libpq's chunked mode), so the driver
                # never holds every row's text at once beside the strings made of it, which
                # would raise the peak of a large read by a copy of the table's ids.
                return list(cursor.stream(sql, params, size=STREAM_CHUNK))
            return cursor.execute(sql, params).fetchall()
    except psycopg.Error as exc:
        dead = bool(raw.closed or raw.broken)
        if dead:
            conn.invalidate()  # never back into the pool
        # The same errors SQLAlchemy would raise, so `_run` treats both paths alike.
        raise sa_exc.DBAPIError.instance(
            sql, None, exc, psycopg.Error, connection_invalidated=dead
        ) from exc


@functools.lru_cache(maxsize=64)
def _compiled(statement: sa.Select[tuple[object, ...]], dialect: Dialect) -> str:
    """The statement's SQL for the dialect. Cached: each Inventory method builds its few
    statements once (`_statements`), and compiling one costs more than a key lookup."""
    return str(statement.compile(dialect=dialect))


def _any_of(ids: list[str]) -> Callable[[sa.Connection, sa.Select[tuple[object, ...]]], list[Any]]:
    """A fetch for `_run`: the rows of `SELECT <table>.id FROM <table>` whose id is in `ids`."""

    def fetch(conn: sa.Connection, statement: sa.Select[tuple[object, ...]]) -> list[Any]:
        (column,) = statement.selected_columns
        table = conn.dialect.identifier_preparer.format_table(column.table)
        return _scalars(conn, statement, f" WHERE {table}.id = ANY(%s)", (ids,))

    return fetch


@functools.lru_cache(maxsize=64)
def _id_select(table: str) -> sa.Select[tuple[object, ...]]:
    """`SELECT <table>.id FROM <table>`, one object per table (so `_compiled` finds it)."""
    return sa.select(_table(table).c.id)


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=64)
def _table(name: str) -> sa.TableClause:
    # quote=True: always "Thing", never folded to thing by the database. Cached: per event.
    return sa.table(quoted_name(name, quote=True), sa.column("id"))


def _missing_table(error: sa_exc.DBAPIError) -> bool:
    orig = error.orig
    if getattr(orig, "sqlstate", None) == _UNDEFINED_TABLE:
        return True
    # sqlite3 has no error codes for this; its message is stable.
    return type(orig).__module__.startswith("sqlite3") and "no such table" in str(orig)


class Inventory:
    """Read-only view of the orchestrated tables; every read ends within
    `statement_timeout` + CLIENT_GRACE seconds (plus CONNECT_TIMEOUT for a connect that
    hangs), with rows or an error."""

    def __init__(self, url: str | URL, statement_timeout: float = STATEMENT_TIMEOUT) -> None:
        if statement_timeout <= 0:
            raise ValueError(f"statement_timeout must be positive, got {statement_timeout}")
        self.statement_timeout = statement_timeout
        self.engine = _engine(url, statement_timeout)
        self.where = self.engine.url.render_as_string(hide_password=True)

    def ids(self, table: str) -> SortedIds:
        """All ids of `table`, as text (a uuid column comes back in its canonical form),
        sorted and held compactly (`reconciler.domain.ids.SortedIds`: one pointer an id, a
        fraction of a hash set).

        PostgreSQL: straight from the driver's cursor, one value per row. SQLAlchemy's Row
        objects would add an object per row to build and, being GC-tracked, set off
        collections through everything else the daemon holds."""
        statement = _id_select(table)
        if self.engine.dialect.name == "postgresql":
            values = self._run(table, statement, fetch=_scalars)
        else:
            values = [row[0] for row in self._run(table, statement)]
        if values and not isinstance(values[0], str):
            values = list(map(str, values))
        return SortedIds(values)

    def adopt(self, table: str, ids: SortedIds) -> None:
        """Nothing kept here to replace (the `Rows` port; CachedRows keeps a copy)."""

    def fingerprint(self, table: str) -> tuple[int, int] | None:
        """(row count, sum of the ids' 64-bit hashes), computed in PostgreSQL at a fraction
        of the cost of pulling the ids: equal fingerprints mean an unchanged table
        (rows_cache.py). None where the database has no such hash (SQLite)."""
        if self.engine.dialect.name != "postgresql":
            return None
        source = _table(table)
        column = sa.cast(source.c.id, sa.Text)
        digest = sa.func.coalesce(sa.func.sum(sa.func.hashtextextended(column, 0)), 0)
        rows = self._run(table, sa.select(sa.func.count(), digest).select_from(source))
        return int(rows[0][0]), int(rows[0][1])

    def present(self, table: str, ids: Iterable[str]) -> frozenset[str]:
        """Which of `ids` `table` holds now: primary-key lookups, `LOOKUP_CHUNK` ids per
        statement, under one deadline. (Row events are checked against this:
        reconciler/reconcile/hints.py.)"""
        wanted = sorted(set(ids))
        found: set[str] = set()
        if self.engine.dialect.name == "postgresql":
            # `id = ANY(%s)` straight through psycopg: one statement, compiled once per table,
            # on the fast path of every row event; PostgreSQL types the array after the
            # column (text or uuid alike).
            for chunk in _chunks(wanted, LOOKUP_CHUNK):
                try:
                    found.update(self._run(table, _id_select(table), fetch=_any_of(chunk)))
                except sa_exc.DataError:
                    # A uuid column refuses text that is no UUID; such an id cannot be in it.
                    valid = [i for i in chunk if _is_uuid(i)]
                    if valid:
                        found.update(self._run(table, _id_select(table), fetch=_any_of(valid)))
            return frozenset(map(str, found))
        column = _table(table).c.id
        for chunk in _chunks(wanted, LOOKUP_CHUNK):
            try:
                rows = self._run(table, sa.select(column).where(column.in_(chunk)))
            except SourceUnavailable:
                raise
            except sa_exc.DataError:
                # A uuid column refuses text that is no UUID; such an id cannot be in it.
                valid = [i for i in chunk if _is_uuid(i)]
                rows = self._run(table, sa.select(column).where(column.in_(valid))) if valid else []
            found.update(str(row[0]) for row in rows)
        return frozenset(found)

    def count(self, table: str) -> int:
        """`SELECT COUNT(*)` of `table`."""
        rows = self._run(table, sa.select(sa.func.count()).select_from(_table(table)))
        return int(rows[0][0])

    def _run(
        self,
        table: str,
        statement: sa.Select[tuple[object, ...]],
        fetch: Callable[[sa.Connection, sa.Select[tuple[object, ...]]], list[Any]] | None = None,
    ) -> list[Any]:
        """`statement`'s rows (or what `fetch` makes of it), under the read's deadline: its
        own, or what the pass reading has left of its budget if that is less (the server's
        own cancel would then come too late: the connection is dropped at once)."""
        limit = call_limit.bounded(self.statement_timeout + CLIENT_GRACE)
        said = f"no answer within {self.statement_timeout:g} s (RECONCILER_DATABASE_TIMEOUT)"
        if limit < self.statement_timeout + CLIENT_GRACE:
            said = f"no answer within {limit:.1f} s (what the pass budget had left)"
        watchdog = ReadDeadline(limit)
        try:
            for attempt in (1, 2):
                try:
                    return self._once(statement, watchdog, fetch)
                except sa_exc.DBAPIError as exc:
                    if watchdog.expired:
                        raise SourceUnavailable(f"database {self.where}: {said}") from exc
                    if _missing_table(exc):
                        raise UnknownTable(table, self.where) from exc
                    if exc.connection_invalidated and attempt == 1:
                        # A pooled connection that died with a restarted server (the pool
                        # has dropped its peers too): once more, on a fresh one.
                        log.debug("database read: stale connection, retrying: %s", exc.orig)
                        continue
                    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError) or (
                        exc.connection_invalidated
                    ):
                        raise SourceUnavailable(f"database {self.where}: {exc.orig}") from exc
                    raise
                except (sa_exc.DisconnectionError, sa_exc.TimeoutError) as exc:
                    raise SourceUnavailable(f"database {self.where}: {exc}") from exc
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            watchdog.release()

    def _once(
        self,
        statement: sa.Select[tuple[object, ...]],
        watchdog: ReadDeadline,
        fetch: Callable[[sa.Connection, sa.Select[tuple[object, ...]]], list[Any]] | None,
    ) -> list[Any]:
        with self.engine.connect() as conn:
            try:
                watchdog.guard(conn.connection.dbapi_connection)
                if fetch is not None:
                    return fetch(conn, statement)
                return list(conn.execute(statement).all())
            finally:
                watchdog.unguard()

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

    PostgreSQL gets COPY (one stream, no statement per row); others get an executemany,
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
