"""Operators' requests through REST, kept until a pass carries them out: rebalances (with
sizing overrides, which end with the next policy edit), and rolling restarts."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from reconciler.domain.model import Pod
from reconciler.state.part import MemoryPart


class OperatorRequests(MemoryPart):
    def __init__(self, lock: threading.RLock | None = None) -> None:
        super().__init__(lock)
        self._overrides: dict[str, dict[str, int]] = {}
        self._rebalance: set[str] = set()
        self._restart_pending: set[str] = set()  # restarts asked, their pods not seen yet
        self._restart_uids: dict[str, frozenset[str]] = {}  # ... and the pods they replace

    # --- rebalance and overrides -----------------------------------------------------------

    def request_rebalance(self, kind: str, overrides: Mapping[str, int] | None = None) -> None:
        """An operator asked to re-orchestrate `kind` (REST), maybe with new sizing."""
        with self._lock:
            if overrides:
                self._overrides[kind] = {**self._overrides.get(kind, {}), **overrides}
            self._rebalance.add(kind)

    def rebalance_asked(self, kind: str) -> bool:
        with self._lock:
            return kind in self._rebalance

    def rebalanced(self, kind: str) -> None:
        """A pass carried out `kind`'s plan (none failed, none left by the budget)."""
        with self._lock:
            self._rebalance.discard(kind)

    def overrides(self, kind: str) -> dict[str, int] | None:
        with self._lock:
            return self._overrides.get(kind)

    def all_overrides(self) -> dict[str, dict[str, int]]:
        """A copy, for the read side."""
        with self._lock:
            return {k: dict(v) for k, v in self._overrides.items()}

    def end_overrides(self) -> None:
        """A new policy.yaml: REST overrides end with it (docs/operations.md "The REST API")."""
        with self._lock:
            self._overrides.clear()

    # --- rolling restarts ------------------------------------------------------------------

    def request_restart(self, kind: str) -> None:
        """A rolling restart of `kind`: the pods the next pass sees are replaced,
        `rollout.maxUnavailable` at a time (their successors have new uids)."""
        with self._lock:
            self._restart_pending.add(kind)

    def pods_seen(self, kind: str, pods: Mapping[str, Pod]) -> None:
        """A pass saw these pods of `kind`: a pending restart now names them (by uid)."""
        with self._lock:
            if kind in self._restart_pending:
                self._restart_pending.discard(kind)
                self._restart_uids[kind] = frozenset(p.uid for p in pods.values() if p.uid)

    def restart_uids(self, kind: str) -> frozenset[str]:
        """The pods a rolling restart of `kind` replaces (empty: none asked)."""
        with self._lock:
            return self._restart_uids.get(kind, frozenset())
