"""The faults, each a function that injects one into a running `World` and takes it away
again, returning when (time.time()) the fleet's sources were back: the driver then judges
convergence from there (World.converge). Rows keep churning while a fault lasts.

Durations are shorter than the issue's (PostgreSQL 30 s, apiserver 20 s) so that CI can run
every fault in a few minutes: what matters to the daemon is being blind for longer than its
deadlines (RECONCILER_DATABASE_TIMEOUT 2 s here, the apiserver client's timeouts) and for
several passes (tickSeconds 2 s), which these durations are.
"""

from __future__ import annotations

import copy
import random
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
import yaml

from tests.chaos.world import (
    HEARTBEAT_TIMEOUT,
    SESSION_SECONDS,
    THING_PER_INSTANCE,
    TICK_SECONDS,
    World,
    policy_doc,
)
from tests.support.processes import RECONCILER

PG_FREEZE_S = 8.0  # 4 database deadlines (2 s): passes time out, none hangs
APISERVER_FREEZE_S = 8.0  # several passes with every apiserver call timing out
ZK_DOWN_S = 3.0  # the daemon's session (4 s) survives: a plain restart
KAFKA_DOWN_S = HEARTBEAT_TIMEOUT + 3  # every worker is "silent" longer than its timeout
MQTT_DOWN_S = 4.0  # hints published meanwhile are lost; the tick must find the rows
FORBIDDEN_S = 3 * TICK_SECONDS
UNKNOWN_TABLE_S = 3 * TICK_SECONDS
EMPTY_HOLD_S = 1.5 * TICK_SECONDS  # the valve lets go after 3 full passes: restore before
KILL_WAIT_S = 20.0  # a kill waits this long for its op; no op: killed where it is

BAD_POLICIES = {
    "invalid YAML": "tickSeconds: 2\nkinds: [\n",
    "duplicate key": "tickSeconds: 2\ntickSeconds: 3\nkinds: {}\n",
    "string for a number": None,  # built from the good policy (tickSeconds "30")
    "unknown field": None,  # built from the good policy (a misspelt field)
}


@dataclass
class Injected:
    fault: str
    recovered: float
    kill_point: str | None = None  # for a SIGKILL: where it fell
    undo: Callable[[], None] | None = None  # after judging: take a lasting edit back
    degraded: frozenset[str] = frozenset()  # kinds the fault leaves unreadable until `undo`
    violations: list[str] = field(default_factory=list)  # what the fault itself saw go wrong
    detail: str = ""  # figures of the fault's own for its line in the run (" key=value ...")


Fault = Callable[[World, random.Random], Injected]


def _blind_for(
    world: World,
    name: str,
    kinds: list[str],
    seconds: float,
    on: Callable[[], None],
    off: Callable[[], None],
    *,
    strict: bool = True,
    tail: float = 0.0,
) -> Injected:
    window = world.blind(name, kinds, strict=strict, tail=tail)
    on()
    try:
        time.sleep(seconds)
    finally:
        off()
        window.end = time.time()
    return Injected(name, window.end)


def postgres_frozen(world: World, rng: random.Random) -> Injected:
    pg = world.s.pg
    return _blind_for(
        world, "PostgreSQL SIGSTOP", ["Thing", "Rule"], PG_FREEZE_S, pg.pause, pg.resume
    )


def apiserver_frozen(world: World, rng: random.Random) -> Injected:
    kube = world.s.kube
    return _blind_for(
        world, "apiserver SIGSTOP", ["Thing", "Rule"], APISERVER_FREEZE_S, kube.pause, kube.resume
    )


def zookeeper_restarted(world: World, rng: random.Random) -> Injected:
    zk = world.s.zk
    return _blind_for(world, "ZooKeeper restart", ["Thing", "Rule"], ZK_DOWN_S, zk.stop, zk.start)


def zookeeper_session_expired(world: World, rng: random.Random) -> Injected:
    """The daemon frozen past its ZooKeeper session: the server expires it (leadership and
    all); the daemon, continued, must find that out before it writes again."""
    daemon = world.daemon
    assert daemon is not None
    daemon.signal(signal.SIGSTOP)
    try:
        time.sleep(SESSION_SECONDS + 3)
    finally:
        daemon.signal(signal.SIGCONT)
    return Injected("ZooKeeper session expiry", time.time())


def kafka_down(world: World, rng: random.Random) -> Injected:
    kafka = world.s.kafka
    # Loose: scale-downs are fine, but no pod may be deleted whose instance stays (a worker
    # recreated for a silence Kafka caused), up to two heartbeat timeouts after Kafka's return.
    return _blind_for(
        world,
        "Kafka down",
        ["Thing"],
        KAFKA_DOWN_S,
        kafka.stop,
        kafka.start,
        strict=False,
        tail=2 * HEARTBEAT_TIMEOUT,
    )


def mqtt_down(world: World, rng: random.Random) -> Injected:
    mqtt = world.s.mqtt
    mqtt.stop()
    try:
        time.sleep(MQTT_DOWN_S)
    finally:
        mqtt.start()
    return Injected("MQTT down", time.time())


def namespace_forbidden(world: World, rng: random.Random) -> Injected:
    ns = world.namespaces["Rule"]
    return _blind_for(
        world,
        "apiserver 403 in Rule's namespace",
        ["Rule"],
        FORBIDDEN_S,
        lambda: world.revoke(ns),
        lambda: world.grant(ns),
    )


