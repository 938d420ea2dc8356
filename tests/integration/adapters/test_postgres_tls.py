"""PostgreSQL over TLS (issue 27, SECURITY.md "Database"): the rig's PostgreSQL with
`ssl=on`, a certificate from the rig's throw-away CA and a pg_hba.conf that refuses plain TCP
(`Postgres(tls=True)`). The daemon's inventory, given a URL as an operator writes it
(`?sslmode=verify-full&sslrootcert=...`, and `sslcert`/`sslkey` for a certificate login),
reads over TLS; a server certificate from another CA and a plain connection are refused
with an error that says why; the URL's password shows up in no setting, error or log.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from reconciler.adapters.sql.inventory import Inventory, create_tables, insert_ids
from reconciler.config.settings import Settings
from reconciler.domain.errors import SourceUnavailable
from rig.pki import Pki
from rig.servers import Postgres
from tests.support.serving import serve

PASSWORD = f"pg-{uuid.uuid4().hex}"
THINGS = {f"thing-{i}" for i in range(25)}


@pytest.fixture(scope="module")
def tls_pg() -> Iterator[Postgres]:
    yield from serve(Postgres(tls=True))


@pytest.fixture
def database(tls_pg: Postgres) -> Iterator[str]:
    """A fresh database with `Thing` rows (written over TLS as the rig's admin); its name."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    admin_url = tls_pg.create_database(name)
    create_tables(admin_url)
    insert_ids(admin_url, "Thing", THINGS)
    yield name
    tls_pg.drop_database(name)


@pytest.fixture
def open_inventory() -> Iterator[Callable[[str], Inventory]]:
    """Inventories made with the daemon's own read deadline, closed after the test (the
    database is dropped afterwards, which PostgreSQL refuses while connections are open)."""
    made: list[Inventory] = []

    def make(url: str) -> Inventory:
        made.append(Inventory(url, statement_timeout=5))
        return made[-1]

    yield make
    for inventory in made:
        inventory.close()


def pki_of(server: Postgres) -> Pki:
    assert server.pki is not None
    return server.pki


def reader_url(server: Postgres, database: str) -> str:
    """A role that logs in with its password; the URL as an operator writes it."""
    return server.create_password_role(f"reader_{uuid.uuid4().hex[:6]}", PASSWORD, database)


def connection_tls(inventory: Inventory) -> tuple[bool, str | None, str | None]:
    """(ssl, TLS version, client certificate DN) of one of the inventory's own connections,
    as the server sees it."""
    with inventory.engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT ssl, version, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        ).one()
    return bool(row[0]), row[1], row[2]


def test_the_inventory_reads_rows_over_verified_tls_with_a_password_login(
    tls_pg: Postgres, database: str, open_inventory: Callable[[str], Inventory]
) -> None:
    url = reader_url(tls_pg, database)
    assert "sslmode=verify-full&sslrootcert=" in url
    inventory = open_inventory(url)
    assert inventory.ids("Thing") == THINGS
    assert inventory.count("Thing") == len(THINGS)
    ssl, version, client_dn = connection_tls(inventory)
    assert ssl and version and version.startswith("TLS"), (ssl, version)
    assert client_dn is None  # a password login: no certificate shown


def test_the_inventory_logs_in_with_a_client_certificate(
    tls_pg: Postgres, database: str, open_inventory: Callable[[str], Inventory]
) -> None:
    url = tls_pg.create_cert_role(database)
    assert "@" in url and ":" not in url.split("//", 1)[1].split("@", 1)[0]  # no password
    inventory = open_inventory(url)
    assert inventory.ids("Thing") == THINGS
    ssl, _, client_dn = connection_tls(inventory)
    assert ssl and client_dn is not None and "CN=rig-client" in client_dn, client_dn
    # The same role without its certificate is refused: pg_hba says `cert`.
    without = url.split("&sslcert=")[0]
    with pytest.raises(SourceUnavailable, match="certificate"):
        open_inventory(without).ids("Thing")


def test_a_server_certificate_from_another_ca_is_refused_naming_the_certificate_problem(
    tls_pg: Postgres, database: str, open_inventory: Callable[[str], Inventory]
) -> None:
    pki = pki_of(tls_pg)
    url = reader_url(tls_pg, database).replace(str(pki.ca), str(pki.other_ca))
    with pytest.raises(SourceUnavailable) as refused:
        open_inventory(url).ids("Thing")
    # What the daemon logs as the error of "source unavailable" (reconcile/pipeline.py).
    said = str(refused.value)
    assert "certificate verify failed" in said, said
    assert PASSWORD not in said and ":***@" in said, said


@pytest.mark.parametrize("sslmode", ["disable", "allow"])
def test_a_plain_connection_is_refused_by_the_server(
    tls_pg: Postgres,
    database: str,
    open_inventory: Callable[[str], Inventory],
    sslmode: str,
) -> None:
    """`disable` never tries TLS; `allow` tries plain first and would fall back to TLS only
    if the server refused plain: it must not read anything without TLS either way."""
    url = reader_url(tls_pg, database).split("?")[0] + f"?sslmode={sslmode}"
    if sslmode == "disable":
        with pytest.raises(SourceUnavailable) as refused:
            open_inventory(url).ids("Thing")
        said = str(refused.value)
        assert "pg_hba.conf rejects connection" in said and "no encryption" in said, said
        assert PASSWORD not in said
        return
    inventory = open_inventory(url)
    assert inventory.ids("Thing") == THINGS
    assert connection_tls(inventory)[0]  # the server's `reject` made libpq take TLS


def test_the_password_in_the_url_is_never_logged(
    tls_pg: Postgres,
    database: str,
    open_inventory: Callable[[str], Inventory],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = reader_url(tls_pg, database)
    settings = Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]
    shown = str(settings.redacted()["database_url"])
    assert PASSWORD not in shown and PASSWORD not in repr(settings)
    assert shown.endswith(url.split("@", 1)[1])  # host, database and TLS options stay readable
    inventory = open_inventory(settings.database_url.get_secret_value())
    assert inventory.ids("Thing") == THINGS
    assert PASSWORD not in inventory.where
    wrong = url.replace(PASSWORD, f"not-{PASSWORD}")
    with pytest.raises(SourceUnavailable) as refused:
        open_inventory(wrong).ids("Thing")
    assert "password authentication failed" in str(refused.value)
    assert PASSWORD not in str(refused.value)
    assert PASSWORD not in caplog.text
