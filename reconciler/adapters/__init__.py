"""Adapters: the only modules that import kazoo, kubernetes, kafka, paho or SQLAlchemy.

Each one hides a client library behind a narrow interface in terms of `reconciler.model`
types, and raises `SourceUnavailable` (or a subclass) when its server cannot be reached, so
the loop can tell "the world is empty" from "I cannot see the world".
"""


class SourceUnavailable(Exception):
    """The server behind an adapter could not be reached or answered with a transient error."""
