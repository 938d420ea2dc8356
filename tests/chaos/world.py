"""A fleet on the rig's servers for chaos: its own ZooKeeper chroot, database, namespaces (one
per kind, the daemon bound in each by RBAC), policy.yaml, row churn with MQTT hints, worker
heartbeats on Kafka, a pod deletion recorder, the history of the instances the daemon wrote to
ZooKeeper (each deletion is judged against its instance), and a real `reconciler run` process
that can be killed and started again (each run's log kept as `daemon-<n>.log` in the work
dir). The daemon reaches every server through a fault proxy (links.py); everything else here
connects directly. The daemon's wall clock can be stepped (clock.py) and a pass of it wedged
(a failpoint file, reconciler/runtime/failpoints.py): timefaults.py.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from kazoo.client import KazooClient
from kubernetes import client as k8s
from paho.mqtt import client as mqtt_client
from paho.mqtt.enums import CallbackAPIVersion

from rig.kube import Kube
from rig.servers import Kafka, Mosquitto, Postgres, ZooKeeper
from tests.chaos import invariants
from tests.chaos.clock import DaemonClock
from tests.chaos.history import InstanceHistory
from tests.chaos.links import Links
from tests.chaos.podwatch import BlindWindow, Deletions, blind_deletions, windows_over
from tests.support.fleet import REPO, HeartbeatSender
from tests.support.processes import DaemonProcess

TICK_SECONDS = 2.0  # the policy's tickSeconds: short, so that "2 passes" is a few seconds
SESSION_SECONDS = 4.0  # the daemon's ZooKeeper session: a killed leader's lease
DATABASE_TIMEOUT = 2.0  # RECONCILER_DATABASE_TIMEOUT: a frozen database is seen in 2-3 s
HEARTBEAT_TIMEOUT = 6.0  # policy heartbeat.timeoutSeconds of Thing (5 at least)
THING_ROWS = (90, 150)  # churn keeps Thing within: above the valve's 50 ids, 3..4 instances
RULE_ROWS = (20, 60)
THING_PER_INSTANCE = 40
RECOVERY_CAP = 60.0  # seconds for the daemon to see every source again after a fault
# A scaled-down instance's node goes in the pass that deletes its pod; a removal that fails is
# retried by a later pass: a pod deletion whose instance outlives it by this much was no
# scale-down (podwatch.py).
SETTLE_SECONDS = 3 * TICK_SECONDS
ROLE_RULES = [
    {
        "apiGroups": [""],
        "resources": ["pods"],
        "verbs": ["get", "list", "watch", "create", "delete", "patch"],
    },
    {"apiGroups": ["metrics.k8s.io"], "resources": ["pods"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["resourcequotas"], "verbs": ["list"]},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
]
SUBJECT = {"kind": "ServiceAccount", "name": "reconciler", "namespace": "iota"}


@dataclass
class Servers:
    zk: ZooKeeper
    pg: Postgres
    mqtt: Mosquitto
    kafka: Kafka
    kube: Kube


def policy_doc(
    namespaces: dict[str, str],
    thing_per_instance: int = THING_PER_INSTANCE,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    kinds: dict[str, Any] = {
        "Thing": {
            "table": "Thing",
            "instanceName": "iota-dac",
            "namespace": namespaces["Thing"],
            "template": str(REPO / "templates/iota-dac/pod-template.yml"),
            "initInstances": 3,
            "maxInstances": 20,
            "resourcePerInstance": thing_per_instance,
            "heartbeat": {
                "enabled": True,
                "timeoutSeconds": HEARTBEAT_TIMEOUT,
                "graceSeconds": HEARTBEAT_TIMEOUT,
            },
        },
        "Rule": {
            "table": "Rule",
            "instanceName": "iota-rules-engine",
            "namespace": namespaces["Rule"],
            "template": str(REPO / "templates/iota-rules-engine/pod-template.yml"),
            "initInstances": 3,
            "maxInstances": 20,
            "resourcePerInstance": 500,
        },
    }
    kinds.update(extra or {})
    return {"tickSeconds": TICK_SECONDS, "kinds": kinds}


class Churn:
    """Inserts and deletes rows of Thing and Rule (SQL) and publishes their `cm/notify` hints
    (best effort: MQTT may be down). `paused` stops it at a recovery, to judge convergence."""

    def __init__(self, engine: sa.Engine, mqtt: Mosquitto, rng: random.Random) -> None:
        self.engine, self.rng = engine, rng
        self.running = threading.Event()
        self._stop = threading.Event()
        self._mqtt = mqtt_client.Client(
            CallbackAPIVersion.VERSION2, client_id=f"chaos-{uuid.uuid4().hex[:8]}"
        )
        self._mqtt.connect_async(mqtt.host, mqtt.port)
        self._mqtt.reconnect_delay_set(1, 2)
        self._mqtt.loop_start()
        self.changes = 0
        self._thread = threading.Thread(target=self._run, daemon=True, name="churn")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.3):
            if not self.running.is_set():
                continue
            with contextlib.suppress(Exception):  # a frozen or stopped database: try again
                self.step()

    def step(self) -> None:
        table, (low, high) = self.rng.choice([("Thing", THING_ROWS), ("Rule", RULE_ROWS)])
        with self.engine.begin() as conn:
            conn.execute(sa.text("SET LOCAL statement_timeout = '2s'"))
            n = conn.execute(sa.text(f'SELECT count(*) FROM "{table}"')).scalar() or 0
            grow = n < low or (n < high and self.rng.random() < 0.5)
            k = self.rng.randint(1, 4)
            if grow:
                ids = [str(uuid.UUID(int=self.rng.getrandbits(128))) for _ in range(k)]
                conn.execute(
                    sa.text(f'INSERT INTO "{table}" (id) VALUES (:id)'), [{"id": i} for i in ids]
                )
                hint = {"o": "bc", "t": table, "keys": [{"id": i} for i in ids]}
            else:
                ids = [
                    r[0]
                    for r in conn.execute(
                        sa.text(f'SELECT id FROM "{table}" ORDER BY random() LIMIT :k'), {"k": k}
                    )
                ]
                conn.execute(sa.text(f'DELETE FROM "{table}" WHERE id = ANY(:ids)'), {"ids": ids})
                hint = {"o": "bd", "t": table, "where": {"id": ids}}
        self.changes += len(ids)
        self._mqtt.publish("cm/notify", json.dumps(hint).encode(), qos=1)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._mqtt.loop_stop()
        with contextlib.suppress(Exception):
            self._mqtt.disconnect()


def _sees_all(sources: dict[str, str], kinds: set[str], degraded: frozenset[str]) -> bool:
    """No source error (status "sources": source -> "<Kind>: <error>; ...") for the policy's
    `kinds` but `degraded` ones. Errors of a kind no longer in the policy do not count here:
    that the daemon forgets them is test_faults.py's own test."""
    return all(
        part.split(":", 1)[0] in degraded or part.split(":", 1)[0] not in kinds
        for errors in sources.values()
        for part in errors.split("; ")
    )


