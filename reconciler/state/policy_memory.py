"""The policy in force: written by the policy loader (runtime/policy_watch.py) only.

A rejected edit keeps the last good policy and only sets `error`; accepting a new one is a
transition of the whole memory (`DaemonState.policy_accepted`): overrides and refusals end.
"""

from __future__ import annotations

import threading

from reconciler.domain.podspec import PodTemplate, template_revision
from reconciler.policy.schema import LoadedPolicy
from reconciler.state.part import MemoryPart


class PolicyInForce(MemoryPart):
    def __init__(self, lock: threading.RLock | None = None) -> None:
        super().__init__(lock)
        self._loaded: LoadedPolicy | None = None
        self._templates: dict[str, PodTemplate] = {}
        self._revisions: dict[str, str] = {}  # kind -> its template's revision
        self._error: str | None = None  # why the last edit was rejected (None: it was not)

    @property
    def loaded(self) -> LoadedPolicy | None:
        return self._loaded

    @property
    def templates(self) -> dict[str, PodTemplate]:
        return self._templates

    @property
    def error(self) -> str | None:
        return self._error

    def revision(self, kind: str) -> str:
        """The revision of `kind`'s pod template in force ("": none)."""
        with self._lock:
            return self._revisions.get(kind, "")

    def accept(self, loaded: LoadedPolicy, templates: dict[str, PodTemplate]) -> None:
        with self._lock:
            self._loaded, self._templates, self._error = loaded, templates, None
            self._revisions = {k: template_revision(t) for k, t in templates.items()}

    def is_same(self, loaded: LoadedPolicy, templates: dict[str, PodTemplate]) -> bool:
        """The policy in force is these bytes and these templates (an editor's touch)."""
        with self._lock:
            return (
                self._loaded is not None
                and self._loaded.sha256 == loaded.sha256
                and self._revisions == {k: template_revision(t) for k, t in templates.items()}
            )

    def rejected(self, error: str | None) -> None:
        """The last edit was rejected (error) or was the same bytes (None): keep the policy."""
        with self._lock:
            self._error = error
