"""Which sources each kind could not read on its last try: written by observe's reads.

Per (source, kind): one kind's missing table or forbidden namespace is that kind's fault;
the others read fine, and the log does not flap between "unavailable" and "back".

A read the pass's budget left unmade (reconciler/reconcile/budget.py) is noted too, as
*unread*: the kind is degraded and blind until its next look, but the source is not down
(`down`, `by_source` and so reconciler_source_up leave it out), and a failure already known
for it stays as it is.
"""

from __future__ import annotations

import threading
from collections.abc import Container, Iterable

from reconciler.state.part import MemoryPart
from reconciler.state.snapshot import errors_by_source


class SourceHealth(MemoryPart):
    def __init__(self, lock: threading.RLock | None = None) -> None:
        super().__init__(lock)
        self._errors: dict[tuple[str, str], str] = {}  # (source, kind) -> error
        self._unread: set[tuple[str, str]] = set()  # of those, the ones left by the budget

    def failed(self, source: str, kind: str, error: str) -> bool:
        """Note a source as unreadable for `kind`; True if that is news (or a new error)."""
        with self._lock:
            news = self._errors.get((source, kind)) != error
            self._errors[(source, kind)] = error
            self._unread.discard((source, kind))
            return news

    def recovered(self, source: str, kind: str) -> bool:
        """Note a source as readable for `kind`; True if it had been unavailable."""
        with self._lock:
            was_unread = (source, kind) in self._unread
            self._unread.discard((source, kind))
            return self._errors.pop((source, kind), None) is not None and not was_unread

    def unread(self, source: str, kind: str, why: str) -> None:
        """`kind` did not get to read `source` in this pass (`why`: the budget ran out)."""
        with self._lock:
            key = (source, kind)
            if key not in self._errors or key in self._unread:
                self._errors[key] = why
                self._unread.add(key)

    def looking(self, kind: str) -> None:
        """A pass starts reading `kind`: what the last one left unread is to be seen again."""
        with self._lock:
            for key in [k for k in self._unread if k[1] == kind]:
                self._unread.discard(key)
                del self._errors[key]

    def unread_kinds(self, kinds: Iterable[str]) -> list[str]:
        """Those of `kinds` with a read the budget left unmade at their last look."""
        with self._lock:
            left = {k for _, k in self._unread}
        return [k for k in kinds if k in left]

    def down(self, source: str) -> bool:
        """True while `source` cannot be read for some kind (a read left unmade is no sign)."""
        with self._lock:
            return any(s == source for s, k in self._errors if (s, k) not in self._unread)

    def degraded(self, kind: str) -> dict[str, str]:
        """What `kind` cannot read now: source -> error (empty: healthy)."""
        with self._lock:
            return {s: e for (s, k), e in self._errors.items() if k == kind}

    @property
    def blind(self) -> bool:
        """True while any source is unavailable (or unread) for any kind."""
        with self._lock:
            return bool(self._errors)

    def keep_kinds(self, kinds: Container[str]) -> None:
        """Only these kinds are read now: a kind's errors would otherwise stay for good."""
        with self._lock:
            for key in [k for k in self._errors if k[1] not in kinds]:
                del self._errors[key]
                self._unread.discard(key)

    def by_source(self) -> dict[str, str]:
        """source -> "<Kind>: <error>; ..." for the kinds it fails, for the read side (a read
        the budget left unmade says nothing of its source: the kind's own notes carry it)."""
        with self._lock:
            return errors_by_source(
                {key: e for key, e in self._errors.items() if key not in self._unread}
            )
