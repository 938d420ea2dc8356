"""Adapters: the only modules that import kazoo, kubernetes, kafka, paho, SQLAlchemy or psycopg.

Each one hides a client library behind a narrow interface of `reconciler.reconcile.ports`, in
terms of `reconciler.domain.model` types, and raises the error vocabulary of
`reconciler.domain.errors`: `SourceUnavailable` when its server cannot be reached (so the loop
can tell "the world is empty" from "I cannot see the world"), `NotYet` for an expected
temporary refusal, `Terminal` for a request that no retry fixes.

One package per server: `zookeeper`, `kube`, `sql`, `mqtt`, `kafka`.

May import: `reconciler.domain`, `reconciler.telemetry`, `reconciler.reconcile.ports` and the
client libraries. Never the policy, the rules, the state or a stage.
"""
