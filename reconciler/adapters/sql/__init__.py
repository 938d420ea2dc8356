"""The database: which resource ids exist (`inventory`), read with a client-side deadline
(`deadline`), and pulled again only when a table changed (`rows_cache`).

May import: `reconciler.domain`, `reconciler.telemetry`, `reconciler.reconcile.ports`,
SQLAlchemy and psycopg.
"""
