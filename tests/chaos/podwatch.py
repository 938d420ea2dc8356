"""Which pods went away, and when, against the windows in which the daemon was blind.

`Deletions` lists the namespaces' pods (admin client) twice a second and records each pod's
disappearance (deletionTimestamp set, or gone) as an interval of time: from the last list that
saw it alive to the first that did not (longer across a gap: the apiserver paused).

The chaos driver knows when it made a source blind and records a `BlindWindow`. A *strict*
window (the daemon cannot see rows, the assignment or the pods: a frozen database, an emptied
table, ZooKeeper down, the apiserver frozen or forbidding a namespace) allows no deletion at
all of its kinds' pods. A loose one (Kafka or MQTT down) allows scale-down deletions, but not a
pod deleted and recreated (a healthy worker killed), up to `tail` seconds after it ends.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from kubernetes import client as k8s

POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Gone:
    namespace: str
    name: str
    uid: str
    earliest: float  # time.time(): the pod was last seen alive at or after this
    latest: float  # ... and seen gone by this


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
            alive.update({uid: (name, now) for uid, name in current.items()})


def blind_deletions(
    gone: list[Gone], windows: list[BlindWindow], pods_now: dict[str, dict[str, str]]
) -> list[str]:
    """Pods that went while the daemon was blind (`pods_now`: namespace -> name -> uid)."""
    out: list[str] = []
    now = time.time()
    for g in gone:
        for w in windows:
            if g.namespace not in w.namespaces:
                continue
            end = (w.end if w.end is not None else now) + (0.0 if w.strict else w.tail)
            if g.latest < w.start or g.earliest > end:
                continue
            successor = pods_now.get(g.namespace, {}).get(g.name)
            if w.strict or (successor is not None and successor != g.uid):
                out.append(
                    f"pod {g.namespace}/{g.name} (uid {g.uid[:8]}) deleted while blind "
                    f"({w.fault}, {g.earliest - w.start:+.1f}..{g.latest - w.start:+.1f}s "
                    "from its start)"
                )
                break
    return out