def unknown_table(world: World, rng: random.Random) -> Injected:
    """A kind whose table does not exist joins the policy. Judged while it is there (the other
    kinds go on); taken out again after that (`undo`)."""
    ghost = {
        "Ghost": {
            "table": "NoSuchTable",
            "instanceName": "iota-ghost",
            "namespace": world.namespaces["Thing"],
            "template": policy_doc(world.namespaces)["kinds"]["Thing"]["template"],
            "initInstances": 3,
            "maxInstances": 20,
            "resourcePerInstance": 100,
        }
    }
    world.write_policy(policy_doc(world.namespaces, extra=ghost))
    time.sleep(UNKNOWN_TABLE_S)
    return Injected(
        "kind with an unknown table",
        time.time(),
        undo=lambda: world.write_policy(policy_doc(world.namespaces)),
        degraded=frozenset({"Ghost"}),
    )


def _empty(world: World) -> None:
    with world.engine.begin() as conn:
        conn.execute(sa.text('CREATE TABLE IF NOT EXISTS "ThingAside" (id text PRIMARY KEY)'))
        conn.execute(sa.text('INSERT INTO "ThingAside" SELECT id FROM "Thing"'))
        conn.execute(sa.text('DELETE FROM "Thing"'))


def _refill(world: World) -> None:
    with world.engine.begin() as conn:
        conn.execute(
            sa.text('INSERT INTO "Thing" SELECT id FROM "ThingAside" ON CONFLICT DO NOTHING')
        )
        conn.execute(sa.text('DELETE FROM "ThingAside"'))


def table_emptied(world: World, rng: random.Random) -> Injected:
    """Thing reads empty (an emptied replica) for less than the valve's 3 passes, then its rows
    are back: nothing may be unassigned or deleted meanwhile."""
    world.churn.running.clear()  # the churn would refill it
    window = world.blind("Thing table emptied", ["Thing"])
    _empty(world)
    try:
        time.sleep(EMPTY_HOLD_S)
    finally:
        _refill(world)
        window.end = time.time()
    return Injected("emptied table", window.end)


def confirm(world: World, kind: str) -> subprocess.CompletedProcess[str]:
    """`reconciler confirm <kind>` against the running daemon."""
    assert world.daemon is not None
    return subprocess.run(
        [RECONCILER, "confirm", kind, "--url", f"http://127.0.0.1:{world.daemon.port}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def bad_policy_edits(world: World, rng: random.Random) -> Injected:
    good = policy_doc(world.namespaces)
    wrong_type = copy.deepcopy(good)
    wrong_type["tickSeconds"] = "30"
    misspelt = copy.deepcopy(good)
    misspelt["kinds"]["Thing"]["resourcesPerInstance"] = 1
    texts = {
        **BAD_POLICIES,
        "string for a number": yaml.safe_dump(wrong_type),
        "unknown field": yaml.safe_dump(misspelt),
    }
    for name in rng.sample(sorted(texts), k=len(texts)):
        world.write_policy(str(texts[name]))
        time.sleep(TICK_SECONDS)
    world.write_policy(good)
    return Injected("bad policy edits", time.time())


# ---------------------------------------------------------------------- SIGKILL mid-apply
def _rescale(world: World, rng: random.Random) -> str:
    """An edit that moves ids and adds or removes instances (and their pods)."""
    per = rng.choice([20, 25, 30, THING_PER_INSTANCE, 60])
    world.write_policy(policy_doc(world.namespaces, thing_per_instance=per))
    return f"resourcePerInstance={per}"


def _burst(world: World, rng: random.Random) -> str:
    for _ in range(rng.randint(3, 8)):
        world.churn.step()
    return "row burst"


def sigkill_mid_apply(world: World, rng: random.Random) -> Injected:
    """SIGKILL the daemon at a random point of the passes a rescale or a row burst causes:
    after its k-th applied operation, or k*100 ms in when none comes."""
    daemon = world.daemon
    assert daemon is not None
    began = time.time()
    trigger = (_rescale if rng.random() < 0.7 else _burst)(world, rng)
    by_op = rng.random() < 0.75
    k = rng.randint(1, 12)
    point = f"{trigger}, {k * 100} ms in"
    if by_op:
        deadline = time.monotonic() + KILL_WAIT_S
        while time.monotonic() < deadline:
            applied = daemon.applied(after=began)
            if len(applied) >= k:
                last = applied[k - 1]
                point = f"{trigger}, after op {k} ({last.get('op')} {last.get('resource')})"
                break
            time.sleep(0.005)
        else:
            point = f"{trigger}, after op {k}: only {len(daemon.applied(after=began))} came"
    else:
        time.sleep(k * 0.1)
    daemon.signal(signal.SIGKILL)
    daemon.proc.wait(timeout=10)
    world.stop_daemon()
    world.start_daemon()
    return Injected("SIGKILL mid-apply", time.time(), kill_point=point)


FAULTS: dict[str, Fault] = {
    "postgres_frozen": postgres_frozen,
    "zookeeper_restarted": zookeeper_restarted,
    "zookeeper_session_expired": zookeeper_session_expired,
    "kafka_down": kafka_down,
    "mqtt_down": mqtt_down,
    "apiserver_frozen": apiserver_frozen,
    "namespace_forbidden": namespace_forbidden,
    "unknown_table": unknown_table,
    "table_emptied": table_emptied,
    "bad_policy_edits": bad_policy_edits,
    "sigkill_mid_apply": sigkill_mid_apply,
}
