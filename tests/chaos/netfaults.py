"""Network faults on the daemon's own links (links.py: a fault proxy between the daemon and
each server; the checker, the churn and the workers' heartbeats connect directly, so the
servers stay up for everyone else): a partition (black hole: no reset, nothing answered) and a
slow link for each of ZooKeeper, PostgreSQL, the apiserver, Kafka and MQTT, and the split
brain. `ALL_FAULTS` is faults.py's list and these (timefaults.py adds the time faults for the
chaos run's whole list; faults.py's alone is what tests/integration/daemon/test_faults.py runs
on a plain rig Kafka).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import datetime

from reconciler.domain.podspec import CREATED_BY_ANNOTATION
from tests.chaos.faults import (
    APISERVER_FREEZE_S,
    FAULTS,
    KAFKA_DOWN_S,
    MQTT_DOWN_S,
    PG_FREEZE_S,
    Fault,
    Injected,
    _blind_for,
)
from tests.chaos.world import HEARTBEAT_TIMEOUT, SESSION_SECONDS, TICK_SECONDS, World
from tests.support.polling import eventually
from tests.support.processes import leaders
from tests.support.zk_witness import (
    IN_FLIGHT_SECONDS,
    PROOF_SECONDS,
    election_changed,
    writes_between,
    zxid_now,
)

# Network faults on the daemon's own links (links.py): the servers stay up for everyone else.
PARTITION_S = {
    "zookeeper": SESSION_SECONDS + 2,  # past the session: it expires, leadership with it
    "postgresql": PG_FREEZE_S,
    "apiserver": APISERVER_FREEZE_S,
    "kafka": KAFKA_DOWN_S,
    "mqtt": MQTT_DOWN_S,
}
SLOW_MS = 250  # per chunk, each way: under every deadline for one round trip, not for many
SLOW_S = 4 * TICK_SECONDS


def _link_fault(
    world: World, link: str, name: str, seconds: float, on: Callable[[], None], *, strict: bool
) -> Injected:
    """`on` applied to the daemon's link to `link` for `seconds`, then healed. Kafka's blind
    window has the heartbeat tail of `kafka_down`; MQTT's covers only lost hints."""
    kinds = ["Thing"] if link == "kafka" else ["Thing", "Rule"]
    tail = 2 * HEARTBEAT_TIMEOUT if link == "kafka" else 0.0
    return _blind_for(
        world,
        name,
        kinds,
        seconds,
        on,
        world.links.proxies[link].pass_through,
        strict=strict,
        tail=tail,
    )


def _partition(link: str) -> Fault:
    """The daemon's link to `link` black-holed: no reset, nothing answered. Blind to rows,
    the assignment or pods (ZooKeeper, PostgreSQL, the apiserver) is strict; Kafka and MQTT
    are loose, as for their process faults."""

    def fault(world: World, rng: random.Random) -> Injected:
        return _link_fault(
            world,
            link,
            f"{link} partition",
            PARTITION_S[link],
            world.links.proxies[link].black_hole,
            strict=link in ("zookeeper", "postgresql", "apiserver"),
        )

    return fault


def _slow_link(link: str) -> Fault:
    """The daemon's link to `link` SLOW_MS late per chunk each way for SLOW_S. Slow is not
    blind: scale-downs stay allowed (a loose window), a healthy worker's pod killed is not."""

    def fault(world: World, rng: random.Random) -> Injected:
        proxy = world.links.proxies[link]
        return _link_fault(
            world, link, f"{link} slow link", SLOW_S, lambda: proxy.slow(SLOW_MS), strict=False
        )

    return fault


