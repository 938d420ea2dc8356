"""Database TLS: libpq's options in the URL's query (`?sslmode=verify-full&sslrootcert=...`)
reach psycopg's connect call unchanged, beside the daemon's own connect arguments."""

from __future__ import annotations

from reconciler.adapters.sql.inventory import _engine


def test_tls_options_in_the_url_reach_psycopg() -> None:
    engine = _engine(
        "postgresql://iota:pw@db:5432/iota?sslmode=verify-full&sslrootcert=/ca.pem"
        "&sslcert=/c.pem&sslkey=/k.pem",
        statement_timeout=5,
    )
    _, kwargs = engine.dialect.create_connect_args(engine.url)
    assert {k: kwargs[k] for k in ("sslmode", "sslrootcert", "sslcert", "sslkey")} == {
        "sslmode": "verify-full",
        "sslrootcert": "/ca.pem",
        "sslcert": "/c.pem",
        "sslkey": "/k.pem",
    }
    assert engine.url.render_as_string(hide_password=True).startswith(
        "postgresql+psycopg://iota:***@"
    )