class World:
    """One fleet on `servers`, files under `work`. `start()` sets it up and starts the daemon;
    `close()` undoes it (the servers stay: their owner stops them)."""

    def __init__(self, servers: Servers, work: Path, rng: random.Random) -> None:
        self.s, self.work, self.rng = servers, work, rng
        tag = uuid.uuid4().hex[:8]
        self.chroot = f"/chaos-{tag}"
        self.db_name = f"chaos_{tag}"
        self.namespaces = {"Thing": f"chaos-thing-{tag}", "Rule": f"chaos-rule-{tag}"}
        self.policy_path = work / "policy.yaml"
        self.windows: list[BlindWindow] = []
        # Every kind the policy has named, by name: a kind taken out of it still owns the pods
        # that went while it was in.
        self.named: dict[str, invariants.KindSpec] = {}
        self.daemon: DaemonProcess | None = None
        self.starts = 0
        self.standbys = 0

    # ------------------------------------------------------------------ set-up
    def start(self) -> World:
        self.work.mkdir(parents=True, exist_ok=True)
        self.clock = DaemonClock(self.work)
        self.failpoints = self.work / "failpoints"
        admin = KazooClient(hosts=self.s.zk.hosts, timeout=10)
        admin.start(timeout=15)
        admin.ensure_path(self.chroot)
        admin.stop()
        admin.close()
        self.zk_hosts = self.s.zk.hosts + self.chroot
        self.kazoo = KazooClient(hosts=self.zk_hosts, timeout=10)
        self.kazoo.start(timeout=15)
        self.instances = InstanceHistory(self.zk_hosts).start()
        self.db_url = self.s.pg.create_database(self.db_name)
        self.engine = sa.create_engine(
            self.db_url, pool_pre_ping=True, connect_args={"connect_timeout": 3}
        )
        with self.engine.begin() as conn:
            for table, (low, high) in (("Thing", THING_ROWS), ("Rule", RULE_ROWS)):
                conn.execute(sa.text(f'CREATE TABLE "{table}" (id text PRIMARY KEY)'))
                conn.execute(
                    sa.text(f'INSERT INTO "{table}" (id) VALUES (:id)'),
                    [{"id": str(uuid.uuid4())} for _ in range((low + high) // 2)],
                )
        self.api = self.s.kube.api_client()
        self.core = k8s.CoreV1Api(self.api)
        self.rbac = k8s.RbacAuthorizationV1Api(self.api)
        self._grant_cluster()
        for ns in self.namespaces.values():
            self.s.kube.create_namespace(ns)
            self.rbac.create_namespaced_role(
                ns, {"metadata": {"name": "reconciler"}, "rules": ROLE_RULES}
            )
            self.grant(ns)
        self.write_policy(policy_doc(self.namespaces))
        self.deletions = Deletions(self.core, list(self.namespaces.values()))
        self.deletions.start()
        self.heartbeats = HeartbeatSender(self.s.kafka.bootstrap, set(range(20)))
        # Its own generator: the churn thread draws at its own pace, so sharing one would make
        # the sequence of faults depend on timing, not only on the seed.
        self.churn = Churn(self.engine, self.s.mqtt, random.Random(self.rng.getrandbits(64)))
        self.links = Links(
            self.zk_hosts, self.db_url, self.s.kube.url, self.s.mqtt.url, self.s.kafka
        )
        self.start_daemon()
        return self

    def _grant_cluster(self) -> None:
        name = f"reconciler-{self.chroot[1:]}"
        self.rbac.create_cluster_role(
            {
                "metadata": {"name": name},
                "rules": [{"apiGroups": [""], "resources": ["nodes", "pods"], "verbs": ["list"]}],
            }
        )
        self.rbac.create_cluster_role_binding(
            {
                "metadata": {"name": name},
                "subjects": [SUBJECT],
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": name,
                },
            }
        )
        self._cluster_role = name

    def grant(self, ns: str) -> None:
        """Bind the daemon's Role in `ns` (the 403 fault removes this binding)."""
        self.rbac.create_namespaced_role_binding(
            ns,
            {
                "metadata": {"name": "reconciler"},
                "subjects": [SUBJECT],
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "reconciler",
                },
            },
        )

    def revoke(self, ns: str) -> None:
        self.rbac.delete_namespaced_role_binding("reconciler", ns)

    def write_policy(self, doc: dict[str, Any] | str) -> None:
        text = doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False)
        tmp = self.policy_path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(self.policy_path)

    # ------------------------------------------------------------------ the daemon
    def stop_daemon(self) -> None:
        """Stop (SIGTERM) the daemon, or reap a killed one; its log stays in the work dir."""
        if self.daemon is not None:
            self.daemon.close()
            log = self.work / f"daemon-{self.starts}.log"
            log.write_text("".join(self.daemon.lines))
            self.daemon = None

    def start_daemon(self) -> DaemonProcess:
        self.starts += 1
        self.daemon = self._spawn(f"chaos-{self.starts}", self.links)
        return self.daemon

    def start_standby(self) -> DaemonProcess:
        """A second daemon that reaches every server directly (the split brain's standby);
        `stop_standby` stops it and keeps its log as `standby-<n>.log`."""
        self.standbys += 1
        return self._spawn(f"chaos-standby-{self.standbys}", None)

    def stop_standby(self, standby: DaemonProcess) -> None:
        standby.close()
        log = self.work / f"standby-{self.standbys}.log"
        log.write_text("".join(standby.lines))

    def _spawn(self, identity: str, links: Links | None) -> DaemonProcess:
        """A `reconciler run` reaching the servers through `links` (None: directly)."""

        def via(link: str, address: str) -> str:
            return links.via(link, address) if links is not None else address

        # The fleet's daemon only: its clock steps and its passes wedge (timefaults.py).
        own = (
            {**self.clock.env(), "RECONCILER_FAILPOINTS_FILE": str(self.failpoints)}
            if links is not None
            else {}
        )
        daemon = DaemonProcess(
            self.work,
            via("zookeeper", self.zk_hosts),
            via("postgresql", self.db_url),
            self.s.kube,
            self.policy_path,
            identity,
            session_timeout=SESSION_SECONDS,
            env={
                "RECONCILER_KUBE_URL": via("apiserver", self.s.kube.url),
                "RECONCILER_KUBE_TOKEN": self.s.kube.tokens["reconciler"],
                "RECONCILER_DATABASE_TIMEOUT": str(DATABASE_TIMEOUT),
                "RECONCILER_MQTT_BROKERS": via("mqtt", self.s.mqtt.url),
                "RECONCILER_MQTT_RECONNECT_SECONDS": "1",
                "RECONCILER_KAFKA_BOOTSTRAP": (
                    links.kafka_bootstrap if links is not None else self.s.kafka.bootstrap
                ),
                **own,
            },
        )
        if own and self.clock.available:
            daemon.true_time = self.clock.true_time
        return daemon

    def status(self) -> dict[str, Any] | None:
        return self.daemon.status() if self.daemon is not None else None

    # ------------------------------------------------------------------ judging
    def kinds(self) -> list[invariants.KindSpec]:
        kinds = invariants.kinds_of(self.policy_path.read_text())
        self.named.update({k.name: k for k in kinds})
        return kinds

    def violations(self) -> list[str]:
        kinds = self.kinds()
        return invariants.check(self.kazoo, self.engine, self.core, kinds) + self.blind_deletions()

    def blind_deletions(self) -> list[str]:
        """The pod deletions that count against the daemon so far (podwatch.py); one not yet
        SETTLE_SECONDS old may count later."""
        return blind_deletions(
            self.deletions.gone,
            self.windows,
            self.instances.lifetimes(),
            list(self.named.values()),
            SETTLE_SECONDS,
        )

    def deletions_while_blind(self) -> int:
        """How many pod deletions overlapped a blind window (judged, counted or not)."""
        now = time.time()
        return sum(1 for g in self.deletions.gone if windows_over(g, self.windows, now))

    def settled_blind_deletions(self) -> list[str]:
        """`blind_deletions` once every deletion recorded so far has been followed for
        SETTLE_SECONDS (at the end of a run: the last fault's deletions are judged too)."""
        until = time.time() + SETTLE_SECONDS
        while self.instances.followed_until() < until and time.time() < until + RECOVERY_CAP:
            time.sleep(0.25)
        return self.blind_deletions()

    def blind(
        self, fault: str, kinds: list[str], *, strict: bool = True, tail: float = 0.0
    ) -> BlindWindow:
        window = BlindWindow(
            fault, {self.namespaces[k] for k in kinds}, time.time(), strict=strict, tail=tail
        )
        self.windows.append(window)
        return window

    def converge(
        self, recovered: float, degraded: frozenset[str] = frozenset()
    ) -> tuple[float, list[str]]:
        """With churn paused: seconds from `recovered` until the invariants hold, judged by the
        end of the 2nd pass that ended after `recovered`, led (a restarted daemon stands by
        until the killed one's session expires) and with every source readable (but for
        the kinds in `degraded`, which the fault leaves unreadable); the violations left then
        (empty: converged)."""
        self.churn.running.clear()
        passes: set[float] = set()
        last: list[str] = ["the daemon saw every source for no pass"]
        while time.time() < recovered + RECOVERY_CAP:
            status = self.status()
            if (
                status
                and status["lastPass"]["at"]
                and self.clock.true_time(status["lastPass"]["at"], time.time()) > recovered
                and status["leadership"]["role"] == "leader"
                # a pass that began before leadership came back ran as a standby: it fixed nothing
                and not status["lastPass"].get("standby", False)
                and _sees_all(status["sources"], {k.name for k in self.kinds()}, degraded)
            ):
                passes.add(status["lastPass"]["at"])
            try:
                last = self.violations()
            except Exception as exc:  # a server the checker reads is still coming back
                last = [f"checker could not read: {exc!r}"]
            if not last and passes:
                return time.time() - recovered, []
            if len(passes) >= 2:
                break
            time.sleep(0.3)
        status = self.status() or {}
        last = last or ["not converged"]
        last[-1] += f" (daemon sources {status.get('sources')}, last pass {status.get('lastPass')})"
        return time.time() - recovered, last

    def close(self) -> None:
        for part in ("churn", "heartbeats", "deletions", "instances"):
            if hasattr(self, part):
                with contextlib.suppress(Exception):
                    getattr(self, part).close()
        self.stop_daemon()
        if hasattr(self, "links"):
            self.links.close()
        with contextlib.suppress(Exception):
            for ns in self.namespaces.values():
                self.s.kube.delete_namespace(ns)
            self.rbac.delete_cluster_role_binding(self._cluster_role)
            self.rbac.delete_cluster_role(self._cluster_role)
        with contextlib.suppress(Exception):
            self.kazoo.stop()
            self.kazoo.close()
        with contextlib.suppress(Exception):
            self.engine.dispose()
            self.s.pg.drop_database(self.db_name)
