"""Which pods went away, and when, against the windows in which the daemon was blind.

`Deletions` lists the namespaces' pods (admin client) twice a second and records each pod's
disappearance (deletionTimestamp set, or gone) as an interval of time: from the start of the
last list that saw it alive to the end of the first that did not (longer across a gap: the
apiserver paused).

The chaos driver knows when it made a source blind and records a `BlindWindow`; it also keeps
the history of the instances the daemon wrote to ZooKeeper (history.py). `blind_deletions`
judges each deletion that overlaps a window:

- A *strict* window (the daemon cannot see rows, the assignment or the pods: a frozen
  database, an emptied table, ZooKeeper down, the apiserver frozen or forbidding a namespace)
  allows no deletion at all of its kinds' pods, a scale-down included: blind to rows or to the
  assignment, the daemon has no grounds for removing an instance ("blind means hands off",
  docs/architecture.md: ids stay where they are), and blind to pods it cannot delete one it
  sees. So the history is not asked: a removal the daemon made blind is itself the fault.
- A *loose* window (Kafka down, up to `tail` seconds after it ends) allows scale-downs but no
  healthy worker killed: a deletion counts when the pod's instance stayed, one node (one
  czxid) from before the pod's interval began to `settle` seconds after it ended. The daemon
  removes a scaled-down instance's node in the pass that deletes its pod (node first), and
  `settle` covers a removal that fails once and is retried; a pod that a later scale-up
  re-creates under the same name belongs to a new node (a new czxid) and changes nothing.
  A deletion not yet `settle` seconds old is judged by a later call (the judgement is
  monotonic: once it counts, it always does).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from kubernetes import client as k8s

from tests.chaos.history import Lifetimes, stayed
from tests.chaos.invariants import KindSpec

POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Gone:
    namespace: str
    name: str
    uid: str
    earliest: float  # time.time(): a list that began then saw the pod alive
    latest: float  # ... and one that ended then saw it gone


@dataclass
class BlindWindow:
    fault: str
    namespaces: set[str]
    start: float
    end: float | None = None
    strict: bool = True
    tail: float = 0.0


@dataclass
class Deletions:
    core: k8s.CoreV1Api
    namespaces: list[str]
    gone: list[Gone] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for ns in self.namespaces:
            t = threading.Thread(target=self._follow, args=(ns,), daemon=True, name=f"watch-{ns}")
            t.start()
            self._threads.append(t)

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=40)

    def _follow(self, ns: str) -> None:
        """List every POLL_SECONDS: a pod seen alive at t and missing (or terminating) at the
        next list went in between. A watch was tried first: it sometimes ended without the
        DELETED event, which left a deletion dated only by the next list seconds later."""
        alive: dict[str, tuple[str, float]] = {}  # uid -> (name, last seen)
        while not self._stop.wait(POLL_SECONDS):
            began = time.time()
            try:
                listed = self.core.list_namespaced_pod(ns, _request_timeout=5)
            except Exception:  # the apiserver is down or frozen: a gap, closed by the next list
                continue
            now = time.time()
            current = {
                p.metadata.uid: p.metadata.name
                for p in listed.items
                if p.metadata.deletion_timestamp is None
            }
            for uid, (name, seen) in list(alive.items()):
                if uid not in current:
                    self.gone.append(Gone(ns, name, uid, seen, now))
                    del alive[uid]
            # The list saw them alive at some moment after it began: when they go, they went
            # after that moment.
            alive.update({uid: (name, began) for uid, name in current.items()})


def instance_of(g: Gone, kinds: Sequence[KindSpec]) -> tuple[str, int] | None:
    """The (kind, instance number) whose pod `g` was: `<instanceName>-<n>` in the kind's
    namespace; None for a pod of no kind."""
    for spec in kinds:
        m = re.fullmatch(rf"{re.escape(spec.instance_name)}-(\d+)", g.name)
        if m and spec.namespace == g.namespace:
            return spec.name, int(m.group(1))
    return None


def windows_over(g: Gone, windows: Sequence[BlindWindow], now: float) -> list[BlindWindow]:
    """The windows (of `g`'s namespace) that `g`'s interval overlaps; a window still open ends
    `now`, a loose one `tail` seconds after its end."""
    out: list[BlindWindow] = []
    for w in windows:
        end = (w.end if w.end is not None else now) + (0.0 if w.strict else w.tail)
        if g.namespace in w.namespaces and g.latest >= w.start and g.earliest <= end:
            out.append(w)
    return out


def blind_deletions(
    gone: Sequence[Gone],
    windows: Sequence[BlindWindow],
    lifetimes: Lifetimes,
    kinds: Sequence[KindSpec],
    settle: float,
    now: float | None = None,
) -> list[str]:
    """The deletions in `gone` that count against the daemon (see the module docstring), as
    sentences. `lifetimes`: the instance history; `kinds`: every kind the policy has named."""
    out: list[str] = []
    now = time.time() if now is None else now
    for g in gone:
        for w in windows_over(g, windows, now):
            when = (
                f"{w.fault}, {g.earliest - w.start:+.1f}..{g.latest - w.start:+.1f}s from its start"
            )
            if w.strict:
                out.append(
                    f"pod {g.namespace}/{g.name} (uid {g.uid[:8]}) deleted while blind ({when})"
                )
                break
            instance = instance_of(g, kinds)
            if instance is None:
                continue
            life = stayed(lifetimes, *instance, g.earliest, g.latest + settle)
            if life is not None:
                out.append(
                    f"pod {g.namespace}/{g.name} (uid {g.uid[:8]}) deleted while blind ({when})"
                    f" though its instance {instance[0]}/{instance[1]} stayed (czxid {life.czxid})"
                )
                break
    return out
