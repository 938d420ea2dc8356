"""Operators' scale, stop and start of a kind (REST `.../scale|stop|start`, `reconciler
scale|stop|start`): pins kept in ZooKeeper (reconciler/domain/pins.py,
reconciler/adapters/zookeeper/pins.py).

The pin is written first (fenced: a standby or a deposed leader writes nothing), then the
state learns it and the loop is woken: the next pass plans with it. Nothing here plans or
touches a pod; the pipeline does, as for every other intent.
"""

from __future__ import annotations

from reconciler.domain.pins import Pin
from reconciler.reconcile.ports import PinStore
from reconciler.state.daemon import DaemonState
from reconciler.telemetry.logs import log


class NoPinStore(RuntimeError):
    """This daemon was built without a place to keep pins."""


def pin_kind(
    state: DaemonState, store: PinStore | None, kind: str, instances: int | None, by: str, at: float
) -> Pin | None:
    """Pin `kind` at `instances` (0: stop; None: unpin, `start`). Returns the pin it replaces.

    Raises what the store raises (SourceUnavailable, NotLeader, a rejected transaction):
    then nothing changed."""
    if store is None:
        raise NoPinStore("no pin store: this daemon cannot scale, stop or start a kind")
    previous = state.pins.pinned(kind)
    if instances is None:
        store.delete(kind)
        state.set_pin(kind, None)
        log.info("kind started", resource=kind, previous=_count(previous), by=by)
        return previous
    pin = Pin(instances, by, at)
    store.write(kind, pin)
    state.set_pin(kind, pin)
    event = "kind stopped" if instances == 0 else "kind scaled"
    log.info(event, resource=kind, instances=instances, previous=_count(previous), by=by)
    return previous


def _count(pin: Pin | None) -> int | None:
    return pin.instances if pin is not None else None