# ---------------------------------------------------------------------- split brain
def _pods_created_by(world: World, identity: str, after: float) -> list[str]:
    """Pods of the fleet's namespaces that `identity` created after `after`. Creation stamps
    are whole seconds, rounded down: one created less than a second after `after` may be
    missed here, not in the daemon's own log (checked beside)."""
    found = []
    for ns in world.namespaces.values():
        for pod in world.core.list_namespaced_pod(ns).items:
            created: datetime = pod.metadata.creation_timestamp
            by = (pod.metadata.annotations or {}).get(CREATED_BY_ANNOTATION)
            if by == identity and created.timestamp() > after:
                found.append(f"{ns}/{pod.metadata.name}")
    return found


def split_brain(world: World, rng: random.Random) -> Injected:
    """The leader's ZooKeeper link black-holed while it still reaches the apiserver and the
    database, a standby connected directly. From the end of the old leader's proof window on,
    it makes no ZooKeeper write (zxids under the root, until its session's lock node went)
    and no pod call (pods it created, its own log of applied operations); the standby takes
    over once the session expires and leads while the rows churn; after the heal, the old
    leader stays a standby. Then the standby stops (SIGTERM hands leadership back) and the
    fleet is judged as after every fault. The window is loose: the standby may scale down,
    no one may kill a healthy worker."""
    old = world.daemon
    assert old is not None
    proxy = world.links.proxies["zookeeper"]
    standby = world.start_standby()
    seen: list[str] = []
    try:
        eventually(lambda: standby.role() == "standby", timeout=60, what="the standby")
        eventually(lambda: old.role() == "leader", timeout=60, what="the old leader")
        window = world.blind("split brain", ["Thing", "Rule"], strict=False)
        proxy.black_hole()
        cut = time.time()
        proof_end = cut + PROOF_SECONDS + IN_FLIGHT_SECONDS
        while time.time() < proof_end:  # the old leader's proof may still be good
            time.sleep(0.05)
        after_proof = zxid_now(world.kazoo)
        eventually(
            lambda: standby.role() == "leader",
            timeout=SESSION_SECONDS + 20,
            interval=0.05,
            what="the standby to lead",
        )
        expired = election_changed(world.kazoo)
        seen += [
            f"written while cut off: {w}" for w in writes_between(world.kazoo, after_proof, expired)
        ]
        time.sleep(2 * TICK_SECONDS)  # the standby leads a couple of passes of churn
        proxy.pass_through()
        window.end = healed = time.time()
        eventually(lambda: old.role() == "standby", timeout=30, what="the old leader a standby")
        while time.time() < healed + 2 * TICK_SECONDS:
            found = leaders([old, standby])
            if found != [standby]:
                seen.append(f"leaders after the heal: {[d.identity for d in found]}")
                break
            time.sleep(0.2)
        seen += [
            f"pod created by the cut-off leader: {p}"
            for p in _pods_created_by(world, old.identity, proof_end)
        ]
        # The log says when an outcome was learned, not when the write landed: a write sent
        # just before the cut is confirmed (read back) once the old leader reconnects, after
        # it logged its session lost, when a fenced write can no longer land. Those are
        # judged by the ZooKeeper witness above; an `operation applied` before that counts.
        late = old.events(after=proof_end)
        lost = next(
            (k for k, e in enumerate(late) if e.get("event") == "leadership lost"), len(late)
        )
        seen += [
            f"operation applied by the cut-off leader: {e.get('op')} {e.get('resource')}"
            for e in late[:lost]
            if e.get("event") == "operation applied"
        ]
        if not standby.applied(after=cut):
            seen.append("the standby applied nothing once it led")
    finally:
        proxy.pass_through()
        world.stop_standby(standby)
    return Injected("split brain", time.time(), violations=seen)


LINKS = ("zookeeper", "postgresql", "apiserver", "kafka", "mqtt")
NETWORK_FAULTS: dict[str, Fault] = {
    **{f"{link}_partition": _partition(link) for link in LINKS},
    **{f"{link}_slow": _slow_link(link) for link in LINKS},
    "split_brain": split_brain,
}
ALL_FAULTS: dict[str, Fault] = {**FAULTS, **NETWORK_FAULTS}
