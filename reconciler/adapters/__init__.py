"""Adapters: the only modules that import kazoo, kubernetes, kafka, paho or SQLAlchemy.

Each one hides a client library behind a narrow interface of `reconciler.ports` in terms of
`reconciler.model` types, and raises the ports' error vocabulary: `SourceUnavailable` when
its server cannot be reached (so the loop can tell "the world is empty" from "I cannot see
the world"), `NotYet` for an expected temporary refusal, `Terminal` for a request that no
retry fixes.
"""

from reconciler.ports import NotYet, SourceUnavailable, Terminal

__all__ = ["NotYet", "SourceUnavailable", "Terminal"]
