"""A reconciler wired to the rig's real servers, for the end-to-end tests.

Same adapters as production (`reconciler.wiring` builds them from Settings); here they are
built directly so a test can count writes and run single passes deterministically.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from reconciler.adapters.kube.pods import KubePods
from reconciler.adapters.sql.inventory import Inventory, create_tables, insert_ids
from reconciler.adapters.zookeeper.session import ZkSession
from reconciler.adapters.zookeeper.store import ZkStore
from reconciler.domain.model import PassResult
from reconciler.policy.loader import load_policy_and_templates
from reconciler.policy.schema import LoadedPolicy
from reconciler.reconcile.pass_ports import Ports
from reconciler.reconcile.pipeline import run_pass
from reconciler.runtime.loop import Daemon
from reconciler.state.daemon import DaemonState
from tests.support.polling import eventually as eventually  # re-exported: tests import it from here

REPO = Path(__file__).resolve().parents[2]


def write_policy(path: Path, namespace: str, *, tick: float = 60, **kinds: dict[str, Any]) -> Path:
    """policy.yaml for Thing/Rule in `namespace`; kinds' dicts override the defaults."""
    base = {
        "Thing": {
            "table": "Thing",
            "instanceName": "iota-dac",
            "template": str(REPO / "templates/iota-dac/pod-template.yml"),
            "namespace": namespace,
            "initInstances": 10,
            "maxInstances": 100,
            "resourcePerInstance": 5000,
        },
        "Rule": {
            "table": "Rule",
            "instanceName": "iota-rules-engine",
            "template": str(REPO / "templates/iota-rules-engine/pod-template.yml"),
            "namespace": namespace,
            "initInstances": 3,
            "maxInstances": 100,
            "resourcePerInstance": 500,
        },
    }
    for kind, override in kinds.items():
        base[kind] = {**base[kind], **override}
    path.write_text(yaml.safe_dump({"tickSeconds": tick, "kinds": base}, sort_keys=False))
    return path


@dataclass
class Fleet:
    zk: ZkStore
    inventory: Inventory
    pods: KubePods
    ports: Ports
    state: DaemonState
    policy_path: Path

    def loaded(self) -> LoadedPolicy:
        """(Re)load policy.yaml into the fleet's state, as the daemon does on an edit."""
        loaded, templates = load_policy_and_templates(self.policy_path)
        self.pods.templates = templates
        if self.state.policy.loaded is None or self.state.policy.loaded.sha256 != loaded.sha256:
            self.state.policy_accepted(loaded, templates)
        return loaded

    def run(self, **kw: Any) -> PassResult:
        """One pass on the current policy.yaml (`run_pass` keywords: full, dry_run, kinds)."""
        self.loaded()
        return run_pass(self.ports, self.state, trigger="test", **kw)

    def tick(self, **kw: Any) -> PassResult:
        result = self.run(**kw)
        assert not result.failed, [o.error for o in result.failed]
        return result

    def writes(self) -> tuple[int, int]:
        return self.zk.session.writes, self.pods.writes

    def daemon(self) -> Daemon:
        def set_templates(templates: dict[str, Any]) -> None:
            self.pods.templates = templates

        return Daemon(self.policy_path, self.ports, self.state, on_templates=set_templates)


@contextmanager
def fleet(zk_hosts: str, db_url: str, api_client: Any, policy_path: Path) -> Iterator[Fleet]:
    session = ZkSession(zk_hosts)
    session.start()
    zk = ZkStore(session)
    inventory = Inventory(db_url)
    pods = KubePods(api_client, {})
    ports = Ports(store=zk, rows=inventory, pods=pods)
    try:
        yield Fleet(zk, inventory, pods, ports, DaemonState(), policy_path)
    finally:
        session.stop()
        inventory.close()


def uuids(n: int) -> list[str]:
    """`n` fresh resource ids, UUIDs as the platform's tables hold them."""
    return [str(uuid.uuid4()) for _ in range(n)]


def seed(db_url: str, things: int, rules: int) -> tuple[list[str], list[str]]:
    """Create the `Thing` and `Rule` tables and fill them with fresh ids; returns both lists."""
    create_tables(db_url)
    thing_ids, rule_ids = uuids(things), uuids(rules)
    insert_ids(db_url, "Thing", thing_ids)
    insert_ids(db_url, "Rule", rule_ids)
    return thing_ids, rule_ids


def read_layout(kazoo: Any, kind: str) -> dict[int, dict[str, Any]]:
    """Raw SPEC layout of a kind, read with kazoo directly (not through the adapter)."""
    root = f"/iota/orchestration/{kind}"
    out: dict[int, dict[str, Any]] = {}
    for child in kazoo.get_children(root):
        node = json.loads(kazoo.get(f"{root}/{child}")[0])
        out[int(child)] = {
            "node": node,
            "ids": json.loads(kazoo.get(f"{root}/{child}/resources")[0])["ids"],
            "times": json.loads(kazoo.get(f"{root}/{child}/_reload")[0])["times"],
            "children": sorted(kazoo.get_children(f"{root}/{child}")),
            "tmp": kazoo.get(f"{root}/{child}/tmp")[0],
        }
    return out


def daemon_env(tmp_path: Path, zk_hosts: str, pg_url: str, kube: Any) -> dict[str, str]:
    """Environment for a `reconciler run` subprocess against the rig: ZooKeeper, PostgreSQL
    and the apiserver; no MQTT, no Kafka; nothing inherited that could leak in."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "RECONCILER_ZK_HOSTS": zk_hosts,
        "RECONCILER_DATABASE_URL": pg_url,
        "RECONCILER_KUBE_URL": kube.url,
        "RECONCILER_KUBE_TOKEN": kube.token,
        "RECONCILER_KUBE_CA_FILE": str(kube.ca_file),
        "RECONCILER_MQTT_BROKERS": "",
        "RECONCILER_KAFKA_BOOTSTRAP": "",
        "RECONCILER_API_HOST": "127.0.0.1",
        "RECONCILER_API_PORT": "0",
        "RECONCILER_LOG_FORMAT": "json",
    }


class HeartbeatSender:
    """Stand-in for the fleet's workers: a Kafka heartbeat (SPEC format) for each instance
    in `instances` every 0.5 s. Change `instances` to silence or revive a worker."""

    def __init__(self, bootstrap: str, instances: set[int], resource: str = "Thing") -> None:
        from kafka import KafkaProducer

        self.instances = set(instances)
        self.resource = resource
        self.producer = KafkaProducer(
            bootstrap_servers=bootstrap, retries=0, max_block_ms=2000, request_timeout_ms=2000
        )
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            for i in list(self.instances):
                value = {
                    "resource": self.resource,
                    "instanceId": str(i),
                    "timestamp": str(int(time.time())),
                }
                # Kafka stopped by a test: workers keep trying, as real ones do.
                with contextlib.suppress(Exception):
                    self.producer.send("HeartBeat", json.dumps(value).encode())

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.producer.close(timeout=2)
